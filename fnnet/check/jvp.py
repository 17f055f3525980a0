"""check_custom_vjp and check_jvp: a jax.custom_vjp / jax.custom_jvp checked by its own rule.

    check_custom_vjp(f, *primals)   # f = @jax.custom_vjp ...: f.fwd then f.bwd, vs autodiff of
                                    # the undecorated f.fun, FD of f.fun, and a reference
    check_jvp(f, *primals)          # f = @jax.custom_jvp ...: f.jvp's tangents vs jax.jvp of
                                    # f.fun and float64 finite differences along random tangents
    check_jvp(fun, *primals, jvp=rule)   # any rule(primals, tangents) -> (y, y_dot)

Neither asks the user to restate the rule: it is read from the custom function, and the
witnesses differentiate the *undecorated* function `f.fun`, so jax's autodiff is an
independent witness (unless f.fun itself calls other custom rules of the user's, which
fnnet.check.independence reports). nondiff_argnums are honoured (fnnet.check.nondiff).
"""
from __future__ import annotations

import functools
import time
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import independence, nondiff as _nd
from fnnet.check.compare import RTOL_FD, ROUNDINGS, Bracket, compare, eps, rtol as dtype_rtol
from fnnet.check.vjp import check_vjp
from fnnet.check.complex_vjp import complex_output, has_complex, merge, split
from fnnet.check.core import run_check
from fnnet.check.inputs import make_cotangent, primal_names, rng_for, to_device, x64_context
from fnnet.check.report import Report, Row
from fnnet.check.verdict import Status, judge_leaf
from fnnet.check.rows import oracle_row
from fnnet.check.symbolic_zeros import call_fwd, call_rule, check_symbolic_zeros, require_custom_vjp, rule_name
from fnnet.check.transforms import check_transforms


SIGN_PROBES = 3   # tangents with random signs per direction, for the per-element floors


def check_custom_vjp(f, *primals, cotangent=None, key=None, reference=None, determinism=True, transforms=(),
                     autodiff=None, **options):
    """A jax.custom_vjp's own fwd/bwd vs jax.vjp of f.fun, FD of f.fun and an optional reference.

    f: the object `@jax.custom_vjp` returns, with defvjp(fwd, bwd) called. primals: its
    arguments (those in f.nondiff_argnums are held fixed, like any nondiff=). Keyword
    arguments naming parameters of f.fun are f's own, bound to their positions as jax binds
    them (defaults filled in): check_custom_vjp(power, x, n=3) with nondiff_argnums=(1,);
    a name that is also an option below is the option's (pass f's argument positionally).
    bwd returning None for an argument means a zero cotangent (jax's convention). The fwd's
    primal output is also compared with f.fun's (a fwd that computes another function is a
    failed row). A rule defined with symbolic_zeros=True also gets check_symbolic_zeros's
    rows (SymbolicZero cotangents fed to bwd). determinism: fwd then bwd run twice on the same inputs (one compiled
    program, or eagerly if it cannot be jitted) must agree bit for bit, else the
    "determinism" row fails (scatter-adds and atomics on accelerators, callbacks that sum in
    a varying order). transforms: some of fnnet.check.transforms.TRANSFORMS ("jit", "vmap",
    "scan", "remat", "vmap_grad"), whose check_transforms rows are added (default none: each
    compiles the rule again). Complex primals or outputs: checked by check_complex_vjp (JAX's
    conjugation convention, real and imaginary parts as leaves .re, .im).
    autodiff: a function computing what f.fun computes in plain jax.numpy, for an f.fun that
    jax cannot differentiate (a pallas_call kernel, a pure_callback): jax.vjp is then taken
    of autodiff, while f.fun still gives the outputs and the finite differences, and an
    "autodiff= output" row compares autodiff's outputs with f.fun's (a spec of another
    function would make jax.vjp a witness of the wrong thing). Real primals and outputs only.
    options: as check_vjp (mode, detect, rtol, atol, jit, ...).
    """
    require_custom_vjp(f, "check_custom_vjp")
    primals, options = _bind_keywords(f, primals, options)
    nd = tuple(int(i) for i in f.nondiff_argnums)
    diff = [i for i in range(len(primals)) if i not in nd]

    def vjp(*args):
        *p, ct = args
        return call_rule(f, tuple(p), diff, ct, "check_custom_vjp")

    names = primal_names(f.fun, len(primals), options.pop("names", None))
    nondiff = nd + tuple(options.pop("nondiff", ()))
    title = f"custom_vjp {rule_name(f)}"
    if autodiff is None:
        try:
            report = check_vjp(f.fun, vjp, *primals, cotangent=cotangent, key=key, reference=reference,
                               nondiff=nondiff, names=names, title=title, **options)
        except ValueError as e:
            if "Linearization failed" not in str(e):
                raise
            raise TypeError(f"check_custom_vjp: jax cannot differentiate {rule_name(f)}'s f.fun (a pallas_call "
                            f"or another primitive without reverse-mode autodiff), so jax.vjp cannot witness "
                            f"its rule; pass autodiff=<the same function in jax.numpy>") from e
        extra = ()
    else:
        if not callable(autodiff):
            raise TypeError(f"check_custom_vjp: autodiff must be a function like f.fun, got {type(autodiff).__name__}")
        if has_complex(primals) or complex_output(f.fun, primals):
            raise TypeError("check_custom_vjp: autodiff= takes real primals and outputs only")
        report = run_check(f.fun, vjp, *primals, cotangent=cotangent, key=key, reference=reference,
                           nondiff=nondiff, names=names, title=title, oracle_fun=autodiff,
                           oracle_text="jax.vjp of autodiff=", rule="the custom_vjp's bwd", **options)
        extra = (_forward_row(f, primals, options.get("rtol"), first=autodiff),)
    extra += (_forward_row(f, primals, options.get("rtol")),)
    if getattr(f, "symbolic_zeros", False):
        extra += check_symbolic_zeros(f, *primals, key=key, nondiff=nondiff,
                                      rtol=options.get("rtol"), jit=options.get("jit", True)).rows
    if transforms:
        extra += check_transforms(f, *primals, transforms=transforms, key=key, nondiff=nondiff,
                                  names=names, rtol=options.get("rtol")).rows
    if determinism:
        extra += (_determinism_row(f, vjp, primals, names, nondiff, cotangent, key, options.get("jit", True)),)
    return Report(report.title, report.rows + extra, report.header, report.seconds)


