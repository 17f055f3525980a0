"""What fnnet sets for the process at import so that XLA:CPU programs run fast (unless the
user decided otherwise): one XLA:CPU flag, and glibc malloc's handling of large blocks with
jax's CPU dispatch mode.

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

The memory setting. Every call of a compiled program allocates its temporaries as ONE block
(the GPT step at M: 56 MB; L: 81 MB; XL: 488 MB) and frees it on return. glibc serves a block
above 32 MB with a fresh mmap and gives it back with munmap, so each call page-faulted the
whole block in again: a per-call jitted GPT step at L took 20,000-25,000 minor faults a
step, XL 130,000, and even fit's lax.scan (one call for many steps) 6,300 (L) and 60,000
(XL), most of the gap between a user's own jitted step and fit, and a few per cent of fit.
set_default_malloc() makes glibc keep such blocks for reuse, in three parts:
  1. no mmap for large blocks (M_MMAP_MAX 0): they come from a heap;
  2. freed memory at the top of a heap is returned to the system only beyond 1 GiB
     (M_TRIM_THRESHOLD), so a freed block stays mapped for the next call;
  3. jax's CPU client runs each single-device program on the calling thread
     (jax_cpu_enable_async_dispatch False) instead of handing it to a worker thread. This
     is what lets 1 and 2 work above 64 MB: a worker thread allocates from its own glibc
     arena, whose heaps are at most 64 MB, so a larger block is mmapped whatever the
     settings; the main thread's arena grows without that bound.
Measured (minor faults per step, `python scripts/bench_malloc.py`): L 23,759 -> 4 (jitted
step) and 3,654 -> 1 (lax.scan), XL 127,757 -> 3 and 33,859 -> 3.

An earlier form of this setting kept the blocks with ONE arena for every thread (M_ARENA_MAX
1) instead of part 3; that arena's lock is what XLA's compiler threads then contended for:
`fnnet check` (98 checks, compile-bound) took 51.9 s instead of 36.8 s. Parts 1-3 leave each
thread its arena, so compiling is not slowed.

What it costs.
- Memory: freed blocks stay with the process for reuse (up to 1 GiB at the top of the heap)
  instead of going back to the system, and the heap settles only after a few calls have
  grown it: small allocations take pieces of a freed block, so the next block must go
  elsewhere. A large array freed below a live one also stays resident (reused by later
  allocations) where mmap would have returned it; the user's own large NumPy arrays come
  from the heap too.
- No asynchronous dispatch on CPU: a jitted call returns when its result is ready, so Python
  cannot prepare the next batch while a step runs (the MLP row below). Multi-device CPU
  programs are dispatched as before (jax's option covers single-device ones).
- In one XL pair the same steps inside lax.scan ran 4 % slower with it (fewer faults, more
  time): one pair at load 2, not settled.

Why it is opt-in (FNNET_CPU_MALLOC=1), not a default: part 3 takes asynchronous dispatch
away, and a small step is where that shows. `python scripts/bench_malloc.py` (alternating
child processes, 2026-12-06, load 1.8-2.7, minimum over pairs, ms per step):
  GPT L  jitted step 162.0 -> 136.6, in lax.scan 144.6 -> 138.6 (2 pairs)
  GPT XL jitted step 1083.5 -> 968.3, in lax.scan 1008.1 -> 1050.8 (1 pair)
  MLP 64-256-256-10, batch 32, sliced from NumPy per call: 0.34 -> 0.44 (3 pairs)
and `fnnet check` (compile-bound) 41.0 s without, 42.5 s with (farm-bench, 3 pairs, a ratio
of 0.94-1.15: no measurable cost). A learner's small model runs ~1.3x slower per call
without the hand-off, which the default must not cost them; a user training a large model
through their own jitted step turns it on.
Where: only where the C library is glibc; only before a backend starts (mallopt would still
act, but the client's dispatch mode is fixed when it starts, and a half setting is worse
than none); not if the user set MALLOC_ARENA_MAX, MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_,
MALLOC_MMAP_THRESHOLD_, a glibc.malloc tunable or JAX_CPU_ENABLE_ASYNC_DISPATCH (their choice
wins). fnnet.MALLOC_STATUS says what happened.
"""
from __future__ import annotations

import ctypes
import os
import sys

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


# glibc's mallopt parameters (malloc.h) and the values fnnet sets: see the module docstring
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
MALLOC_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30))
_USER_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
# jax's option that runs each CPU program on the calling thread instead of a worker thread
ASYNC_DISPATCH = "jax_cpu_enable_async_dispatch"


def _glibc_mallopt():
    """The process's mallopt, or None where the C library is not glibc."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""    # "glibc 2.36" where the C library is glibc
    except (AttributeError, ValueError, OSError):
        return None
    if not sys.platform.startswith("linux") or not libc.startswith("glibc"):
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int   # int mallopt(int, int)
    return mallopt


def _run_on_calling_thread():
    import jax
    jax.config.update(ASYNC_DISPATCH, False)


def set_default_malloc(environ=None, mallopt=None, run_on_calling_thread=None):
    """-> what happened: "off" (the default: FNNET_CPU_MALLOC=1 asks for it), "set", "user"
    (the environment sets glibc malloc options or jax's dispatch), "too late" (a backend
    started), "not glibc", or "refused" (glibc rejected a setting; the others still apply,
    each is independent)."""
    env = os.environ if environ is None else environ
    if env.get("FNNET_CPU_MALLOC", "0").strip() != "1":
        return "off"
    if (any(k in env for k in _USER_MALLOC_ENV) or "glibc.malloc" in env.get("GLIBC_TUNABLES", "")
            or ASYNC_DISPATCH.upper() in env):
        return "user"
    mallopt = _glibc_mallopt() if mallopt is None else mallopt
    if mallopt is None:
        return "not glibc"
    if _backends_started():
        return "too late"
    ok = [mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS]   # mallopt: 1 success, 0 error
    (_run_on_calling_thread if run_on_calling_thread is None else run_on_calling_thread)()
    return "set" if all(ok) else "refused"
