"""A jax.custom_vjp rule called as jax calls it when it was defined with symbolic_zeros=True.

    call_fwd(f, primals, nd)           # f.fwd(*primals), each differentiable leaf wrapped as jax wraps it
    call_rule(f, primals, diff, ct)    # fwd then bwd: the cotangents of the primals at positions diff
    given_as_object(f, second); as_fun_vjp(f, n, where)   # a custom_vjp as (f.fun, vjp, nondiff positions)
    check_symbolic_zeros(f, *primals)  # the rule handed a SymbolicZero cotangent == handed zeros

With `f.defvjp(fwd, bwd, symbolic_zeros=True)` jax hands fwd every leaf of a differentiable
argument as `CustomVJPPrimal(value, perturbed)` (perturbed: the leaf is being differentiated)
and may hand bwd a `SymbolicZero` in place of a cotangent that is known to be zero. The
checkers that call a rule directly (check_custom_vjp, check_transforms, check_adjoint,
taylor_test) go through here.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from fnnet.check import nondiff as _nd
from fnnet.check.compare import ROUNDINGS, compare, eps, rtol as dtype_rtol
from fnnet.check.complex_vjp import merge, real_view, split
from fnnet.check.inputs import make_cotangent, primal_names, rng_for, to_device, x64_context
from fnnet.check.report import Report, Row
from fnnet.check.rows import oracle_row
from fnnet.check.verdict import Status


def call_fwd(f, primals, nd):
    """f.fwd(*primals) -> (y, residuals). primals: all of f's arguments in order; nd: the
    positions in f.nondiff_argnums (passed unwrapped). Without symbolic_zeros the arguments
    go as they are; with it each leaf of a differentiable argument arrives as
    CustomVJPPrimal(value, perturbed), perturbed for floating leaves."""
    if not getattr(f, "symbolic_zeros", False):
        return f.fwd(*primals)

    def wrap(leaf):
        return CustomVJPPrimal(leaf, bool(jnp.issubdtype(jnp.result_type(leaf), jnp.floating)))

    return f.fwd(*[p if i in nd else jax.tree.map(wrap, p) for i, p in enumerate(primals)])


def is_custom_vjp(f) -> bool:
    """f is a jax.custom_vjp (defvjp called or not)."""
    return all(hasattr(f, a) for a in ("fun", "fwd", "bwd", "nondiff_argnums"))


def given_as_object(f, second) -> bool:
    """check(f, *primals) rather than check(fun, vjp, *primals): f is a jax.custom_vjp or
    custom_jvp and what follows it is not a callable (a primal, never a rule)."""
    return isinstance(f, (jax.custom_vjp, jax.custom_jvp)) and not callable(second)


def rule_name(f) -> str:
    fun = getattr(f, "fun", f)
    return getattr(fun, "__name__", type(fun).__name__)


def require_custom_vjp(f, where):
    """TypeError naming `where` unless f is a jax.custom_vjp with defvjp called (a custom_jvp:
    "use check_jvp")."""
    if hasattr(f, "jvp") and hasattr(f, "fun") and not hasattr(f, "bwd"):
        raise TypeError(f"{where}: {rule_name(f)} is a jax.custom_jvp: its rule is a JVP; "
                        f"use check_jvp(f, *primals) (or check_adjoint for its transpose)")
    if not is_custom_vjp(f) or getattr(f, "fwd", None) is None:
        raise TypeError(f"{where}: expected a jax.custom_vjp function with defvjp(fwd, bwd) "
                        f"called, got {type(f).__name__} (a jax.jit-wrapped custom_vjp: pass the inner one)")


def as_fun_vjp(f, n, where):
    """(f.fun, vjp, nondiff positions) of a jax.custom_vjp f of n arguments: vjp(*primals, ct)
    runs f's own fwd then bwd (call_rule) and returns one cotangent per argument, None at
    f.nondiff_argnums, so every check taking (fun, vjp) takes f's rule as it is."""
    require_custom_vjp(f, where)
    nd = tuple(int(i) for i in f.nondiff_argnums)
    diff = [i for i in range(n) if i not in nd]

    def vjp(*args):
        *p, ct = args
        got = dict(zip(diff, call_rule(f, tuple(p), diff, ct, where)))
        return tuple(got.get(i) for i in range(n))
    return f.fun, vjp, nd


