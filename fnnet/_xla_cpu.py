"""The XLA:CPU flag fnnet sets for the process at import (unless the user decided otherwise).

XLA:CPU's concurrency-optimized scheduler orders a program's ops to run independent ones
on separate threads. A training step of a small transformer is hundreds of small fusions
whose threads then wait on one another: a per-call jitted GPT step (T64, 2 layers, C64,
batch 32) ran 1.9x slower than the same program inside fit's lax.scan, and the option
below closed that gap (measured on a quiet 2-core EPYC; `fnnet bench --workloads
GPT-torch`; `python scripts/bench_xla_scheduler.py` is the A/B of this flag alone).

Why a process flag and not a per-program option: jax.jit(step, compiler_options={...:
False}) is accepted but, on jax 0.10.2's CPU client, compiles the same program as without it
(scripts/bench_xla_scheduler.py compares the compiled HLO), while XLA_FLAGS changes it.

set_default_xla_flags(): run once at `import fnnet`; appends the flag to XLA_FLAGS so that
every program in the process, the user's own jax.jit steps included, gets it, but only if
(a) jax's backends are not initialized yet (XLA reads XLA_FLAGS once, when the first
backend starts: later changes would be silently ignored, so fnnet does not pretend),
(b) XLA_FLAGS does not already name the flag (the user's choice wins), and
(c) FNNET_XLA_FLAGS is not "0" (opt out: FNNET_XLA_FLAGS=0 python ...).
The flag is a CPU-backend flag: GPU and TPU backends ignore it.

What it costs: memory. The default scheduler also orders ops to free buffers early; without
it more are alive at once. A 12 x 256 ReLU net's SGD step at batch 512 (float32) holds 12.1 MB
of temporaries instead of 7.3 MB (jax.grad's step: 13.1 MB either way;
tests/layers/test_activation_memory.py). A user short of memory sets FNNET_XLA_FLAGS=0.
"""
from __future__ import annotations

import os

SCHEDULER_FLAG = "xla_cpu_enable_concurrency_optimized_scheduler"


def _backends_started():
    try:
        from jax._src import xla_bridge
    except ImportError:            # a jax without this module: assume started, change nothing
        return True
    started = getattr(xla_bridge, "backends_are_initialized", None)
    if started is None:
        return bool(getattr(xla_bridge, "_backends", True))
    return bool(started())


def set_default_xla_flags(environ=None):
    """-> what happened: "set", "user" (XLA_FLAGS names the flag), "opted out", "too late"."""
    env = os.environ if environ is None else environ
    if env.get("FNNET_XLA_FLAGS", "1").strip() == "0":
        return "opted out"
    flags = env.get("XLA_FLAGS", "")
    if SCHEDULER_FLAG in flags:
        return "user"
    if _backends_started():
        return "too late"
    env["XLA_FLAGS"] = (flags + " " if flags.strip() else "") + f"--{SCHEDULER_FLAG}=false"
    return "set"