_CHECK_OPTIONS = frozenset(inspect.signature(check_vjp).parameters) - {"fun", "vjp", "primals"}


def _bind_keywords(f, primals, options):
    """(primals, options): keywords naming parameters of f.fun (not check options) moved into
    the primals at their positions, as jax's custom_vjp resolves keyword arguments."""
    own = {k: v for k, v in options.items() if k not in _CHECK_OPTIONS}
    if not own:
        return primals, options
    where = f"check_custom_vjp({rule_name(f)})"
    try:
        sig = inspect.signature(f.fun)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: unexpected keyword argument(s) {sorted(own)}, and f.fun's signature "
                        f"cannot be read to bind them") from None
    unknown = sorted(k for k in own if k not in sig.parameters)
    if unknown:
        raise TypeError(f"{where}: unexpected keyword argument(s) {unknown}: neither an option of the "
                        f"check nor a parameter of {rule_name(f)}{sig}")
    try:
        bound = sig.bind(*primals, **own)
    except TypeError as e:
        raise TypeError(f"{where}: {rule_name(f)}{sig} cannot take these arguments: {e}") from None
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(f"{where}: keyword-only parameter(s) {sorted(bound.kwargs)} of {rule_name(f)}: jax's "
                        f"custom_vjp resolves keywords to positions, so they cannot be passed")
    return tuple(bound.args), {k: v for k, v in options.items() if k in _CHECK_OPTIONS}


