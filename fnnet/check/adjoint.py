"""check_adjoint: a JVP rule and a VJP rule of one function are each other's transpose.

    report = check_adjoint(f, None, None, *primals)    # f: a jax.custom_jvp; its VJP is jax's
                                                       # transpose of the rule's linearization
    report = check_adjoint(f, jvp, None, *primals)     # f: a jax.custom_vjp (its fwd/bwd), jvp given
    report = check_adjoint(fun, jvp, vjp, *primals)    # any pair of hand-written rules

For random tangents u and cotangents v, the Jacobian J at the primals satisfies exactly
    <u, Jᵀv> = <Ju, v>
(both are Σ_kj v_k J_kj u_j). No finite differences, no step, so no truncation noise: the
two sides differ only by rounding, and a pair that disagrees is inconsistent however small
the gap. Per differentiable leaf ℓ (u nonzero on that leaf only, so the row names the leaf
whose rules disagree), over `pairs` random (u, v):
    actual   = <u_ℓ, (Jᵀv)_ℓ>     the VJP rule's side
    expected = <J u_ℓ, v>         the JVP rule's side

Consistent is not right: a pair wrong the same way in both (both doubled) passes here and
fails check_jvp / check_vjp, which compare each rule with finite differences. A JVP rule
that is not linear in its tangents (t², a tangent-free offset) fails here: jax cannot
transpose it, or its transpose drops the offset that the rule adds.

Conventions (as check_jvp and check_vjp): jvp(primals, tangents) -> (y, y_dot), jax's
custom_jvp convention (f.nondiff_argnums first, then the tuples of differentiable primals
and their tangents); vjp(*primals, ct) -> one cotangent per primal, or per differentiable
primal. Non-floating primals, nondiff= and nondiff_argnums are held fixed. Complex
primals and outputs follow JAX's convention, which pairs a cotangent c with a tangent t by
Re(c·t): the identity is Re<u, Jᵀv> = Re<Ju, v>, u and v complex normal where complex.
"""
from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import nondiff as _nd
from fnnet.check.compare import ROUNDINGS, eps
from fnnet.check.complex_vjp import merge, normal_like, split, wide, widened_like
from fnnet.check.inputs import make_cotangent, primal_names, rng_for, to_device, x64_context
from fnnet.check.report import Report, Row
from fnnet.check.symbolic_zeros import call_rule
from fnnet.check.verdict import Evidence, Status, decide
from fnnet.validate import int_at_least

ORACLE = "<u, Jᵀv> (vjp) vs <Ju, v> (jvp)"


def check_adjoint(f, jvp=None, vjp=None, *primals, pairs=3, key=None, nondiff=(), names=None, rtol=None,
                  jit=True, title=None):
    """<u, Jᵀv> of the VJP rule vs <Ju, v> of the JVP rule, per differentiable leaf.

    f: a jax.custom_jvp (jvp None: its rule; vjp None: jax.linear_transpose of the rule's
        linearization), a jax.custom_vjp (vjp None: its fwd/bwd; jvp required), or a plain
        fun with both rules given. primals: f's arguments.
    pairs: random (u, v) draws (standard normal, from key); each leaf's row is the worst.
    rtol: overrides the rounding tolerance (see _pair), relative to M = Σ|terms|.
    jit: evaluate the rules inside jax.jit (one compilation each) or eagerly.
    Returns a Report with one row per differentiable leaf (kind "adjoint").
    """
    t0 = time.perf_counter()
    where = "check_adjoint"
    pairs = int_at_least(where, "pairs", pairs, 1)
    fun, jvp_rule, vjp_rule, nd_own, texts = _rules(f, jvp, vjp, where)
    names = primal_names(fun, len(primals), names)
    diff, fixed = _nd.differentiable(where, tuple(nondiff) + nd_own, names, split(primals), primals)
    n = len(primals)
    key = jax.random.key(key) if isinstance(key, int) else key
    rng = rng_for(key, 6)
    with x64_context(split(primals)):
        d0 = tuple(jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), primals[i]) for i in diff)
        out = jax.eval_shape(lambda *d: fun(*_nd.merge(d, diff, fixed, n)), *d0)

        def tangent_map(d, t):                           # J u, from the JVP rule
            full = _nd.merge(d, diff, fixed, n)
            _, y_dot = jvp_rule(*[full[i] for i in nd_own], tuple(full[i] for i in diff), tuple(t))
            return y_dot

        def cotangent_map(d, ct):                        # Jᵀ v, from the VJP rule
            return vjp_rule(d, ct, diff, fixed, n, names)
        jvp_run = jax.jit(tangent_map) if jit else tangent_map
        vjp_run = jax.jit(cotangent_map) if jit else cotangent_map
        leaves = [(names[i] + jax.tree_util.keystr(p), k, j)
                  for k, i in enumerate(diff) for j, (p, _) in enumerate(jax.tree_util.tree_leaves_with_path(d0[k]))]
        worst = {name: None for name, _, _ in leaves}
        for _ in range(pairs):
            v = merge(make_cotangent(None, split(out), rng)[0], out)           # complex where out is
            u = tuple(jax.tree.map(lambda a: normal_like(rng, a), p) for p in d0)
            try:
                w = vjp_run(d0, v)
            except Exception as e:
                return _raised(title, fun, texts["vjp"], e, leaves, t0)
            w_leaves = _leaves_checked(w, d0, texts["vjp"], where)
            v_leaves = [wide(a) for a in jax.tree.leaves(v)]
            for name, k, j in leaves:
                t = tuple(jax.tree.map(lambda a: jnp.zeros_like(a), p) for p in d0)
                u_leaf = jax.tree.leaves(u[k])[j]
                t_k = jax.tree.leaves(t[k])
                t_k[j] = to_device(u_leaf, jax.tree.leaves(d0[k])[j].dtype)
                t = t[:k] + (jax.tree.unflatten(jax.tree.structure(d0[k]), t_k),) + t[k + 1:]
                try:
                    y_dot = jvp_run(d0, t)
                except Exception as e:
                    return _raised(title, fun, texts["jvp"], e, leaves, t0)
                yd_leaves = _output_checked(y_dot, out, texts["jvp"], where)
                u64 = wide(jax.tree.leaves(t[k])[j])
                res = _pair(u64, w_leaves[k][j], yd_leaves, v_leaves, _dtype(d0, out), rtol)
                if worst[name] is None or (worst[name]["ok"] and not res["ok"]) or (
                        worst[name]["ok"] == res["ok"] and res["rel_err"] > worst[name]["rel_err"]):
                    worst[name] = res
    rows = tuple(_row(name, res) for name, res in worst.items())
    header = (f"{pairs} random pair(s) (u, v), standard normal; per leaf, u on that leaf only; "
              f"VJP: {texts['vjp']}; JVP: {texts['jvp']}; inner products summed in float64; here rel err = "
              f"|<u, Jᵀv> - <Ju, v>| / M, M = the larger Σ|terms| of the two")
    return Report(title or f"adjoint identity of {_name(fun)}", rows, header, time.perf_counter() - t0)


