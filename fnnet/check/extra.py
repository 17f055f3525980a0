"""Second order and per-example gradients of a hand-written backward.

    check_second_order(fun, vjp, *primals)   # the backward is itself differentiable and right
    check_per_example(fun, vjp, params, x)   # vmap of the backward == the per-example loop,
                                             # and the per-example gradients sum to the batch's

Second order (torch's gradgradcheck): the hand-written backward b(*primals, ct) = vjp(...)
is treated as a function; its own VJP, taken by autodiff *through the hand-written code*
(what jax.grad(jax.grad(...)) of a custom_vjp runs), is compared with
  - jax.vjp of jax's own backward of fun (the true Hessian-vector products), and
  - float64 finite differences of b itself,
with every check_vjp rule (kinks, non-finite, floors). A backward that is right in value
but not differentiable (stop_gradient on an intermediate, integer casts, value-dependent
Python) fails here.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import nondiff as _nd
from fnnet.check.compare import ROUNDINGS, compare, eps, rtol as dtype_rtol
from fnnet.check.core import run_check
from fnnet.check.inputs import make_cotangent, primal_names, rng_for, to_device, x64_context
from fnnet.check.report import Report, Row
from fnnet.check.verdict import Status
from fnnet.check.rows import oracle_row
from fnnet.check.symbolic_zeros import as_fun_vjp, given_as_object


def check_second_order(fun, vjp, *primals, cotangent=None, key=None, nondiff=(), names=None, **options):
    """The hand-written backward's VJP (autodiff through it) vs true HVPs and FD of the backward.

    check_second_order(fun, vjp, *primals), or check_second_order(f, *primals) for a
    jax.custom_vjp f (its own fwd/bwd are the backward, f.fun the function, f.nondiff_argnums
    held fixed), as check_custom_vjp takes it.
    Primals of the second-order check: (*primals, cotangent); the cotangent is random normal
    (from key) unless given, and is differentiated too (its derivative is the Jacobian
    itself). options: as check_vjp (mode, detect, rtol, atol, jit, ...).
    """
    if given_as_object(fun, vjp):
        primals = (vjp, *primals)
        fun, vjp, nd = as_fun_vjp(fun, len(primals), "check_second_order")
        nondiff = tuple(nd) + tuple((nondiff,) if isinstance(nondiff, (int, str)) else nondiff or ())
    names = primal_names(fun, len(primals), names)
    nd_pos, _ = _nd.positions(nondiff, names, primals)
    diff = [i for i in range(len(primals)) if i not in nd_pos]
    key = jax.random.key(key) if isinstance(key, int) else key
    with x64_context(primals):
        out = jax.eval_shape(fun, *primals)
        ct, _ = make_cotangent(cotangent, out, rng_for(key, 3))

    def backward(*args):                         # the hand-written backward, differentiable primals only
        *p, c = args
        return _nd.pick(vjp(*p, c), len(primals), diff, nd_pos, names)[0]

    def true_backward(*args):                    # jax's backward of fun: its VJP is the true HVP
        *p, c = args
        _, pullback = jax.vjp(lambda *d: fun(*_nd.merge(d, diff, {i: p[i] for i in nd_pos}, len(p))),
                              *[p[i] for i in diff])
        return pullback(c)

    def double_backward(*args):                  # autodiff through the hand-written backward
        *a, c2 = args
        out = jax.vjp(backward, *a)[1](c2)
        # a primal held fixed is not differentiated: its (real) second-order cotangent is not asked for
        return tuple(None if i in nd_pos else o for i, o in enumerate(out))

    return run_check(backward, double_backward, *primals, ct, nondiff=tuple(nd_pos),
                     names=tuple(names) + ("cotangent",), title=f"second order of {getattr(fun, '__name__', 'fun')}",
                     oracle_fun=true_backward, oracle_text="jax HVP", **options)


def check_per_example(fun, *args, cotangent=None, key=None, rtol=None, jit=True, title=None):
    """vmap of the hand-written backward over examples vs the per-example loop vs the batch.

    check_per_example(fun, vjp, params, x), or check_per_example(f, params, x) for a
    jax.custom_vjp f(params, x) (its own fwd/bwd are the backward; x in f.nondiff_argnums
    is held fixed: no dx rows), as check_custom_vjp takes it.
    fun(params, x) -> y, every leaf [batch, ...]; x [batch, ...] (integer x allowed: no dx rows);
    vjp(params, x, ct) -> (dparams, dx). Per example i the backward runs on x[i:i+1], ct[i:i+1].
    Rows per params leaf: "vmap vs loop" (per-example gradients [batch, *leaf]) and
    "Σ per-example vs batch"; for floating x: "per-example dx vs batch dx". A layer that
    couples examples (batch norm in train mode) fails the sums, correctly: its per-example
    gradients are not the batch gradient's parts.
    """
    t0 = time.perf_counter()
    if given_as_object(fun, args[0] if args else None):
        if len(args) != 2:
            raise TypeError(f"check_per_example: a custom_vjp takes (f, params, x), got {len(args)} "
                            f"argument(s) after f")
        fun, vjp, nd = as_fun_vjp(fun, 2, "check_per_example")
        if 0 in nd:
            raise ValueError("check_per_example: params is in the custom_vjp's nondiff_argnums: there are no "
                             "parameter gradients to check")
        params, x = args
        x_held = 1 in nd
    elif len(args) != 3:
        raise TypeError(f"check_per_example: takes (fun, vjp, params, x), got {len(args)} argument(s) after fun")
    else:
        (vjp, params, x), x_held = args, False
    key = jax.random.key(key) if isinstance(key, int) else key
    with x64_context((params, x, cotangent)):
        x = jax.tree.map(lambda a: to_device(a, np.asarray(a).dtype), x)
        n = int(jax.tree.leaves(x)[0].shape[0])
        out = jax.eval_shape(fun, params, x)
        bad = [l.shape for l in jax.tree.leaves(out) if not l.shape or l.shape[0] != n]
        if bad:
            raise ValueError(f"check_per_example: every output leaf must be [batch={n}, ...], got {bad}")
        ct, _ = make_cotangent(cotangent, out, rng_for(key, 4))
        one = lambda xi, ci: vjp(params, jax.tree.map(lambda a: a[None], xi), jax.tree.map(lambda a: a[None], ci))
        batched = jax.jit(jax.vmap(one)) if jit else jax.vmap(one)
        dp_vmap, dx_vmap = batched(x, ct)
        take = lambda t, i: jax.tree.map(lambda a: a[i], t)
        one_loop = jax.jit(one) if jit else one          # the loop: one example per call
        loop = [one_loop(take(x, i), take(ct, i)) for i in range(n)]
        dp_batch, dx_batch = (jax.jit(vjp) if jit else vjp)(params, x, ct)
    rows = []
    floating_x = not x_held and all(jnp.issubdtype(l.dtype, jnp.floating) for l in jax.tree.leaves(x))
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = "params" + jax.tree_util.keystr(path)
        get = lambda t: np.asarray(_leaf(t, path), np.float64)
        per_v = get(dp_vmap)
        per_l = np.stack([get(dp) for dp, _ in loop])
        dtype = np.asarray(leaf).dtype
        rt = rtol if rtol is not None else dtype_rtol(dtype)
        rows.append(oracle_row(name, "vmap vs per-example loop", "per_example",
                               compare(per_v, per_l, rt, ROUNDINGS * eps(dtype) * np.abs(per_l)), True, []))
        total = per_l.sum(axis=0)
        rows.append(oracle_row(name, "Σ per-example vs batch", "per_example",
                               compare(total, get(dp_batch), rt, ROUNDINGS * eps(dtype) * np.abs(per_l).sum(axis=0)),
                               True, []))
    if floating_x:
        for path, leaf in jax.tree_util.tree_leaves_with_path(x):
            dv = np.asarray(_leaf(dx_vmap, path), np.float64).reshape(np.shape(leaf))
            db = np.asarray(_leaf(dx_batch, path), np.float64)
            dtype = np.asarray(leaf).dtype
            rt = rtol if rtol is not None else dtype_rtol(dtype)
            rows.append(oracle_row("x" + jax.tree_util.keystr(path), "per-example dx vs batch dx", "per_example",
                                   compare(dv, db, rt, ROUNDINGS * eps(dtype) * np.abs(db)), True, []))
    else:
        rows.append(Row("x", "held fixed", "nondiff", Status.NA,
                        note="x in the custom_vjp's nondiff_argnums: no dx rows" if x_held else
                        "non-floating x: no dx rows"))
    return Report(title or f"per-example gradients of {getattr(fun, '__name__', 'fun')}", tuple(rows),
                  f"batch {n}; cotangent random normal; per-example backward on x[i:i+1]",
                  time.perf_counter() - t0)


def _leaf(tree, path):
    """The subtree of `tree` at a key path from tree_leaves_with_path (attr, dict key or index)."""
    for k in path:
        if hasattr(k, "name"):
            tree = getattr(tree, k.name)
        elif hasattr(k, "key"):
            tree = tree[k.key]
        else:
            tree = tree[k.idx]
    return tree
