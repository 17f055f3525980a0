"""fnnet/_xla_cpu.py: `import fnnet` turns XLA:CPU's concurrency-optimized scheduler off for
the process, unless the user chose (XLA_FLAGS names the flag, FNNET_XLA_FLAGS=0) or a
backend already started (XLA would ignore a late change); and, with FNNET_CPU_MALLOC=1, sets
glibc malloc and jax's CPU dispatch so that the large block of temporaries each XLA:CPU call
allocates is kept for the next call (off by default)."""
import json
import os
import subprocess
import sys

import pytest

from fnnet import _xla_cpu

ON = {"FNNET_CPU_MALLOC": "1"}                 # the memory setting is opt-in

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


class _Mallopt:
    """A stand-in for glibc's mallopt that records its calls and answers `answer`."""

    def __init__(self, answer=1):
        self.calls, self.answer = [], answer

    def __call__(self, param, value):
        self.calls.append((param, value))
        return self.answer


def _no_dispatch_change():
    raise AssertionError("jax's dispatch mode must not change here")


def test_malloc_set_before_a_backend(monkeypatch):
    monkeypatch.setattr(_xla_cpu, "_backends_started", lambda: False)
    m, dispatched = _Mallopt(), []
    assert _xla_cpu.set_default_malloc(ON, m, lambda: dispatched.append(1)) == "set"
    assert m.calls == [(-4, 0), (-1, 1 << 30)]     # mmap max 0, trim threshold 1 GiB
    assert dispatched == [1]                        # and programs run on the calling thread
    assert _xla_cpu.set_default_malloc(ON, _Mallopt(answer=0), lambda: None) == "refused"


@pytest.mark.parametrize("env, status", [
    ({"FNNET_CPU_MALLOC": "0"}, "off"),
    ({}, "off"),
    ({**ON, "MALLOC_ARENA_MAX": "4"}, "user"),
    ({**ON, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "user"),
    ({**ON, "JAX_CPU_ENABLE_ASYNC_DISPATCH": "true"}, "user"),
])
def test_malloc_user_choice_wins(monkeypatch, env, status):
    monkeypatch.setattr(_xla_cpu, "_backends_started", lambda: False)
    m = _Mallopt()
    assert _xla_cpu.set_default_malloc(env, m, _no_dispatch_change) == status and m.calls == []


def test_malloc_too_late_or_not_glibc(monkeypatch):
    m = _Mallopt()
    monkeypatch.setattr(_xla_cpu, "_backends_started", lambda: True)
    assert _xla_cpu.set_default_malloc(ON, m, _no_dispatch_change) == "too late" and m.calls == []
    monkeypatch.setattr(_xla_cpu, "_glibc_mallopt", lambda: None)
    assert _xla_cpu.set_default_malloc(ON, None, _no_dispatch_change) == "not glibc"


# A jitted program whose temporaries are one block above 64 MB (the most a worker thread's
# glibc arena can hold, and twice glibc's 32 MB mmap ceiling): the median minor page faults
# of 15 calls after warm-up (the heap may still grow once or twice while it settles), how
# many pages that block has, and jax's dispatch mode.
_FAULTS = r"""
import json, resource, statistics, jax, jax.numpy as jnp
import fnnet
def f(x):
    a = jax.lax.optimization_barrier(jnp.sin(x))        # materialized temporaries
    b = jax.lax.optimization_barrier(a * x)
    return (a + b).sum()
x = jnp.full((20 * 2**20,), 0.5, jnp.float32)          # 80 MB: so is the block of temporaries
temp = jax.jit(f).lower(x).compile().memory_analysis().temp_size_in_bytes
g = jax.jit(f)
faults = []
for i in range(20):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    g(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print(json.dumps([fnnet.MALLOC_STATUS, statistics.median(faults[5:]), temp / resource.getpagesize(),
                  jax.config.values["jax_cpu_enable_async_dispatch"]]))
"""


def _faults(extra_env):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in ("FNNET_CPU_MALLOC", "JAX_CPU_ENABLE_ASYNC_DISPATCH")}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env={**env, **extra_env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_opt_in_keeps_xla_temporaries_mapped_in_a_fresh_process():
    status, faults, pages, async_dispatch = _faults(ON)
    if status == "not glibc":
        pytest.skip("the malloc setting applies to glibc only")
    assert status == "set" and async_dispatch is False
    assert pages > 64 * 256                              # the block is above a thread arena's heap
    assert faults < pages / 20, f"median {faults} minor faults per call for a {pages:.0f}-page block"
    # the control: without it every call faults the block in again (unless the kernel backs
    # anonymous memory with huge pages on its own, then faults are 512x fewer)
    status_off, faults_off, _, async_off = _faults({})
    assert status_off == "off" and async_off is True
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
        thp_always = "[always]" in fh.read()
    if not thp_always:
        assert faults_off > pages / 2, f"control: {faults_off} faults, {pages:.0f} pages"
