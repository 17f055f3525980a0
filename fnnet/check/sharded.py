"""check_shard_map: a custom rule inside jax.shard_map: right values, and each gradient sharded
as its parameter.

    report = check_shard_map(f, w, x, mesh=mesh, in_specs=(P(None, "model"), P("data", None)),
                             out_specs=P("data", "model"))
    report = check_shard_map(fun, w, x, vjp=rule, mesh=..., in_specs=..., out_specs=...)

f (a jax.custom_vjp, or fun with its hand-written vjp) is the per-shard body: what each
device runs on its block, collectives (lax.psum over a mesh axis) included. Inside shard_map
a rule must do what jax's transposition does for autodiff: a cotangent for an input that is
not split over an axis the computation varies over is summed over that axis (lax.psum),
because every device holds a part of it. A rule that is right on one device forgets that
(jax raises: the bwd output "does not match" the primal's manual axis type), and one that
averages instead (lax.pmean) is off by the axis size. So the oracle is not the rule alone
(a psum cannot run outside shard_map) but autodiff of the *undecorated* body (f.fun) under
the same shard_map: jax inserts the collectives its transposition needs.

Rows, per differentiable primal leaf:
  "values"    jax.vjp of shard_map(f) (f's rule, per shard)   vs jax.vjp of shard_map(f.fun);
              tolerance as check_transforms: the dtype's rtol × the leaf's scale plus 16 eps
              per element of the oracle's magnitude (the collectives add in another order)
  "sharding"  the gradient's sharding (under jax.jit, as a training step gets it) vs the
              parameter's own: a gradient laid out otherwise costs a reshard in every
              update (its parameter placed replicated while in_specs splits it, say)
and one "shard_map" row, FAIL with the exception, when the rule cannot run under shard_map.
Primals already placed (jax Arrays with a sharding) are kept where they are; others are
placed by in_specs (NamedSharding(mesh, spec)). All primals: floating arrays (pytrees allowed).
"""
from __future__ import annotations

import time

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from fnnet.check.compare import ROUNDINGS, compare, eps, rtol as dtype_rtol
from fnnet.check.inputs import make_cotangent, primal_names, rng_for, x64_context
from fnnet.check.report import Report, Row
from fnnet.check.rows import oracle_row
from fnnet.check.symbolic_zeros import require_custom_vjp, rule_name
from fnnet.check.verdict import Status


def _is_spec(s):
    return s is None or isinstance(s, PartitionSpec)


def _place(tree, specs, mesh):
    """Each leaf of tree on mesh as its spec (a prefix tree of PartitionSpecs) says, unless it
    is a jax Array with a sharding of its own already (the user's placement is what is checked)."""
    def put(spec, sub):
        def one(a):
            if isinstance(a, jax.Array) and isinstance(a.sharding, NamedSharding):
                return a
            return jax.device_put(a, NamedSharding(mesh, PartitionSpec() if spec is None else spec))
        return jax.tree.map(one, sub)
    return jax.tree.map(put, specs, tree, is_leaf=_is_spec)


def _sharding_text(s):
    return f"NamedSharding {s.spec}" if isinstance(s, NamedSharding) else type(s).__name__


