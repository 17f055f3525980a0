"""taylor_test: a gradient is right when the first-order Taylor remainder falls as h².

    report = taylor_test(fun, vjp, *primals)      # vjp(*primals, ct) -> one cotangent per primal
    report = taylor_test(f, None, *primals)       # f: a jax.custom_vjp, its own fwd/bwd

With g(x) = <c, fun(x)> for a random cotangent c, the rule's gradient G = vjp(x, c) and a
random direction v,
    r(h) = |g(x + h·v) - g(x) - h·<G, v>|
is ½h²·vᵀ∇²g·v + O(h³) when G is the gradient, and ≈ h·|<G - ∇g, v>| when it is not. On a
log-log plot the slope is 2 for a right gradient and 1 for a wrong one, whatever the step
size and with no tolerance on values: the witness needs neither (dolfin-adjoint's and
pyadjoint's taylor_test; no ML checker has it).

The h range is automatic: h_k = h0·4^(-k), k = 0..steps-1, h0 = 0.1·max(1, |x|max)/|v|max
(12 steps: 7 decades). g is evaluated in float64 whatever the primals' dtype. The gradient
is the rule's, rerun with its primals in float64 when they are coarser (as check_vjp's
float64 replay does): a float32 gradient is wrong below float32's resolution and reads as
slope 1 at small h, so the slope judges the rule's mathematics and check_vjp its float32
precision. r is known to a rounding floor: g's (16·eps64·B, B = Σ|c ⊙ y| + max(1, |x|max)·Σ|c|,
what g is built from, as the finite differences' floor in fnnet.check.compare) plus h times
<G, v>'s (16·eps·(sqrt(N)·Σ|G ⊙ v| + B·Σ_leaves mean|v|): each entry good to eps·sqrt(N) of
itself and to eps of what it is built from). The slope is the least-squares fit of log r on
log h over the run of points with r > 10x the floor that starts at the smallest such h (up
to its 4 smallest h: Taylor's theorem is about h → 0; at large h the O(h³) terms bend the
curve). A run rising out of the floor by more than 4³ in one step is no Taylor term but h
beyond the expansion's range (a saturated unit flipping sign): it is not used. Verdict per
direction:
  slope >= 1.8                      ok    (a right gradient)
  slope < 1.8                       FAIL  (~1: the gradient is wrong along v)
  no usable point above the floor   ok, "linear": the first-order prediction matches g to
                                    rounding at every small h, so the gradient agrees along v
  one point above the floor         warn: no slope to fit (curvature barely resolved)
At a kink exactly at x (relu at 0) r falls as h: the witness fails there, correctly (there
is no derivative); check_vjp's kink rules judge a subgradient.
Measured (tanh(x @ W), 2x3 @ 3x3, 10 seeds per row): a 1e-5 relative error in one leaf fails
10/10 in float64 and float32; right rules pass 152/152 (logsumexp, softmax, exp, layer norm,
a product, x⁴, 1e-8·x³: 8 seeds x 2 dtypes; dense tanh with inputs scaled up to x20: 20
seeds x 2 dtypes). Complex primals and outputs follow JAX's pairing Re(c·t): g = Re Σ c·fun(x)
and the prediction h·Re<G, v>, v complex normal where x is complex.
"""
from __future__ import annotations

import dataclasses
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
from fnnet.check.verdict import Status
from fnnet.validate import int_at_least

PASS_SLOPE = 1.8     # between 1 (wrong) and 2 (right), with room for the O(h³) bend
FIT_POINTS = 4       # the smallest h above the floor that the slope is fitted over
ABOVE_FLOOR = 10.0   # a point is used when r > ABOVE_FLOOR x its rounding floor
RATIO = 4.0          # h_{k+1} = h_k / RATIO


@dataclasses.dataclass(frozen=True)
class TaylorReport(Report):
    """A Report (one row per direction: actual = the fitted slope) plus the curves:
    curves[i] = dict(h, r, floor, used) as float64 NumPy arrays (used: bool mask of the
    points the slope was fitted over)."""
    curves: tuple = ()


