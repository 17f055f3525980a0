"""A jax.custom_vjp rule called as jax calls it when it was defined with symbolic_zeros=True.

    call_fwd(f, primals, nd)           # f.fwd(*primals), each differentiable leaf wrapped as jax wraps it
    call_rule(f, primals, diff, ct)    # fwd then bwd: the cotangents of the primals at positions diff

With `f.defvjp(fwd, bwd, symbolic_zeros=True)` jax hands fwd every leaf of a differentiable
argument as `CustomVJPPrimal(value, perturbed)` (perturbed: the leaf is being differentiated)
and may hand bwd a `SymbolicZero` in place of a cotangent that is known to be zero. The
checkers that call a rule directly (check_custom_vjp, check_transforms, check_adjoint,
taylor_test) go through here.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal


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
