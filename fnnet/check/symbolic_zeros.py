"""A jax.custom_vjp rule called as jax calls it when it was defined with symbolic_zeros=True.

    call_fwd(f, primals, nd)   # f.fwd(*primals), each differentiable leaf wrapped as jax wraps it

With `f.defvjp(fwd, bwd, symbolic_zeros=True)` jax hands fwd every leaf of a differentiable
argument as `CustomVJPPrimal(value, perturbed)` (perturbed: the leaf is being differentiated)
and may hand bwd a `SymbolicZero` in place of a cotangent that is known to be zero. The
checkers that call a rule's fwd directly (check_custom_vjp, check_transforms) go through here.
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