def taylor_test(fun, vjp, *primals, directions=2, steps=12, key=None, nondiff=(), names=None, title=None):
    """The Taylor remainder of fun with the rule's gradient: slope 2 passes, slope 1 fails.

    fun(*primals) -> y (array or pytree); vjp(*primals, ct) -> one cotangent per primal, or
    per differentiable primal (check_vjp's convention); or fun a jax.custom_vjp and vjp None
    (its fwd/bwd are the rule). directions: random directions v (one row each).
    steps: h values (int >= 4). Returns a TaylorReport.

    Steps: which primals are differentiated -> the rule's gradient at x (rerun in float64
    when the rule is coarser) -> the remainders r(h) along each direction -> the report.
    """
    t0 = time.perf_counter()
    where = "taylor_test"
    rule_of, plain, nd_own = _rule_of(fun, vjp, where)
    steps = int_at_least(where, "steps", steps, 4)          # a slope needs points
    directions = int_at_least(where, "directions", directions, 1)
    names = primal_names(plain, len(primals), names)
    diff, fixed = _nd.differentiable(where, tuple(nondiff) + nd_own, names, split(primals), primals)
    n = len(primals)
    key = jax.random.key(key) if isinstance(key, int) else key
    rng = rng_for(key, 7)
    with x64_context(split(primals)):
        d0 = tuple(jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), primals[i]) for i in diff)
        out = jax.eval_shape(lambda *d: plain(*_nd.merge(d, diff, fixed, n)), *d0)
        ct = merge(make_cotangent(None, split(out), rng)[0], out)           # complex where out is

        def rule(d, c):
            full = _nd.merge(d, diff, fixed, n)
            if rule_of is not None:
                return call_rule(rule_of, full, diff, c, where)
            return _nd.pick(vjp(*full, c), n, diff, sorted(fixed), names, what="the vjp")[0]
        grad = rule(d0, ct)
        g_leaves = _flat(grad, d0, where)
        dtype = max((np.dtype(l.dtype) for l in jax.tree.leaves(grad)), key=eps)
    g_leaves, dtype, rule_text = _in_float64(rule, d0, ct, g_leaves, dtype, where)
    f64 = lambda *d: plain(*_nd.merge(d, diff, fixed, n))              # noqa: E731
    rows, curves = _remainders(f64, d0, ct, g_leaves, dtype, rng, directions, steps)
    header = (f"g = <c, fun(x)> in float64, c random normal; {directions} random direction(s) v; "
              f"h = h0·{RATIO:g}^-k, k < {steps}, h0 = 0.1·max(1, |x|max)/|v|max; gradient from "
              f"{rule_text}; slope: least squares of log r on log h over the {FIT_POINTS} smallest h with "
              f"r > {ABOVE_FLOOR:g}x the rounding floor; passes at slope >= {PASS_SLOPE}")
    return TaylorReport(title or f"Taylor remainder of {getattr(plain, '__name__', 'fun')}", tuple(rows), header,
                        time.perf_counter() - t0, tuple(curves))


def _rule_of(fun, vjp, where):
    """(the custom_vjp whose fwd/bwd are the rule, or None; the plain function; its own
    nondiff_argnums)."""
    if vjp is None:
        if not all(hasattr(fun, a) for a in ("fun", "fwd", "bwd", "nondiff_argnums")) or fun.fwd is None:
            raise TypeError(f"{where}: give vjp=rule(*primals, ct), or pass a jax.custom_vjp with defvjp "
                            f"called; got {type(fun).__name__} and vjp=None")
        return fun, fun.fun, tuple(int(i) for i in fun.nondiff_argnums)
    return None, fun, ()