def call_rule(f, primals, diff, ct, where="check"):
    """The custom_vjp's rule called directly: fwd, then bwd on its residuals and ct.

    primals: all of f's arguments in order; diff: the positions whose cotangents are wanted
    (none of f.nondiff_argnums). bwd returns one cotangent per argument not in nondiff_argnums;
    None there is a zero cotangent (jax's convention). Returns a tuple, one per position in diff.
    """
    nd = tuple(int(i) for i in f.nondiff_argnums)
    _, res = call_fwd(f, primals, nd)
    out = f.bwd(*[primals[i] for i in nd], res, ct)
    others = [i for i in range(len(primals)) if i not in nd]
    if not isinstance(out, (tuple, list)) or len(out) != len(others):
        raise ValueError(f"{where}: bwd must return a tuple with one cotangent per non-nondiff "
                         f"argument ({len(others)}), got {type(out).__name__}"
                         f"{' of length %d' % len(out) if isinstance(out, (tuple, list)) else ''}")
    by_pos = dict(zip(others, out))
    return tuple(jax.tree.map(jnp.zeros_like, primals[i]) if by_pos[i] is None else by_pos[i] for i in diff)


def check_symbolic_zeros(f, *primals, key=None, nondiff=(), rtol=None, jit=True):
    """A symbolic_zeros=True rule handed a SymbolicZero cotangent vs the same rule handed zeros.

    f: a jax.custom_vjp defined with defvjp(fwd, bwd, symbolic_zeros=True), whose output y
    has several leaves. For each output leaf out[k], with random normal cotangents on the
    others (from key), two rows compare the cotangents of the differentiable primals with
    those bwd gives for a dense zero cotangent on out[k], fed directly:
      "fed directly"          bwd called with SymbolicZero in out[k]'s place (as torch's
                              check_undefined_grad feeds undefined gradients);
      "via jax.vjp (jit)"     jax.vjp of f with out[k] dropped from its outputs, under jit:
                              jax itself passes the SymbolicZero, inside a traced program.
    A rule that raises on a SymbolicZero (arithmetic on it, .shape of a None) or treats it
    as anything but zero fails, with what it raised. nondiff: more primals held fixed
    (f.nondiff_argnums and non-floating primals always are). Complex primals and outputs
    are differentiable; complex cotangents are compared as (re, im). Tolerance: the dtype's rtol (1e-10
    float64, 1e-4 float32) of the leaf's scale plus 16 eps of each value: skipping a zero
    term and adding it differ by rounding only. One output leaf: jax never hands the rule
    a symbolic zero (an unused output means no backward pass), so the row is "n/a".
    """
    t0 = time.perf_counter()
    where = "check_symbolic_zeros"
    if not all(hasattr(f, a) for a in ("fun", "fwd", "bwd", "nondiff_argnums")) or f.fwd is None:
        raise TypeError(f"{where}: expected a jax.custom_vjp with defvjp(fwd, bwd, symbolic_zeros=True) "
                        f"called, got {type(f).__name__}")
    if not getattr(f, "symbolic_zeros", False):
        raise ValueError(f"{where}: {getattr(f.fun, '__name__', 'f')} was defined without "
                         f"symbolic_zeros=True: jax hands its bwd dense zeros, never a SymbolicZero")
    names = primal_names(f.fun, len(primals), None)
    nd_pos, _ = _nd.positions(tuple(int(i) for i in f.nondiff_argnums) + tuple(nondiff), names,
                              split(primals))                     # complex leaves are differentiable
    diff = [i for i in range(len(primals)) if i not in nd_pos]
    n = len(primals)
    fixed = {i: primals[i] for i in nd_pos}
    key = jax.random.key(key) if isinstance(key, int) else key
    title = f"symbolic zeros of custom_vjp {getattr(f.fun, '__name__', 'f')}"
    with x64_context(split(primals)):
        d = tuple(jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), primals[i]) for i in diff)
        full = _nd.merge(d, diff, fixed, n)
        out = jax.eval_shape(lambda *a: f.fun(*_nd.merge(a, diff, fixed, n)), *d)
        leaves, tree = jax.tree.flatten(out)
        paths = ["out" + jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(out)]
        if len(leaves) < 2:
            row = Row("out symbolic", "dense zero cotangent", "symbolic_zero", Status.NA,
                      note="one output: jax never hands this rule a symbolic zero cotangent")
            return Report(title, (row,), "", time.perf_counter() - t0)
        ct = merge(make_cotangent(None, split(out), rng_for(key, 9))[0], out)   # complex: re + i·im
        ct_leaves = jax.tree.leaves(ct)
        rows = []
        for k, name in enumerate(paths):
            dense = [jnp.zeros(l.shape, l.dtype) if j == k else c for j, (l, c) in enumerate(zip(leaves, ct_leaves))]
            symbolic = [SymbolicZero.from_primal_value(dense[k]) if j == k else c for j, c in enumerate(dense)]
            try:
                want = call_rule(f, full, diff, jax.tree.unflatten(tree, dense), where)
            except Exception as e:
                raise ValueError(f"{where}: bwd raised {type(e).__name__} for a dense cotangent with zeros in "
                                 f"{name}, before any symbolic zero: check the rule with check_custom_vjp") from e

            def direct():
                return call_rule(f, full, diff, jax.tree.unflatten(tree, symbolic), where)

            def through_jax(k=k):
                def kept(*a):           # f with output leaf k dropped: jax passes its SymbolicZero
                    ys = jax.tree.leaves(f(*_nd.merge(a, diff, fixed, n)))
                    return [y for j, y in enumerate(ys) if j != k]
                pull = lambda a, c: jax.vjp(kept, *a)[1](c)
                return (jax.jit(pull) if jit else pull)(d, [c for j, c in enumerate(ct_leaves) if j != k])

            rows += [_symbolic_row(name, oracle, run, want, names, diff, rtol) for oracle, run in (
                ("dense zero (bwd fed directly)", direct),
                (f"dense zero (via jax.vjp{', jit' if jit else ''})", through_jax))]
    header = ("per output leaf: its cotangent a SymbolicZero, the others random normal; compared with "
              "the rule fed a dense zero there")
    return Report(title, tuple(rows), header, time.perf_counter() - t0)