def check_shard_map(f, *primals, mesh, in_specs, out_specs, vjp=None, cotangent=None, key=None, rtol=None,
                    names=None, title=None):
    """A custom rule under jax.shard_map vs autodiff of its undecorated body there (module doc).

    f: a jax.custom_vjp (defvjp called) or, with vjp=, a plain fun; vjp(*primals, ct) -> one
        cotangent per primal, each for the primal's block (the per-shard rule).
    primals: the global arrays, e.g. w [d, k] and x [n, d]; in_specs: one PartitionSpec (or
        prefix tree) per primal, out_specs for the output, as jax.shard_map takes them; mesh:
        a jax.sharding.Mesh. cotangent: a tree of the global output, or None (random normal
        from key). rtol overrides the dtype's.
    Returns a Report: per primal leaf a "values" and a "sharding" row (plus a failed
    "shard_map" row if the rule raises under shard_map). TypeError for a custom_jvp, a fun
    without vjp= or a non-floating primal.
    """
    t0 = time.perf_counter()
    where = "check_shard_map"
    if vjp is None:
        require_custom_vjp(f, where)
        fun, rule = f.fun, f
        if tuple(f.nondiff_argnums):
            raise TypeError(f"{where}: {rule_name(f)} has nondiff_argnums {tuple(f.nondiff_argnums)}; close over "
                            f"them (functools.partial) so every primal is a floating array")
    else:
        fun = f
        rule = jax.custom_vjp(fun)
        rule.defvjp(lambda *p: (fun(*p), p), lambda p, ct: tuple(vjp(*p, ct)))
    names = primal_names(fun, len(primals), names)
    for name, p in zip(names, primals):
        for leaf in jax.tree.leaves(p):
            if not np.issubdtype(np.asarray(leaf).dtype, np.floating):
                raise TypeError(f"{where}: primal {name} must be floating arrays, got dtype {np.asarray(leaf).dtype}")
    in_specs = tuple(in_specs) if isinstance(in_specs, list) else in_specs
    if not isinstance(in_specs, tuple) or _is_spec(in_specs) or len(in_specs) != len(primals):
        raise ValueError(f"{where}: in_specs must be a tuple with one PartitionSpec (or prefix tree) per primal "
                         f"({len(primals)}: {', '.join(names)}), got {in_specs!r}")
    key = jax.random.key(key) if isinstance(key, int) else key
    under = jax.shard_map(rule, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    oracle = jax.shard_map(fun, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    rows = []
    with x64_context(primals):
        placed = _place(tuple(primals), in_specs, mesh)
        out = jax.eval_shape(oracle, *placed)
        ct, _ = make_cotangent(cotangent, out, rng_for(key, 9))
        ct = _place(ct, out_specs, mesh)
        pull = lambda g: jax.jit(lambda p, c: jax.vjp(g, *p)[1](c))
        expected = pull(oracle)(placed, ct)
        try:
            got = pull(under)(placed, ct)
        except Exception as e:   # the rule cannot run under shard_map: that is the finding
            got = None
            rows.append(Row("shard_map", "jax.vjp of shard_map(f.fun)", "shard_map", Status.FAIL,
                            note=f"the rule raised under shard_map: {type(e).__name__}: {str(e).splitlines()[0][:400]}"
                                 f" (a cotangent for an input not split over a mesh axis the computation "
                                 f"varies over must be summed over it: lax.psum)"))
    for i, name in enumerate(names if got is not None else ()):
        for (path, p), e in zip(jax.tree_util.tree_leaves_with_path(placed[i]), jax.tree.leaves(expected[i])):
            rows += _leaf_rows(name + jax.tree_util.keystr(path), p, _leaf_at(got[i], path), e, rtol)
    header = (f"mesh {dict(mesh.shape)}; in_specs {in_specs}; out_specs {out_specs}; oracle: autodiff of the "
              f"undecorated body under the same shard_map; cotangent random normal")
    return Report(title or f"shard_map of {rule_name(f)}", tuple(rows), header, time.perf_counter() - t0)


def _leaf_at(tree, path):
    for k in path:
        tree = getattr(tree, k.name) if hasattr(k, "name") else tree[k.key] if hasattr(k, "key") else tree[k.idx]
    return tree


def _leaf_rows(leaf, param, got, expected, user_rtol):
    """The leaf's "values" and "sharding" rows."""
    dtype = np.asarray(param).dtype
    h, o = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    rt = user_rtol if user_rtol is not None else dtype_rtol(dtype)
    res = compare(h, o, rt, ROUNDINGS * eps(dtype) * np.abs(o))
    values = oracle_row(leaf, "jax.vjp of shard_map(f.fun)", "shard_map", res, True, [])
    same = got.sharding.is_equivalent_to(param.sharding, np.ndim(param))
    note = (f"gradient {_sharding_text(got.sharding)}, parameter {_sharding_text(param.sharding)}"
            + ("" if same else "; an update reshards it every step (place the parameter as in_specs says, "
                                "or change in_specs)")
            + ("" if expected.sharding.is_equivalent_to(got.sharding, np.ndim(param)) else
               f"; autodiff of f.fun gives {_sharding_text(expected.sharding)}"))
    sharding = Row(leaf, "the parameter's sharding", "sharding", Status.OK if same else Status.FAIL, note=note)
    return [values, sharding]
