"""What fnnet sets for the process at import so that XLA:CPU programs run fast (unless the
user decided otherwise): one XLA:CPU flag, and glibc malloc's handling of large blocks.

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

The malloc setting. Every call of a compiled program allocates its temporaries as ONE block
(the GPT step at M: 56 MB; L: 81 MB; XL: 488 MB) from an XLA worker thread, and frees it on
return. glibc serves a block above 32 MB with a fresh mmap and gives it back with munmap
(a non-main thread's arena cannot keep it either: its heaps are at most 64 MB and are unmapped
once empty), so each call page-faults the whole block in again: a per-call jitted GPT step at
M took 14,000 minor faults and 20 ms of kernel time per step, where the same step inside
fit's lax.scan (one call for many steps) took 1,700 and 1.4 ms, and that was the gap between
a user's own jitted step and fit at M and L. set_default_malloc() makes glibc keep such
blocks for reuse: one arena for every thread (M_ARENA_MAX 1), no mmap for large blocks
(M_MMAP_MAX 0: they come from the main heap, which a freed block does not leave), and freed
memory at the top of the heap returned to the system only beyond 1 GiB (M_TRIM_THRESHOLD).
Measured with `python scripts/bench_malloc.py` (alternating child processes, minimum over
pairs, process CPU time per step of a user's jitted step, which load disturbs far less than
wall time): M 106 -> 80 ms (faults 14,000 -> 0; load 6), L 292 -> 252 ms (load 5), XL 1892 ->
1732 ms (one pair, load 4), each now level with the same step inside lax.scan; S unchanged
(its block is below 32 MB: no faults either way).

What it costs: memory. Freed blocks stay with the process for reuse (up to 1 GiB at the top
of the heap) instead of going back to the system, and the heap settles only after a few
calls have grown it: small allocations take pieces of a freed block, so the next block
must go elsewhere. Resident memory then holds about 1.5-3 blocks more than without the
setting and stays there (measured, a per-call jitted step: M +80 MB, L +190-270 MB, flat
from the 30th to the 60th step; XL's peak +840 MB on its 488 MB block). A large array freed
below a live one also stays resident (reused by later allocations) where mmap would have
returned it. Threads share one arena, so heavily multi-threaded malloc traffic (not XLA's:
one block per call) contends for its lock; PyTorch's eager GPT step in the same process ran
as fast with it as without. Only where the C library is glibc; only before a backend starts
(its threads would already have arenas); not if the user set MALLOC_ARENA_MAX,
MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ or a glibc.malloc tunable
(their choice wins).

Why it is opt-in (FNNET_CPU_MALLOC=1), not a default: one arena for every thread is what
keeps the block (without M_ARENA_MAX 1 the L step still faulted 24,000 pages a call: an
81 MB block does not fit a thread arena's 64 MB heap), and that one arena's lock is what
XLA's compiler threads then contend for. Measured on the idle 2-core machine, `fnnet check`
(98 checks, compile-bound) took 51.9 s with the setting and 36.8 s without (system time
8.8 s vs 1.9 s), M_ARENA_MAX 1 alone 1.66x the time on a 14-check subset, the other two
settings alone no slower. A library whose checker is its core must not make every compile
40 % slower on import; a user training a large model through their own jitted step (M: 1.24x
faster) turns it on.
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
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
MALLOC_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30))
_USER_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


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


def set_default_malloc(environ=None, mallopt=None):
    """-> what happened: "off" (the default: FNNET_CPU_MALLOC=1 asks for it), "set", "user"
    (the environment sets glibc malloc options), "too late" (a backend started), "not glibc",
    or "refused" (glibc rejected a setting; the others still apply, each is independent)."""
    env = os.environ if environ is None else environ
    if env.get("FNNET_CPU_MALLOC", "0").strip() != "1":
        return "off"
    if any(k in env for k in _USER_MALLOC_ENV) or "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        return "user"
    mallopt = _glibc_mallopt() if mallopt is None else mallopt
    if mallopt is None:
        return "not glibc"
    if _backends_started():
        return "too late"
    ok = [mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS]   # mallopt: 1 success, 0 error
    return "set" if all(ok) else "refused"
