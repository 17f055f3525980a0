"""fnnet/_xla_cpu.py: `import fnnet` turns XLA:CPU's concurrency-optimized scheduler off for
the process, unless the user chose (XLA_FLAGS names the flag, FNNET_XLA_FLAGS=0) or a
backend already started (XLA would ignore a late change)."""
import os
import subprocess
import sys

import pytest

from fnnet import _xla_cpu

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def test_set_keeps_other_flags(monkeypatch):
    monkeypatch.setattr(_xla_cpu, "_backends_started", lambda: False)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert _xla_cpu.set_default_xla_flags(env) == "set"
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 " + FLAG
    env = {}
    assert _xla_cpu.set_default_xla_flags(env) == "set" and env["XLA_FLAGS"] == FLAG


@pytest.mark.parametrize("env, status", [
    ({"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}, "user"),
    ({"FNNET_XLA_FLAGS": "0", "XLA_FLAGS": "--a=1"}, "opted out"),
])
def test_user_choice_wins(monkeypatch, env, status):
    monkeypatch.setattr(_xla_cpu, "_backends_started", lambda: False)
    before = dict(env)
    assert _xla_cpu.set_default_xla_flags(env) == status
    assert env == before


def test_too_late_after_a_backend_started():
    import jax
    jax.devices()                                        # this process's backend is up
    env = {}
    assert _xla_cpu.set_default_xla_flags(env) == "too late" and env == {}


def test_import_sets_it_in_a_fresh_process():
    code = "import os, fnnet; print(fnnet.XLA_FLAGS_STATUS); print(os.environ.get('XLA_FLAGS', ''))"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FNNET_XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    status, flags = out.stdout.strip().splitlines()
    assert status == "set" and flags == FLAG