def _determinism_row(f, vjp, primals, names, nondiff, cotangent, key, jit):
    """fwd/bwd run twice on the same primals and cotangent, compared bit for bit."""
    nd_pos, _ = _nd.positions(nondiff, names, split(primals))      # complex leaves are differentiable
    diff = [i for i in range(len(primals)) if i not in nd_pos]
    fixed = {i: primals[i] for i in nd_pos}
    n = len(primals)
    key = jax.random.key(key) if isinstance(key, int) else key
    with x64_context(split(primals)):
        d = tuple(jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), primals[i]) for i in diff)
        out = jax.eval_shape(lambda *a: f.fun(*_nd.merge(a, diff, fixed, n)), *d)
        # drawn as real pairs where out is complex (make_cotangent draws floating leaves only)
        ct, _ = make_cotangent(None if cotangent is None else split(cotangent), split(out), rng_for(key, 8))
        ct = merge(ct, out)
        run = lambda a, c: vjp(*_nd.merge(a, diff, fixed, n), c)
        how = "one compiled program run twice"
        try:
            compiled = jax.jit(run) if jit else run
            first, second = compiled(d, ct), compiled(d, ct)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError):
            first, second, how = run(d, ct), run(d, ct), "run twice eagerly (it cannot be jitted)"
        if not jit:
            how = "run twice eagerly"
        pairs = [(jax.tree_util.keystr(p), np.asarray(a), np.asarray(b)) for (p, a), b in
                 zip(jax.tree_util.tree_leaves_with_path(first), jax.tree.leaves(second))]
    for path, a, b in pairs:
        differ = _bits(a) != _bits(b)
        if differ.any():
            i = tuple(int(v) for v in np.unravel_index(int(np.flatnonzero(differ)[0]), a.shape))
            leaf = "cotangents" + path
            return Row("determinism", "a second run of fwd/bwd", "determinism", Status.FAIL,
                       max_abs_err=float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)))),
                       worst_index=i, actual=float(a[i]), expected=float(b[i]),
                       note=f"{how}: {leaf} differs in {int(differ.sum())} of {a.size} elements (first at {i}): "
                            f"the rule is not deterministic (scatter-add or atomics on an accelerator, a "
                            f"callback summing in a varying order), so runs will not reproduce; "
                            f"determinism=False skips this row")
    return Row("determinism", "a second run of fwd/bwd", "determinism", Status.OK, max_abs_err=0.0)


def _bits(a):
    """Per element, its bit pattern (NaNs compare by payload, -0.0 differs from 0.0)."""
    a = np.ascontiguousarray(a)
    if a.dtype.itemsize in (1, 2, 4, 8) and a.dtype.kind in "fiub":
        return a.view(f"u{a.dtype.itemsize}")
    return np.array([x.tobytes() for x in a.reshape(-1)], dtype=object).reshape(a.shape)


def _forward_row(f, primals, user_rtol, first=None):
    """fwd's primal output vs f.fun's, leaf by leaf (the rule must be of the same function);
    first: another function's output in fwd's place (check_custom_vjp's autodiff=)."""
    nd = tuple(int(i) for i in f.nondiff_argnums)
    first_out = (lambda *p: call_fwd(f, p, nd)[0]) if first is None else first
    label = "fwd output" if first is None else "autodiff= output"
    with x64_context(primals):
        try:     # one compiled call (eager ops compile one by one)
            y_fwd, y_fun = jax.jit(lambda *p: (first_out(*p), f.fun(*p)))(*primals)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                jax.errors.TracerIntegerConversionError, TypeError):
            y_fwd, y_fun = first_out(*primals), f.fun(*primals)
        worst = None
        for a, b in zip(jax.tree.leaves(split(y_fwd)), jax.tree.leaves(split(y_fun))):   # complex: (re, im)
            if not jnp.issubdtype(np.asarray(b).dtype, jnp.inexact):     # an integer output: exactly equal
                if np.shape(a) != np.shape(b) or not np.array_equal(np.asarray(a), np.asarray(b)):
                    return Row(label, "f.fun", "forward", Status.FAIL,
                               note=f"{label}: integer output {np.asarray(a).dtype}{list(np.shape(a))} differs "
                                    f"from f.fun's {np.asarray(b).dtype}{list(np.shape(b))}")
                continue
            a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
            if a64.shape != b64.shape:
                return Row(label, "f.fun", "forward", Status.FAIL,
                           note=f"{label} has shape {a64.shape}, f.fun {b64.shape}")
            rt = user_rtol if user_rtol is not None else dtype_rtol(np.asarray(a).dtype)
            res = compare(a64, b64, rt, ROUNDINGS * eps(np.asarray(a).dtype) * np.abs(b64))
            if worst is None or not res.ok:
                worst = res
    if worst is None:
        return Row(label, "f.fun", "forward", Status.NA, note="no output leaves")
    return oracle_row(label, "f.fun", "forward", worst, True, [])


