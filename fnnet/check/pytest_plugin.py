"""A pytest plugin: the fixture `fnnet_check_json`, one JSON file per check for CI (fnnet.check.ci).

Enable it in a conftest.py (`pytest_plugins = ["fnnet.check.pytest_plugin"]`) or with
`pytest -p fnnet.check.pytest_plugin`. The folder: `--fnnet-check-json DIR`, else the
environment variable FNNET_CHECK_JSON, else none (the fixture then writes nothing).

    def test_dense(fnnet_check_json):
        report = fnnet_check_json(check.check_layer(layer, params, x))   # returns the report
        report.raise_if_failed()

Files are named by the test's id and the check's number within the test
(tests_test_x.py__test_dense-1.json), so a test's reports never overwrite each other.
"""
from __future__ import annotations

import os

import pytest

from fnnet.check import ci


def pytest_addoption(parser):
    parser.addoption("--fnnet-check-json", metavar="DIR", default=None,
                     help=f"write each fnnet.check report recorded by the fnnet_check_json fixture as "
                          f"DIR/<test id>-<n>.json (default: ${ci.ENV}, else nothing)")


@pytest.fixture
def fnnet_check_json(request):
    """record(report, name=None) -> report: writes report's JSON when a folder is set."""
    folder = request.config.getoption("--fnnet-check-json") or os.environ.get(ci.ENV) or None
    count = [0]

    def record(report, name=None):
        count[0] += 1
        if folder is not None:
            ci.save_json(report, folder, name or f"{request.node.nodeid}-{count[0]}")
        return report
    return record