def _symbolic_row(name, oracle, run, want, names, diff, rtol):
    """One row: run() (the rule handed a SymbolicZero for output `name`) against `want` (the
    rule handed dense zeros there); a rule that raises on the SymbolicZero fails, saying so."""
    try:
        got = run()
    except Exception as e:
        text = (str(e).strip().splitlines() or [""])[0]
        return Row(name + " symbolic", oracle, "symbolic_zero", Status.FAIL,
                   note=f"bwd raised {type(e).__name__}: {text} when the cotangent of {name} was "
                        f"a SymbolicZero; a symbolic_zeros=True rule must test "
                        f"isinstance(ct, jax.custom_derivatives.SymbolicZero) and treat it as 0")
    return _zero_row(name + " symbolic", oracle, got, want, names, diff, rtol)


def _zero_row(name, oracle, got, want, names, diff, user_rtol):
    """The cotangents from a symbolic zero vs from a dense zero, worst leaf (None is zero)."""
    leaf_rows = []                     # (Row, leaf name): read through oracle_row, not compare's result
    for k, (g, w) in enumerate(zip(got, want)):
        g = jax.tree.map(jnp.zeros_like, w) if g is None else g
        if jax.tree.structure(g) != jax.tree.structure(w):
            return Row(name, oracle, "symbolic_zero", Status.FAIL,
                       note=f"the cotangent of {names[diff[k]]} has tree {jax.tree.structure(g)}, with a dense "
                            f"zero {jax.tree.structure(w)}")
        for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(g), jax.tree.leaves(w)):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                return Row(name, oracle, "symbolic_zero", Status.FAIL,
                           note=f"the cotangent of {names[diff[k]]}{jax.tree_util.keystr(p)} has shape {a.shape}, "
                                f"with a dense zero {b.shape}")
            rt = user_rtol if user_rtol is not None else dtype_rtol(np.finfo(b.dtype).dtype)
            b64 = real_view(b)
            floor = ROUNDINGS * eps(b.dtype) * np.where(np.isfinite(b64), np.abs(b64), 0.0)
            row = oracle_row(name, oracle, "symbolic_zero", compare(real_view(a), b64, rt, floor), True, [])
            leaf_rows.append((row, names[diff[k]] + jax.tree_util.keystr(p)))
    row, where = max(leaf_rows, key=lambda rn: (rn[0].status == Status.FAIL, rn[0].rel_err))
    if row.status == Status.FAIL:
        row = dataclasses.replace(row, note="; ".join(filter(None, [
            f"the cotangent of {where} differs from the rule's with a dense zero: the SymbolicZero is "
            f"not treated as 0", row.note])))
    return row