def check_jvp(f, *primals, jvp=None, tangents=None, directions=3, key=None, nondiff=(), step=1e-6,
              rtol=None, atol=None, jit=True, names=None, title=None):
    """A JVP rule's output tangents vs jax.jvp of the function and float64 finite differences.

    f: a jax.custom_jvp (its rule f.jvp and undecorated f.fun are used), or a plain function
        with jvp=rule given; rule(primals_tuple, tangents_tuple) -> (y, y_dot), jax's
        custom_jvp convention (nondiff arguments first, as jax passes them).
    tangents: one tuple of tangents (trees of the primals), or None: `directions` random
        normal tangents drawn from key. Per direction and output leaf y [*shape], y_dot is
        compared element by element with jax.jvp(fun) and with
        (fun(x + t·u) - fun(x - t·u)) / 2t in float64 (t = step · max(1, |x|max) / max|u|);
        at kinks the one-sided quotients bound what a rule may report. Tolerances are per
        output element: rtol and the rounding floor times the size of the sum behind that
        element (the witnesses' values and |J (s ⊙ |u|)| for SIGN_PROBES random signs s), so
        a small element beside a huge one is judged at its own scale.
    Returns a Report with one row per (output leaf, witness), the worst over directions.
    """
    t0 = time.perf_counter()
    if jvp is None:
        if not hasattr(f, "jvp") or getattr(f, "jvp", None) is None:
            raise TypeError(f"check_jvp: give jvp=rule, or pass a jax.custom_jvp with defjvp called; "
                            f"got {type(f).__name__}")
        fun, rule, nd = f.fun, f.jvp, tuple(int(i) for i in f.nondiff_argnums)
    else:
        fun, rule, nd = f, jvp, ()
    names = primal_names(fun, len(primals), names)
    nd_pos, _ = _nd.positions(tuple(nondiff) + nd, names, primals)
    diff = [i for i in range(len(primals)) if i not in nd_pos]
    fixed = {i: primals[i] for i in nd_pos}
    title = title or f"jvp {rule_name(f)}"
    key = jax.random.key(key) if isinstance(key, int) else key
    with x64_context(primals):
        dp = tuple(jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), primals[i]) for i in diff)
        fun_d = lambda *d: fun(*_nd.merge(d, diff, fixed, len(primals)))

        def rule_d(d, t):
            full = _nd.merge(d, diff, fixed, len(primals))
            return rule(*[full[i] for i in nd], tuple(full[i] for i in diff), tuple(t))

        rng = rng_for(key, 2)
        if tangents is None:
            tans = [tuple(jax.tree.map(lambda a: to_device(rng.standard_normal(np.shape(a)), a.dtype), p)
                          for p in dp) for _ in range(directions)]
        else:
            tans = [tuple(jax.tree.map(lambda a, p: to_device(a, p.dtype), t, p) for t, p in zip(tangents, dp))]
        rules = independence.rules_in(fun_d, *dp)
        stops = _stops(fun_d, dp)      # stop_gradient in fun: verdict.judge_leaf's surrogate rule
        # per direction, SIGN_PROBES tangents s ⊙ |u| with random signs s: |J (s ⊙ |u|)|_i is the
        # size of the sum Σ_j J_ij u_j behind output element i without its cancellation (one
        # dominant term exactly, n comparable ones their root-sum-square): what that element's
        # rounding is relative to, element by element (the floors below)
        probes = [[tuple(jax.tree.map(lambda a: to_device(np.abs(np.asarray(a, np.float64)) *
                                                          rng.choice((-1.0, 1.0), np.shape(a)), a.dtype), p)
                         for p in t) for _ in range(SIGN_PROBES)] for t in tans]

        def both(d, t, probes):
            y, yd = rule_d(d, t)
            y_fun, jd = jax.jvp(fun_d, d, t)
            sums = [jax.tree.leaves(jax.jvp(fun_d, d, q)[1]) for q in probes]
            size = [functools.reduce(jnp.maximum, [jnp.abs(s[o]) for s in sums]) for o in range(len(sums[0]))]
            return y, yd, jd, y_fun, size
        run = jax.jit(both) if jit else both
        results = [run(dp, t, q) for t, q in zip(tans, probes)]
    fd = _jvp_differences(fun_d, dp, tans, step)
    rows = []
    out_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(results[0][0])]
    for o, path in enumerate(out_paths):
        rows += _output_rows(o, "y_dot" + path, results, tans, fd, atol, rtol, rules, stops)
    header = (f"primals {'/'.join(sorted({str(np.asarray(l).dtype) for l in jax.tree.leaves(dp)}))}; "
              f"{len(tans)} tangent direction(s); finite differences in float64 along each, step "
              f"{step:g}·max(1, |x|max)/max|u|")
    return Report(title, tuple(rows), header, time.perf_counter() - t0)


