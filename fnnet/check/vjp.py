"""check_vjp: one hand-written vjp against jax.vjp, a reference and float64 finite differences.

The public entry: real primals and outputs go to the pipeline (fnnet.check.core.run_check),
complex ones to check_complex_vjp, which splits them into real pairs in JAX's conjugation
convention and runs the same pipeline (so neither module imports this one).
"""
from __future__ import annotations

from fnnet.check import complex_vjp
from fnnet.check.core import run_check


def check_vjp(fun, vjp, *primals, cotangent=None, key=None, reference=None, nondiff=(), mode="auto",
              names=None, directions=4, detect=1e-3, full_max=2000, full_budget=1024, localize_max=50_000,
              step=1e-6, rtol=None, atol=None, jit=True, float64_replay=True, title=None):
    """Compare a hand-written vjp with jax.vjp, an optional reference and finite differences.

    fun(*primals) -> y: pure JAX (y an array or pytree of floating arrays).
    vjp(*primals, cotangent) -> tuple with one cotangent per primal, each of its primal's
        tree, shapes and dtype (e.g. (DenseParams(dw, db), dx)); see nondiff for the others.
    cotangent: tree of y; default standard normal drawn from `key`.
    key: jax.random key or int seed (default key(0)); cotangent and directions derive from it.
    reference: callable like vjp but on NumPy float64 arrays, or None (reported "n/a").
    nondiff: positions (int) or names (str) of primals held fixed and not differentiated:
        integer indices, bool masks, PRNG keys, static config (jax.custom_vjp's
        nondiff_argnums). Primals whose leaves are all non-floating are nondiff without
        being named. They go unchanged to fun, vjp, the reference and every witness; the
        vjp returns None/float0/zeros for them, or cotangents for the others only
        (fnnet.check.nondiff).
    mode: "auto": per element for leaves of <= full_max elements, smallest first, while the
        check's per-element total stays <= full_budget (each element costs two evaluations
        of fun); the other leaves directional. When jax.vjp is not an independent witness
        (fun contains a user custom rule) localize_max stands for both limits. "full": always per element. "directional":
        `directions` random directions per leaf plus block directions (detect).
    detect: directional power: block directions (random ±1 on blocks of detect / rtol
        elements, at most 256 blocks) always catch a single entry whose error exceeds
        detect × the mean |hand_k · max(1, |x_k|)| over its block; None: random only.
        A failing direction is re-run per element on its block (or the whole leaf, if it has
        <= localize_max elements) to find the index.
    step: finite-difference step, scaled per element by max(1, |x_i|).
    rtol, atol: override the dtype-aware relative tolerance (every row, finite differences
        included) and the resolution floor (fnnet.check.compare); None keeps the defaults.
    jit: evaluate fun, vjp and jax.vjp inside one jax.jit (one compilation instead of one
        per eager op); jit=False runs them eagerly, exactly as given.
    float64_replay: a rule checked in a coarser dtype is also run with its inputs in float64
        and judged at float64's tolerances (fnnet/check/replay.py): a bug smaller than
        float32 resolves still fails. False: judge at the check's own dtype only.
    names: display names of the primals (default: fun's parameter names).
    Complex primals or outputs (complex64/complex128 leaves anywhere): checked in JAX's
        conjugation convention by check_complex_vjp (fnnet.check.complex_vjp): the vjp takes
        and returns complex cotangents as jax.vjp does, rows name the parts <leaf>.re, <leaf>.im.
    Returns a Report; never raises for a wrong answer (raise_if_failed() does), but raises
    ValueError/TypeError when the vjp's output cannot be matched to the primals at all.
    """
    if complex_vjp.has_complex(primals, cotangent) or complex_vjp.complex_output(fun, primals):
        return complex_vjp.check_complex_vjp(
            fun, vjp, *primals, cotangent=cotangent, key=key, reference=reference, nondiff=nondiff, mode=mode,
            names=names, directions=directions, detect=detect, full_max=full_max, full_budget=full_budget,
            localize_max=localize_max, step=step, rtol=rtol, atol=atol, jit=jit, float64_replay=float64_replay,
            title=title)
    return run_check(fun, vjp, *primals, cotangent=cotangent, key=key, reference=reference, nondiff=nondiff,
                     mode=mode, names=names, directions=directions, detect=detect, full_max=full_max,
                     full_budget=full_budget, localize_max=localize_max, step=step, rtol=rtol, atol=atol,
                     jit=jit, float64_replay=float64_replay, title=title)
