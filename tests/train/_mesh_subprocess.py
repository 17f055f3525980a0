"""The 8-device cases run in a subprocess (JAX's device count is fixed per process).

run(cases, path): in the worker, call each case(out), time it, record a crash as text
instead of raising, and write out to path as JSON; record_errors(cases, out): the
exception each bad-input call raises. launch(script, tmp_path_factory): in the
test, run the worker on a clean CPU-only environment (child_env) and return its checked
results.
"""
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(cases, path):
    import jax
    out = {"devices": jax.device_count()}
    for case in cases:
        try:
            t, c = time.perf_counter(), time.process_time()
            case(out)
            out[f"seconds/{case.__name__}"] = [round(time.perf_counter() - t, 2),
                                               round(time.process_time() - c, 2)]
        except Exception:  # noqa: BLE001 - reported, and the test fails on it
            out[f"crash/{case.__name__}"] = traceback.format_exc()
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


def record_errors(cases, out):
    """out["bad/NAME"] = [exception type, message] of each bad-input call (None: it ran)."""
    for name, call in cases.items():
        try:
            call()
            out[f"bad/{name}"] = None
        except Exception as e:  # noqa: BLE001 - the test asserts the type and message
            out[f"bad/{name}"] = [type(e).__name__, str(e)]


# The workers' cost is XLA:CPU compiling dozens of small programs. LLVM's optimization level
# 0 takes ~40% less compile time (measured on _fsdp_cases.py: 39 s of CPU against 66 s) and
# leaves the HLO alone: the collectives and memory_analysis() the tests count are identical.
# Float results move by rounding (each comparison compiles both sides the same way), which is
# why it is a choice per worker: only workers whose every bound holds at both levels take it.
# test_sharding.py's float32 bounds are derived from eps, the summed terms and the steps (its
# bound()), so its worker takes level 0; at level 0 test_tensor_parallel.py's AdamW moments
# came out 2.5e-12 from one device (bound 1e-12), so that worker compiles at the default level.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def child_env(fast_compile=False):
    """The environment of a worker: this checkout importable, CPU only, and XLA_FLAGS
    FAST_COMPILE (fast_compile) or none."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu", XLA_FLAGS=FAST_COMPILE if fast_compile else "")
    return env


def launch(script, tmp_path_factory, devices=8, fast_compile=False):
    path = tmp_path_factory.mktemp(os.path.splitext(script)[0].strip("_")) / "cases.json"
    env = child_env(fast_compile)
    proc = subprocess.run([sys.executable, os.path.join(HERE, script), str(path)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(path.read_text())
    crashes = {k: v for k, v in out.items() if k.startswith("crash/")}
    assert not crashes, "\n".join(crashes.values())
    assert out["devices"] == devices
    return out
