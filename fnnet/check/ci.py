"""One JSON file per check, for CI: what a job keeps as an artifact and a dashboard reads.

    from fnnet.check import ci
    ci.save_json(report)                    # to $FNNET_CHECK_JSON/<title>.json, if that is set
    ci.save_json(report, "out", "dense")    # to out/dense.json

In a pytest suite, the fixture of fnnet.check.pytest_plugin names the files by test:
    # conftest.py
    pytest_plugins = ["fnnet.check.pytest_plugin"]
    # a test
    def test_dense(fnnet_check_json):
        fnnet_check_json(check.check_layer(layer, params, x)).raise_if_failed()
    # pytest --fnnet-check-json reports/   (or FNNET_CHECK_JSON=reports/ pytest)

The content is Report.to_dict(): title, ok, summary, header, seconds and every row (primal,
oracle, kind, status, errors, worst index, actual, expected, tol, kinks, note), strict JSON
(NaN and inf written as null). Each file is written atomically (fnnet.atomic); a name
already written is replaced.
"""
from __future__ import annotations

import json
import os
import re

ENV = "FNNET_CHECK_JSON"


def file_name(text) -> str:
    """A file name (no suffix) from a title or test id: runs of anything but letters, digits,
    '.', '_' and '-' become one '_' (at most 150 characters)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "check"
    return name[:150]


def save_json(report, folder=None, name=None):
    """Write report.to_dict() as JSON to folder/name.json; folder defaults to $FNNET_CHECK_JSON,
    name to the report's title (made a file name). Returns the path written, or None when
    neither folder nor the variable is set (nothing asked for)."""
    folder = folder if folder is not None else os.environ.get(ENV) or None
    if folder is None:
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_name(name if name is not None else report.title) + ".json")
    text = json.dumps(report.to_dict(), indent=1, allow_nan=False, ensure_ascii=False)
    from fnnet import atomic
    atomic.write(path, lambda f: f.write(text.encode("utf-8")), where="fnnet.check.ci.save_json")
    return path