def _in_float64(rule, d0, ct, g_leaves, dtype, where):
    """(gradient leaves, their dtype, how they were obtained): the rule's own, or, for a rule
    coarser than float64, the rule rerun with its primals in float64.

    The slope is a witness of the rule's mathematics: a float32 gradient is a wrong gradient
    below float32's resolution (slope 1 at small h), and no a-priori floor tells that apart
    from a bug without cutting the range where h² shows. So the rule is rerun with its
    primals in float64, as check_vjp's float64 replay does; its float32 precision is
    check_vjp's to judge.
    """
    rule_text = f"the rule in {dtype}"
    if eps(dtype) > eps(np.float64):
        try:
            with jax.enable_x64(True):
                to64 = lambda a: to_device(wide(a)) if a.dtype != jax.dtypes.float0 else a
                d64 = tuple(jax.tree.map(lambda a: to_device(wide(a)), p) for p in d0)
                grad64 = rule(d64, jax.tree.map(to64, ct))
                leaves64 = _flat(grad64, d64, where)
                dt64 = {np.dtype(l.dtype) for l in jax.tree.leaves(grad64)}
            if all(eps(d) == eps(np.float64) for d in dt64):
                g_leaves, dtype = leaves64, max(dt64, key=eps)
                rule_text = "the rule rerun with its primals in float64"
        except Exception as e:
            rule_text += f" (its rerun in float64 raised {type(e).__name__})"
    return g_leaves, dtype, rule_text


def _remainders(fun_of_diff, d0, ct, g_leaves, dtype, rng, directions, steps):
    """(rows, curves): r(h) = |g(x + h v) - g(x) - h Re<G, v>| along each random direction v,
    g = Re Σ c·fun(x) in float64, and each row's slope against its rounding floor.
    fun_of_diff(*differentiable primals) -> fun's output."""
    with jax.enable_x64(True):
        x64 = [wide(l) for p in d0 for l in jax.tree.leaves(p)]         # float64, complex128
        # None for an integer output's float0 cotangent: that output is left out of g
        c64 = [None if l.dtype == jax.dtypes.float0 else wide(l) for l in jax.tree.leaves(ct)]
        treedefs = [jax.tree.structure(p) for p in d0]
        sizes = [len(jax.tree.leaves(p)) for p in d0]

        def y_of(flat):    # fun(x) in float64, x given as the flat list of float64 leaves
            it, parts = iter(flat), []
            for td, k in zip(treedefs, sizes):
                parts.append(jax.tree.unflatten(td, [next(it) for _ in range(k)]))
            ys = jax.tree.leaves(fun_of_diff(*parts))
            return [jnp.asarray(a, jnp.complex128 if jnp.iscomplexobj(a) else jnp.float64) for a in ys]

        def g(flat):       # Re Σ c·fun(x) (JAX's pairing), the integer outputs (float0 cotangents) left out
            return sum(jnp.real(jnp.sum(c * a)) for c, a in zip(c64, y_of(flat)) if c is not None)
        g_run = jax.jit(g)
        y0 = [np.asarray(a) for a in jax.jit(y_of)([to_device(x) for x in x64])]
        g0 = float(g_run([to_device(x) for x in x64]))
        xmax = max([1.0] + [float(np.abs(x[np.isfinite(x)]).max(initial=0.0)) for x in x64])
        # the size of what g and the rule's entries are built from (fnnet.check.compare's floors):
        # the output terms c ⊙ y and the intermediates Σ|c|·max(1, |x|max)
        built_from = (sum(float(np.abs(c * a).sum()) for c, a in zip(c64, y0) if c is not None)
                      + xmax * sum(float(np.abs(c).sum()) for c in c64 if c is not None))
        noise_g = ROUNDINGS * eps(np.float64) * built_from
        n_el = sum(x.size for x in x64)
        rows, curves = [], []
        for k in range(directions):
            v = [normal_like(rng, x) for x in x64]
            vmax = max(float(np.abs(a).max(initial=0.0)) for a in v)
            h = 0.1 * xmax / vmax * RATIO ** -np.arange(steps, dtype=np.float64)
            gv_terms = np.concatenate([np.real(gl * a).reshape(-1) for gl, a in zip(g_leaves, v)])   # Re(G·v)
            gv = float(gv_terms.sum())
            # <G, v> is known to the rule's rounding: relative to its own terms (each entry good to
            # eps·sqrt(N) of itself, as in check_adjoint) and absolutely to eps of what the entries
            # are built from (a saturated unit's 1 - t² is 0 in float32, the truth 1e-8), spread
            # over each leaf's elements as check_vjp's resolution floor
            noise_gv = ROUNDINGS * eps(dtype) * (math.sqrt(n_el) * float(np.abs(gv_terms).sum()) +
                                                 built_from * sum(float(np.abs(a).mean()) for a in v))
            r = np.array([abs(float(g_run([to_device(x + hk * a) for x, a in zip(x64, v)])) - g0 - hk * gv)
                          for hk in h])
            floor = noise_g + h * noise_gv
            rows.append(_row(f"along v{k + 1}", h, r, floor, curves))
    return rows, curves