def _name(fun):
    return getattr(fun, "__name__", type(fun).__name__)


def _rules(f, jvp, vjp, where):
    """(fun, jvp_rule, vjp_rule(d, ct, diff, fixed, n, names), nondiff_argnums, {side: words})."""
    is_custom_jvp = hasattr(f, "jvp") and hasattr(f, "fun") and not hasattr(f, "bwd")
    is_custom_vjp = all(hasattr(f, a) for a in ("fun", "fwd", "bwd", "nondiff_argnums"))
    nd_own = tuple(int(i) for i in getattr(f, "nondiff_argnums", ())) if (is_custom_jvp or is_custom_vjp) else ()
    texts = {}
    if jvp is None:
        if not is_custom_jvp or f.jvp is None:
            raise TypeError(f"{where}: give jvp=rule(primals, tangents) -> (y, y_dot), or pass a jax.custom_jvp "
                            f"with defjvp called; got {type(f).__name__} and jvp=None")
        jvp, texts["jvp"] = f.jvp, "the custom_jvp's rule"
    else:
        texts["jvp"] = "the jvp given"
    if not callable(jvp):
        raise TypeError(f"{where}: jvp must be callable, got {type(jvp).__name__}")
    if is_custom_jvp:
        fun = f.fun
    elif is_custom_vjp:
        fun = f.fun
    else:
        fun = f
    if vjp is not None:
        if not callable(vjp):
            raise TypeError(f"{where}: vjp must be callable, got {type(vjp).__name__}")
        texts["vjp"] = "the vjp given"

        def vjp_rule(d, ct, diff, fixed, n, names):
            return _nd.pick(vjp(*_nd.merge(d, diff, fixed, n), ct), n, diff, sorted(fixed), names)[0]
    elif is_custom_vjp:
        if f.fwd is None:
            raise TypeError(f"{where}: the custom_vjp {_name(f.fun)} has no defvjp(fwd, bwd) yet")
        texts["vjp"] = "the custom_vjp's fwd/bwd"

        def vjp_rule(d, ct, diff, fixed, n, names):
            return call_rule(f, _nd.merge(d, diff, fixed, n), diff, ct, where)
    elif is_custom_jvp:
        texts["vjp"] = "jax.linear_transpose of the rule's linearization"

        def vjp_rule(d, ct, diff, fixed, n, names):
            _, lin = jax.linearize(lambda *a: f(*_nd.merge(a, diff, fixed, n)), *d)
            return jax.linear_transpose(lin, *d)(ct)
    else:
        raise TypeError(f"{where}: give vjp=rule(*primals, ct), or pass a jax.custom_vjp / jax.custom_jvp; "
                        f"got {type(f).__name__} and vjp=None")
    return fun, jvp, vjp_rule, nd_own, texts