def _output_rows(o, name, results, tans, fd, atol, rtol, rules, stops):
    """Output leaf o's rows: the primal output, then the tangent against jax.jvp and against
    finite differences, each the worst over the directions, judged element by element."""
    worst = {"jax": None, "fd": None}
    for k, (y, yd, jd, _, size) in enumerate(results):
        h = np.asarray(jax.tree.leaves(yd)[o], np.float64)
        dtype = np.asarray(jax.tree.leaves(yd)[o]).dtype
        jv = np.asarray(jax.tree.leaves(jd)[o], np.float64)
        y0 = np.asarray(jax.tree.leaves(y)[o], np.float64)
        umax = max(float(np.abs(np.asarray(l, np.float64)).max(initial=0.0)) for l in jax.tree.leaves(tans[k]))
        c, lo, hi, noise = (a[o] for a in fd[k])
        # per element: the size of the sum behind it (the witnesses' values, the sign
        # probes' |J (s ⊙ |u|)|), never the largest element of the leaf, so a small
        # element beside a huge one is judged at its own scale
        m = np.maximum.reduce([_finite_abs(a) for a in (h, jv, c, np.asarray(size[o], np.float64))])
        floor = (atol if atol is not None else
                 ROUNDINGS * eps(dtype) * (m + umax * _finite_abs(y0)))
        rt = rtol if rtol is not None else dtype_rtol(dtype)
        rt_fd = max(RTOL_FD, rt) if rtol is None else rtol
        adj = lambda bad, lo=lo.reshape(-1), hi=hi.reshape(-1), n=noise.reshape(-1), m=m.reshape(-1): Bracket(
            lo=lo[bad], hi=hi[bad], tol=3 * n[bad] + max(RTOL_FD, rt) * m[bad], central=c.reshape(-1)[bad])
        for kind, oracle, r in (("jax", jv, rt), ("fd", c, rt_fd)):
            # rtol enters per element (r · m), so compare's leaf-wide rtol is 0
            res = compare(h, oracle, 0.0, r * m + floor + (noise if kind == "fd" else 0.0), adj,
                          majority=_majority(adj, h, jv) if kind == "jax" and not rules else None)
            if worst[kind] is None or (not res.ok and worst[kind].ok) or (
                    res.ok == worst[kind].ok and res.rel_err > worst[kind].rel_err):
                worst[kind] = res
    mine = [oracle_row(name, "jax.jvp", "jax", worst["jax"], not rules, rules),
            oracle_row(name, f"finite diff ({len(tans)} directions)", "fd", worst["fd"], True, [])]
    return [_primal_row(name, results, o, rtol)] + (mine if rules else judge_leaf(mine, stops))


def _stops(fun_d, dp):
    """stop_gradient equations in fun at the primals (0 when it cannot be traced abstractly)."""
    try:
        return independence.stop_gradients(jax.make_jaxpr(fun_d)(*dp).jaxpr)
    except Exception:
        return 0


def _finite_abs(a):
    a = np.abs(np.asarray(a, np.float64))
    return np.where(np.isfinite(a), a, 0.0)