def _flat(grad, d0, where):
    """The rule's gradient as float64 (complex128) leaves in d0's order, trees and shapes checked."""
    return [a for gk, pk in zip(grad, d0)
            for a in widened_like(gk, pk, "a cotangent", "the primal's", "the rule", where)]


def _asymptotic_run(h, r, floor, above):
    """Indices (h decreasing) of the points the slope is read from: the run of points above
    the floor that starts at the smallest such h and goes up (h → 0 is what Taylor's theorem
    is about). A run that rises out of the rounding floor faster than h³ does (more than
    RATIO³ per step) is not a Taylor term but h beyond the expansion's range (a saturated
    unit flipping): then no point is usable."""
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return idx
    end = idx[-1]                       # the smallest h above the floor
    start = end
    while start - 1 >= 0 and above[start - 1]:
        start -= 1
    if end + 1 < h.size and r[end] > RATIO ** 3 * ABOVE_FLOOR * floor[end + 1]:
        return np.zeros(0, np.int64)    # rose out of the noise in one step by more than h³ allows
    return np.arange(start, end + 1)


def _row(name, h, r, floor, curves):
    """One direction's verdict from its remainder curve (see the module doc)."""
    oracle = "slope 2 (h² remainder)"
    finite = np.isfinite(r)
    if not finite.all():
        curves.append(dict(h=h, r=r, floor=floor, used=np.zeros(h.shape, bool)))
        return Row(name, oracle, "taylor", Status.FAIL,
                   note=f"the remainder is not finite at h = {h[~finite][0]:.3g} (the rule's gradient or "
                        f"fun is NaN/inf)")
    above = r > ABOVE_FLOOR * floor
    idx = _asymptotic_run(h, r, floor, above)
    used = np.zeros(h.shape, bool)
    if idx.size == 0:
        curves.append(dict(h=h, r=r, floor=floor, used=used))
        small = np.flatnonzero(~above)
        beyond = (f"; for h > {h[small].max():.3g} r jumps faster than any Taylor term (h beyond the range "
                  f"where the expansion holds)" if above.any() else "")
        return Row(name, oracle, "taylor", Status.OK, max_abs_err=float(r[small].max()),
                   note=f"linear, passes: r is at rounding level for every h in [{h[small].min():.3g}, "
                        f"{h[small].max():.3g}] (max r {r[small].max():.3g}, floor {floor[small].max():.3g}): "
                        f"the first-order prediction matches fun along v{beyond}")
    if idx.size == 1:
        used[idx] = True
        curves.append(dict(h=h, r=r, floor=floor, used=used))
        return Row(name, oracle, "taylor", Status.WARN, max_abs_err=float(r[idx[0]]),
                   note=f"only h = {h[idx[0]]:.3g} has r above the rounding floor: no slope to fit; "
                        f"the curvature along v is barely resolved")
    fit = idx[-FIT_POINTS:]
    used[fit] = True
    slope = float(np.polyfit(np.log(h[fit]), np.log(r[fit]), 1)[0])
    curves.append(dict(h=h, r=r, floor=floor, used=used))
    ok = slope >= PASS_SLOPE
    span = f"h in [{h[fit].min():.3g}, {h[fit].max():.3g}] ({fit.size} points)"
    note = (f"slope {slope:.2f} over {span}" +
            ("" if ok else f": r falls as h^{slope:.2f}, not h², so <G, v> is not the derivative along v; "
                           f"a slope near 1 is a wrong gradient (r/h ≈ {r[fit[-1]] / h[fit[-1]]:.3g} = "
                           f"|<G - ∇g, v>|)"))
    return Row(name, oracle, "taylor", Status.OK if ok else Status.FAIL, max_abs_err=float(r[fit[-1]]),
               note=note, actual=slope)