def _dtype(d0, out):
    """The coarsest floating dtype among the primals and outputs: the rules round at its eps."""
    dts = [np.dtype(l.dtype) for l in jax.tree.leaves((d0, out)) if jnp.issubdtype(l.dtype, jnp.inexact)]
    return max(dts, key=lambda d: eps(d))


def _leaves_checked(w, d0, what, where):
    """Jᵀv as [[float64 leaf per leaf of primal k] per differentiable primal k], shapes checked."""
    if not isinstance(w, (tuple, list)) or len(w) != len(d0):
        raise ValueError(f"{where}: {what} must give one cotangent per differentiable primal ({len(d0)}), "
                         f"got {type(w).__name__}")
    return [widened_like(wk, pk, "a cotangent", "the primal's", what, where) for wk, pk in zip(w, d0)]


def _output_checked(y_dot, out, what, where):
    return widened_like(y_dot, out, "y_dot", "the output's", what, where)


def _pair(u, w, y_dot, v, dtype, user_rtol):
    """One (u, v) pair on one leaf: the two inner products and the tolerance.

    Both sides are Σ_kj v_k J_kj u_j, from the rules' outputs at their dtype. An entry of Ju
    (or Jᵀv) is a sum of at most N terms of random sign (u, v standard normal; N = elements
    of the leaf + of the output), so its rounding error is about eps·sqrt(N) times the entry
    (a sum of N random-signed terms is ~sqrt(N) smaller than its terms, and each rounds at
    eps of its own size); we allow ROUNDINGS of them. Across the terms t_k of an inner
    product these errors have independent signs and add as ||t||₂, not Σ|t|; numpy's pairwise
    float64 sum adds at most log2(N)·eps64·Σ|t|:
        tol = ROUNDINGS · eps(dtype) · sqrt(N) · max(||t_vjp||₂, ||t_jvp||₂) + log2(N) · eps64 · M,
    M = max(Σ|t_vjp|, Σ|t_jvp|), the absolute terms. Reported relative to M. Measured on a
    dense-tanh pair up to x [64, 256], W [256, 128]: the identity held to 1e-16·M (float64)
    and 1e-8·M (float32), 50 to 700 times inside this tolerance; a rule off by 1e-9 fails.
    """
    # Re of the products: JAX pairs a (co)tangent c with t by Re(c·t) (real leaves: the product)
    lhs_terms = np.real(u * w).reshape(-1)
    rhs_terms = np.concatenate([np.real(a * b).reshape(-1) for a, b in zip(y_dot, v)]) if y_dot else np.zeros(0)
    lhs, rhs = float(lhs_terms.sum()), float(rhs_terms.sum())
    with np.errstate(invalid="ignore", over="ignore"):
        m = max(float(np.abs(lhs_terms).sum()), float(np.abs(rhs_terms).sum()))
        l2 = max(float(np.linalg.norm(lhs_terms)), float(np.linalg.norm(rhs_terms)))
    n_el = u.size + sum(a.size for a in v)
    if user_rtol is not None:
        tol_abs = user_rtol * m
    else:
        tol_abs = ROUNDINGS * eps(dtype) * math.sqrt(n_el) * l2 + math.log2(max(n_el, 2)) * eps(np.float64) * m
    err = abs(lhs - rhs)
    finite = all(math.isfinite(a) for a in (lhs, rhs, m))
    ok = finite and err <= tol_abs
    rel = lambda a: a / m if m > 0 else (0.0 if a == 0 else math.inf)
    return dict(ok=ok, lhs=lhs, rhs=rhs, err=err if finite else math.inf, rel_err=rel(err) if finite else math.inf,
                tol=rel(tol_abs) if finite else math.nan, m=m)


def _row(name, res):
    status = decide(Evidence(within_tolerance=res["ok"]))
    note = ""
    if not res["ok"]:
        note = (f"the JVP and VJP rules are not each other's transpose on this leaf: <u, Jᵀv> = "
                f"{res['lhs']:.6g} (vjp), <Ju, v> = {res['rhs']:.6g} (jvp), terms of size M = {res['m']:.3g}")
    return Row(name, ORACLE, "adjoint", status, res["err"], res["rel_err"], None, res["tol"], 0, note,
               res["lhs"], res["rhs"])


def _raised(title, fun, what, e, leaves, t0):
    """A rule that raises: one FAIL row per leaf, saying which rule and what it raised."""
    first = (str(e).strip().splitlines() or [""])[0]
    hint = (" (a JVP rule must be linear in its tangents for jax to transpose it)"
            if "linear_transpose" in what else "")
    rows = tuple(Row(name, ORACLE, "adjoint", Status.FAIL,
                     note=f"{what} raised {type(e).__name__}: {first}{hint}") for name, _, _ in leaves)
    return Report(title or f"adjoint identity of {_name(fun)}", rows, "", time.perf_counter() - t0)