def _majority(adj, h, jv):
    """majority(bad) for compare: jax.jvp is outvoted where the rule's tangent agrees with the
    float64 differences (central, or inside a genuine kink's one-sided interval) and jax.jvp's
    does not (a NaN agrees with nothing), on an output leaf the differences resolve (their
    tolerance <= 10% of its scale), as check_vjp's majority (fnnet.check.rows.majority_fn)."""
    hf, jf = np.asarray(h, np.float64).reshape(-1), np.asarray(jv, np.float64).reshape(-1)

    def majority(bad):
        a = adj(bad)
        c, lo, hi, tol = a.central, a.lo, a.hi, a.tol
        with np.errstate(invalid="ignore"):
            agrees = lambda v: np.isfinite(v) & np.isfinite(c) & (
                (np.abs(v - c) <= tol) | ((hi - lo > tol) & (v >= lo - tol) & (v <= hi + tol)))
            scale = max(float(np.abs(hf[np.isfinite(hf)]).max(initial=0.0)),
                        float(np.abs(c[np.isfinite(c)]).max(initial=0.0)))
            ok = agrees(hf[bad]) & ~agrees(jf[bad]) & (tol <= 0.1 * scale)
        majority.last = c
        return ok
    majority.last = None
    return majority


def _primal_row(name, results, o, user_rtol):
    """The rule's primal output vs the function's own (f.fun, or fun) at the same point, worst
    over directions: a rule returning another primal (inf, a stale value) is wrong whatever
    its tangent says, since jax uses that output."""
    worst, yname = None, "y" + name[len("y_dot"):]
    for y, _, _, y_fun, _ in results:
        a = np.asarray(jax.tree.leaves(y)[o])
        a64, b64 = a.astype(np.float64), np.asarray(jax.tree.leaves(y_fun)[o], np.float64)
        if a64.shape != b64.shape:
            return Row(yname, "fun (primal output)", "forward", Status.FAIL,
                       note=f"the rule's primal output has shape {a64.shape}, fun's {b64.shape}")
        rt = user_rtol if user_rtol is not None else dtype_rtol(a.dtype)
        res = compare(a64, b64, rt, ROUNDINGS * eps(a.dtype) * np.where(np.isfinite(b64), np.abs(b64), 0.0))
        if worst is None or (worst.ok and not res.ok):
            worst = res
    return oracle_row(yname, "fun (primal output)", "forward", worst, True, [])


def _jvp_differences(fun_d, dp, tans, step):
    """Per direction: per output leaf (central, lo, hi, noise) in float64."""
    with jax.enable_x64(True):
        p64 = tuple(jax.tree.map(lambda a: to_device(np.asarray(a, np.float64)), p) for p in dp)
        xmax = max([1.0] + [float(np.abs(np.asarray(l, np.float64)[np.isfinite(np.asarray(l, np.float64))])
                                  .max(initial=0.0)) for l in jax.tree.leaves(p64)])
        f64 = jax.jit(lambda d: [a.astype(jnp.float64) for a in jax.tree.leaves(fun_d(*d))])
        y0 = [np.asarray(a) for a in f64(p64)]
        out = []
        for t in tans:
            t64 = tuple(jax.tree.map(lambda a: np.asarray(a, np.float64), p) for p in t)
            umax = max([1e-300] + [float(np.abs(l).max(initial=0.0)) for l in jax.tree.leaves(t64)])
            h = step * xmax / umax
            shift = lambda s: tuple(jax.tree.map(lambda x, u: to_device(np.asarray(x) + s * h * u), p, q)
                                    for p, q in zip(p64, t64))
            yp, ym = [np.asarray(a) for a in f64(shift(1.0))], [np.asarray(a) for a in f64(shift(-1.0))]
            c = [(a - b) / (2 * h) for a, b in zip(yp, ym)]
            fw = [(a - b) / h for a, b in zip(yp, y0)]
            bw = [(a - b) / h for a, b in zip(y0, ym)]
            noise = [ROUNDINGS * eps(np.float64) * (np.where(np.isfinite(b), np.abs(b), 0.0) + xmax) / h for b in y0]
            out.append((c, [np.minimum(a, b) for a, b in zip(fw, bw)], [np.maximum(a, b) for a, b in zip(fw, bw)],
                        noise))
    return out
