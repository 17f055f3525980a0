"""The float64 replay: a rule checked in float32 is also run, unchanged, in float64.

A float32 check can only resolve what float32 resolves: rtol 1e-4 (fnnet.check.compare)
leaves room for the rounding of sums over ~10^5 terms, so a rule that is wrong by less
than that passes in float32, e.g. a mean's gradient divided by n - 1 instead of n with
n = 10^5 (relative error 1e-5), a Bessel-corrected variance in the backward of a
population-variance forward over 10^4 elements, or a constant off in its fifth digit.
Such a rule is wrong in every dtype: run in float64 it differs from float64 autodiff by
the same 1e-5, now 10^5 times its tolerance.

So whenever the hand-written side runs coarser than float64, the check runs the same
callables once more with every floating primal and the cotangent cast to float64 (exact:
float32 values are float64 values) and, leaf by leaf, judges that run as a float64 check
would: against jax.vjp in float64 (element by element, kinks and outvoted autodiff as
usual), the reference, and the float64 finite differences the check computed anyway (no
new evaluations of fun unless a failure is localized), at the float64 tolerances and floors.
A failure there adds a row ("..., rule in float64") that fails the report, on a leaf whose
rows in the check's own dtype all passed (a bug they caught needs no second row); agreement
adds nothing. Run in one jitted program with jax.vjp, as a float64 check runs them, so both
see the same forward values (a saturated tanh's 1 - t² is then rounded alike on both sides).

Not replayed: a rule or fun that does not run in float64 (raises, or its outputs stay
float32: a rule that casts to float32 is judged at float32 only, and the header says so),
and checks given rtol=/atol= (the caller chose the precision). float64_replay=False turns
it off, for a rule that is an approximation good to float32 only (then it is not the
derivative, and a float64 check would fail it too).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Replay:
    """hand: {leaf name: float64 values} of the rule run in float64 (leaves whose result
    came back in float64 only); jax: {leaf name: jax.vjp in float64} or None; why: why
    some or all leaves were not replayed ("" when all were)."""
    hand: dict
    jax: Optional[dict]
    why: str = ""


def _to64(a):
    return a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a


def run_jax(fun, primals, ct):
    """jax.vjp of fun with every floating primal and the cotangent in float64, or None when
    fun does not run in float64 (its output stays coarser, or it refuses float64)."""
    with jax.enable_x64(True):
        try:
            p64, c64 = jax.tree.map(_to64, primals), jax.tree.map(_to64, ct)
            if any(l.dtype != jnp.float64 for l in jax.tree.leaves(jax.eval_shape(fun, *p64))):
                return None
            return jax.device_get(jax.jit(lambda p, c: jax.vjp(fun, *p)[1](c))(p64, c64))
        except Exception:      # a forward that refuses float64 simply has no such witness
            return None


@dataclasses.dataclass(frozen=True)
class Coarse:
    """The check's callables run in a coarser dtype (run_at): leaves {leaf name: (the rule's
    values, jax.vjp's)} in float64, and g = <ct, fun> computed from that run's output."""
    leaves: dict
    g: float


def run_at(evaluate, primals, ct, leaves, dtype):
    """A Coarse with every floating primal and the cotangent cast to `dtype` (coarser than the
    check's), or None when fun or the rule does not run there or returns non-finite values:
    compare.rounding_floor and FiniteDifferences.measure_rounding measure the rounding of the
    sums behind each entry and behind g with it. evaluate: as for run."""
    cast = lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
    c = jax.tree.map(cast, ct)
    try:
        y, out, by_jax, _ = jax.device_get(evaluate(jax.tree.map(cast, primals), c))
    except Exception:      # a fun or rule that refuses the coarse dtype: no measurement
        return None
    hand = [np.asarray(v, np.float64) for h in out for v in jax.tree.leaves(h)] if isinstance(out, (tuple, list)) else []
    auto = [np.asarray(v, np.float64) for v in jax.tree.leaves(by_jax)]
    if len(hand) != len(leaves) or len(auto) != len(leaves) or any(
            v.shape != l.shape or not np.isfinite(v).all() for v, l in zip(hand + auto, leaves + leaves)):
        return None
    g = sum(float(np.sum(np.asarray(ci, np.float64) * np.asarray(v, np.float64)))
            for ci, v in zip(jax.tree.leaves(c), jax.tree.leaves(y)) if ci.dtype != jax.dtypes.float0)
    return Coarse({l.name: (h, a) for l, h, a in zip(leaves, hand, auto)}, g)


def leaf_dict(tree, leaves):
    """{leaf name: float64 values} of a cotangent tree in the primals' leaf order, or None."""
    if tree is None:
        return None
    flat = [np.asarray(v, np.float64) for v in jax.tree.leaves(tree)]
    return dict(zip([l.name for l in leaves], flat)) if len(flat) == len(leaves) else None


def run(evaluate, primals, ct, leaves, independent):
    """The replay (see the module doc), or a Replay with no leaves and the reason.

    evaluate(primals, ct) -> (y, hand-written cotangents, jax.vjp's cotangents, flags): the
    check's own evaluation (fun, the rule and jax.vjp in one jitted program, as a float64
    check runs them: autodiff and the rule then share the forward's values), here called
    with every floating primal and the cotangent in float64, under x64.
    """
    with jax.enable_x64(True):
        try:
            p64, c64 = jax.tree.map(_to64, primals), jax.tree.map(_to64, ct)
            y, out, by_jax, _ = jax.device_get(evaluate(p64, c64))
        except Exception as e:      # a fun or rule that refuses float64: judged at its own dtype only
            return Replay({}, None, f"fun or the rule does not run in float64 ({type(e).__name__})")
    if any(np.dtype(getattr(l, "dtype", np.float32)) != np.float64 for l in jax.tree.leaves(y)):
        return Replay({}, None, "fun's output stays coarser than float64")
    got, why = {}, []
    if not isinstance(out, (tuple, list)) or len(out) != len(primals):
        return Replay({}, None, "the rule's float64 result does not match the primals")
    for i, h in enumerate(out):
        mine = [l for l in leaves if l.primal == i]
        vals = jax.tree.leaves(h)
        if len(vals) != len(mine):
            continue
        for leaf, v in zip(mine, vals):
            if tuple(np.shape(v)) == leaf.shape and np.dtype(getattr(v, "dtype", np.float32)) == np.float64:
                got[leaf.name] = np.asarray(v, np.float64)
            else:
                why.append(leaf.name)
    flat = [np.asarray(v, np.float64) for v in jax.tree.leaves(by_jax)]
    jax_leaves = dict(zip([l.name for l in leaves], flat)) if independent and len(flat) == len(leaves) else None
    note = (f"the rule's result for {', '.join(why)} stays coarser than float64 when run in float64"
            if why else "")
    return Replay(got, jax_leaves, note)


def label(oracle: str) -> str:
    return f"{oracle}, rule in float64"


def note(what: str) -> str:
    return (f"float64 replay: the same rule run with its inputs in float64 differs from {what} beyond "
            f"float64's tolerance, so it is wrong by less than float32 resolves (a float32 check alone "
            f"passes it), not rounded; if the rule is an approximation good to float32 only, pass "
            f"float64_replay=False")


def judge(leaf, h64, j64, ref, fd, adjudicate, floor64, independent, fd_args, stops=0):
    """The replay's rows for one leaf: only failures (agreement adds nothing).

    h64/j64: the rule's and jax.vjp's float64 values (j64 None: jax.vjp is no independent
    witness); ref: the reference's values or None; fd: the check's FiniteDifferences (None:
    none); adjudicate(bad, h=, j=, floor=, rt_fd=): the check's per-element adjudicator;
    fd_args: (per_element, directions, block, localize_max, rng) as the check's fd row.
    stops: stop_gradient equations in fun: with the float64 rule agreeing with jax.vjp, the
    differences (the function's own derivative) are not asked (verdict.judge_leaf).
    """
    from fnnet.check.compare import RTOL, RTOL_FD, compare
    from fnnet.check.rows import fd_row, majority_fn, oracle_row
    rt = RTOL[np.dtype("float64")]
    rows, allowed = [], -1.0
    adj = None
    if fd is not None:
        adj = lambda bad: adjudicate(bad, h=h64, j=h64 if j64 is None else j64, floor=floor64, rt_fd=RTOL_FD)
    fin = lambda a: float(np.abs(a[np.isfinite(a)]).max(initial=0.0))
    if j64 is not None:
        res = compare(h64, j64, rt, floor64, adj,
                      majority=majority_fn(adj, h64, ref, rt, floor64, j64) if adj is not None else None)
        allowed = res.tol * max(fin(h64), fin(j64))
        if not res.ok:
            row = oracle_row(leaf.name, label("jax.vjp"), "replay64", res, True, [])
            rows.append(dataclasses.replace(row, note="; ".join(filter(None, [note("jax.vjp in float64"), row.note]))))
    if ref is not None:
        res = compare(h64, ref, rt, floor64, adj, yardstick=None if j64 is None else (j64, np.dtype("float64")))
        if not res.ok:
            row = oracle_row(leaf.name, label("reference"), "replay64", res, True, [])
            rows.append(dataclasses.replace(row, note="; ".join(filter(None, [note("the reference"), row.note]))))
    if fd is not None and not (stops and j64 is not None and not rows):   # see verdict.judge_leaf
        full, directions, block, localize_max, rng = fd_args
        row = fd_row(fd, leaf, h64, h64 if j64 is None else j64, RTOL_FD, floor64, allowed, np.dtype("float64"),
                     full, directions, block, localize_max, rng, j64 is not None and independent)
        if row.status == "FAIL":
            rows.append(dataclasses.replace(row, oracle=label(row.oracle), kind="replay64",
                                            note="; ".join(filter(None, [note("finite differences"), row.note]))))
    return rows


def explain(rows, name, dtype, failed64):
    """The failed rows of leaf `name` (checked in `dtype`), with what the replay says of them:
    failed64 False: the same rule run in float64 passes at float64's tolerances, so the
    failure is the coarse dtype's alone (rounding, cancellation, overflow in it): a precision
    problem, not a math bug; True: it fails in float64 too: the rule's math is wrong."""
    text = (f"{dtype}-only: the same rule replayed in float64 passes at float64's tolerances, so this "
            f"is a precision problem of {dtype} (rounding, cancellation, overflow), not a math bug"
            if not failed64 else
            "the same rule replayed in float64 fails too: a math bug, not a precision problem")
    return [dataclasses.replace(r, note="; ".join(filter(None, [text, r.note])))
            if r.primal == name and r.status == "FAIL" else r for r in rows]
