"""check_transforms: a custom rule run where JAX users run it: under jit, vmap, lax.scan, remat.

    report = check_transforms(f, *primals)               # f: a jax.custom_vjp, defvjp called
    report = check_transforms(fun, *primals, vjp=rule)   # any fun with a hand-written vjp
    report = check_transforms(f, *primals, transforms=("vmap", "scan"), batch=4)

The oracle is the rule alone: fwd then bwd called directly, eagerly, on concrete arrays (the
rule check_custom_vjp proves right). Each transform runs the same rule through jax's machinery
and must give the same cotangents, up to the order XLA rounds in. One row per transform:

  jit        jax.jit of jax.vjp at the primals                            vs the rule alone
  vmap       jax.vjp of jax.vmap(f) over a batch of examples: the custom  vs the per-example
             rule's batching rule runs a batched fwd and bwd (grad∘vmap)     loop of the rule
  scan       jax.vjp of lax.scan over the examples, f in the body         vs the per-example loop
  remat      jax.vjp of jax.checkpoint(f) at the primals                  vs the rule alone
  vmap_grad  jax.vmap of the per-example jax.vjp (vmap∘grad)              vs the per-example loop

What each catches, as users met it: a bwd that turns a traced value into a Python number
(jit, scan: it raises), a rule whose numbers come from a NumPy or C kernel through
pure_callback and assume no batch axis (x.shape[0], a sum over axis 0: vmap), a bwd that
reads what fwd put aside outside its residuals (remat, scan: the stored value is a tracer
of another trace), a custom batching rule that mixes examples (vmap, vmap_grad).

The examples: example 0 is the primals given; example b > 0 has each differentiable leaf
multiplied by (1 + 0.1·u), u uniform in [-1, 1] per element, so signs and zeros are kept (a
rule with a domain, log or sqrt, stays inside it; a kink at 0 is a kink in every witness
alike); each example has its own random normal cotangent. The batch size (default: the
smallest >= 3 that no axis of a primal or output has) is never a length of another axis,
so a rule that mistakes the batch axis for one of its own cannot pass by coincidence.
Non-floating primals, nondiff= and f.nondiff_argnums are held fixed (closed over, never
batched). Complex primals and outputs are differentiable (a complex leaf's row index ends in
0 for its real part, 1 for its imaginary part).

Tolerance, per leaf: the dtype's rtol (1e-10 float64, 1e-4 float32; fnnet.check.compare)
times the leaf's scale, plus 16 eps per element of the oracle's magnitude: a transform
changes the order of roundings (fusion, batched reductions), never the mathematics.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from fnnet.check import nondiff as _nd
from fnnet.check.compare import ROUNDINGS, compare, eps, rtol as dtype_rtol
from fnnet.check.complex_vjp import merge, real_view, split
from fnnet.check.inputs import annotate, make_cotangent, primal_names, rng_for, to_device, x64_context
from fnnet.check.report import Report, Row
from fnnet.check.rows import oracle_row
from fnnet.check.symbolic_zeros import call_rule
from fnnet.check.verdict import Status
from fnnet.validate import int_at_least

TRANSFORMS = ("jit", "vmap", "scan", "remat", "vmap_grad")
WHAT = {"jit": "jax.jit(jax.vjp)",
        "vmap": "jax.vjp of jax.vmap(f) (batched fwd and bwd)",
        "scan": "jax.vjp of lax.scan, f in the body",
        "remat": "jax.vjp of jax.checkpoint(f)",
        "vmap_grad": "jax.vmap of the per-example jax.vjp"}
BATCHED = ("vmap", "scan", "vmap_grad")
PERTURB = 0.1      # example b > 0: each differentiable leaf times (1 + PERTURB·u), u ~ U[-1, 1]


def check_transforms(f, *primals, vjp=None, transforms=TRANSFORMS, batch=None, key=None, nondiff=(),
                     names=None, rtol=None, title=None):
    """A custom_vjp's rule (or fun with vjp=) under jit, vmap, lax.scan, remat and vmap∘grad.

    f: a jax.custom_vjp with defvjp(fwd, bwd) called, or a plain fun(*primals) -> y with
        vjp(*primals, ct) -> one cotangent per primal (or per differentiable primal), as check_vjp.
    primals: one example's arguments, e.g. x [d]; the batched transforms stack `batch`
        examples on a new leading axis ([batch, d]).
    transforms: some of TRANSFORMS, in the order the rows are wanted.
    batch: examples for vmap, scan and vmap_grad (int >= 2); None picks the smallest >= 3
        that is no axis length of a primal or of the output.
    key: jax key or int seed for the examples and cotangents. rtol: overrides the dtype's.
    Returns a Report with one row per transform (primal column: the transform), FAIL with
    the leaf, example and values where the cotangents differ, or the exception it raised.
    Raises TypeError for a custom_jvp or a function without a rule, ValueError for unknown
    transforms, and re-raises (annotated) when the rule alone raises.
    """
    t0 = time.perf_counter()
    where = "check_transforms"
    transforms = _transforms(transforms)
    custom = vjp is None
    if custom:
        _require_custom_vjp(f, where)
        fun, nd_own = f, tuple(int(i) for i in f.nondiff_argnums)
    else:
        fun, nd_own = f, ()
    names = primal_names(getattr(fun, "fun", fun), len(primals), names)
    diff, fixed = _nd.differentiable(where, tuple(nondiff) + nd_own, names, split(primals), primals)
    n = len(primals)
    key = jax.random.key(key) if isinstance(key, int) else key
    rng = rng_for(key, 5)

    with x64_context(split(primals)):
        d0 = tuple(jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), primals[i]) for i in diff)
        g = _as_custom_vjp(fun, vjp, diff, fixed, n, names) if not custom else (
            lambda *d: fun(*_nd.merge(d, diff, fixed, n)))
        out = jax.eval_shape(g, *d0)
        batch = _batch_size(batch, d0, out, where)
        examples = [d0] + [tuple(jax.tree.map(lambda a: _perturb(a, rng), p) for p in d0)
                           for _ in range(batch - 1)]
        cts = [merge(make_cotangent(None, split(out), rng)[0], out) for _ in range(batch)]   # complex: re + i·im
        alone = _rule_alone(f, vjp, diff, fixed, n, names)
        try:
            loop = [alone(d, ct) for d, ct in zip(examples, cts)]
        except Exception as e:
            raise annotate(e, f"{where}: the rule alone (fwd then bwd, called directly), before any "
                              f"transform; check it with check_custom_vjp / check_vjp first")
        stacked_d, stacked_ct, stacked_loop = _stack(examples), _stack(cts), _stack(loop)
        pullback = lambda d, ct: jax.vjp(g, *d)[1](ct)

        def scanned(*ds):
            return jax.lax.scan(lambda c, d: (c, g(*d)), None, tuple(ds))[1]

        runs = {"jit": lambda: jax.jit(pullback)(examples[0], cts[0]),
                "vmap": lambda: jax.vjp(jax.vmap(g), *stacked_d)[1](stacked_ct),
                "scan": lambda: jax.vjp(scanned, *stacked_d)[1](stacked_ct),
                "remat": lambda: jax.vjp(jax.checkpoint(g), *examples[0])[1](cts[0]),
                "vmap_grad": lambda: jax.vmap(pullback)(stacked_d, stacked_ct)}
        leaf_names = [names[i] + jax.tree_util.keystr(p) for i, t in zip(diff, d0)
                      for p, _ in jax.tree_util.tree_leaves_with_path(t)]
        rows = []
        for t in transforms:
            want = stacked_loop if t in BATCHED else loop[0]
            try:
                got = runs[t]()
            except Exception as e:
                rows.append(Row(t, _oracle(t), "transform", Status.FAIL,
                                note=f"raised under {t} ({WHAT[t]}): {_error_text(e)}"))
                continue
            rows.append(_row(t, got, want, leaf_names, rtol))
    batched = [x for x in transforms if x in BATCHED]
    header = ((f"{batch} examples for {', '.join(batched)} (example 0: the primals given; others: each "
               f"differentiable leaf × (1 + {PERTURB}·u), u ~ U[-1, 1]); " if batched else "") +
              "cotangents random normal; oracle: the rule alone, fwd then bwd called directly and eagerly" +
              ("; worst index of a batched row: (example, *index)" if batched else ""))
    label = f"custom_vjp {_name(f)}" if custom else f"vjp of {_name(f)}"
    return Report(title or f"{label} under transformations", tuple(rows), header, time.perf_counter() - t0)


def _error_text(e):
    """'Type: first line' of an exception; for an error raised inside a callback (whose message
    carries the callback's traceback) the traceback's last line, which names the real error."""
    lines = [l for l in str(e).strip().splitlines() if l.strip()] or [""]
    if "Traceback (most recent call last)" in lines[0] and len(lines) > 1:
        return f"{type(e).__name__} in a callback: {lines[-1].strip()}"
    return f"{type(e).__name__}: {lines[0]}"


def _oracle(t):
    return "per-example loop of the rule alone" if t in BATCHED else "the rule alone"


def _name(f):
    fun = getattr(f, "fun", f)
    return getattr(fun, "__name__", type(fun).__name__)


def _transforms(transforms):
    if isinstance(transforms, str):
        transforms = (transforms,)
    transforms = tuple(transforms)
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown or not transforms:
        raise ValueError(f"check_transforms: transforms must be some of {TRANSFORMS}, got {transforms!r}")
    return tuple(dict.fromkeys(transforms))


def _require_custom_vjp(f, where):
    if hasattr(f, "jvp") and hasattr(f, "fun") and not hasattr(f, "bwd"):
        raise TypeError(f"{where}: expected a jax.custom_vjp, got a jax.custom_jvp: this checks VJP "
                        f"rules; pass fun with vjp=..., or check its JVP rule with check_jvp")
    if not all(hasattr(f, a) for a in ("fun", "fwd", "bwd", "nondiff_argnums")) or f.fwd is None:
        raise TypeError(f"{where}: expected a jax.custom_vjp with defvjp(fwd, bwd) called, or a "
                        f"function with vjp=rule, got {type(f).__name__}")


def _batch_size(batch, d0, out, where):
    if batch is not None:
        return int_at_least(where, "batch", batch, 2)
    taken = {int(s) for l in jax.tree.leaves((d0, out)) for s in np.shape(l)}
    b = 3
    while b in taken:
        b += 1
    return b


def _perturb(a, rng):
    a = np.asarray(a)
    return to_device((a * (1.0 + PERTURB * rng.uniform(-1.0, 1.0, a.shape))).astype(a.dtype))


def _stack(trees):
    return jax.tree.map(lambda *a: to_device(np.stack([np.asarray(x) for x in a])), *trees)


def _as_custom_vjp(fun, vjp, diff, fixed, n, names):
    """fun with the hand-written vjp as its jax.custom_vjp rule, over the differentiable primals
    (the fixed ones closed over), so that jax's transforms run that rule."""
    @jax.custom_vjp
    def g(*d):
        return fun(*_nd.merge(d, diff, fixed, n))

    def bwd(d, ct):
        out = vjp(*_nd.merge(d, diff, fixed, n), ct)
        return _nd.pick(out, n, diff, sorted(fixed), names)[0]

    g.defvjp(lambda *d: (g.fun(*d), d), bwd)
    return g


def _rule_alone(f, vjp, diff, fixed, n, names):
    """(differentiable primals, ct) -> their cotangents, from the rule called directly."""
    if vjp is not None:
        return lambda d, ct: _nd.pick(vjp(*_nd.merge(d, diff, fixed, n), ct), n, diff, sorted(fixed), names)[0]
    return lambda d, ct: call_rule(f, _nd.merge(d, diff, fixed, n), diff, ct, "check_transforms")


def _row(t, got, want, leaf_names, user_rtol):
    """One transform's row: its cotangents vs the oracle's, leaf by leaf, the worst leaf shown."""
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    if len(got_leaves) != len(want_leaves):
        return Row(t, _oracle(t), "transform", Status.FAIL,
                   note=f"under {t} the cotangents have {len(got_leaves)} leaves, the rule alone "
                        f"{len(want_leaves)}")
    leaf_rows = []                     # (Row, leaf name): read through oracle_row, not compare's result
    for name, a, b in zip(leaf_names, got_leaves, want_leaves):
        a_np, b_np = np.asarray(a), np.asarray(b)
        if a_np.shape != b_np.shape or a_np.dtype != b_np.dtype:
            return Row(t, _oracle(t), "transform", Status.FAIL,
                       note=f"leaf {name}: under {t} the cotangent is {a_np.dtype}{list(a_np.shape)}, "
                            f"the rule alone gives {b_np.dtype}{list(b_np.shape)}")
        rt = user_rtol if user_rtol is not None else dtype_rtol(np.finfo(b_np.dtype).dtype)
        a64, b64 = real_view(a_np), real_view(b_np)
        floor = ROUNDINGS * eps(b_np.dtype) * np.where(np.isfinite(b64), np.abs(b64), 0.0)
        row = oracle_row(t, _oracle(t), "transform", compare(a64, b64, rt, floor), True, [])
        leaf_rows.append((row, name))
    row, worst_name = max(leaf_rows, key=lambda rn: (rn[0].status == Status.FAIL, rn[0].rel_err))
    if row.status == Status.FAIL:
        where = (f"example {row.worst_index[0]}, index {row.worst_index[1:]}"
                 if t in BATCHED and row.worst_index else f"index {row.worst_index}")
        note = f"leaf {worst_name}, {where}: {WHAT[t]} differs from {_oracle(t)}"
        row = dataclasses.replace(row, note="; ".join(filter(None, [note, row.note])))
    return row
