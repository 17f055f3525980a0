"""fnnet's hand-written backward behind jax.grad, via jax.custom_vjp.

    f = loss_with_manual_grad(net)              # f(params, x, y) -> scalar loss
    grads = jax.grad(f)(params, x, y)           # runs net's hand-written backward
    dx = jax.grad(f, argnums=1)(params, x, y)   # dL/dx from the same pass
    per_example = jax.vmap(jax.grad(f), in_axes=(None, 0, 0))(params, x[:, None], y[:, None])

Anything built on jax.grad (optax loops, flax/equinox training code, jax.hessian of
something else, ...) can then train an fnnet net with fnnet's own equations.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from fnnet import network as _network


@functools.lru_cache(maxsize=256)
def loss_with_manual_grad(net):
    """net -> f(params, x, y) -> scalar, equal to fnnet.loss(net, params, x, y).

    x: [batch, *in_shape]; y: the loss's targets (integer labels allowed).
    Under jax.grad / jax.vjp, f's derivative is fnnet.backprop's hand-written one:
    the forward pass keeps (grads, dL/dx) as residuals and the backward pass only
    scales them by the incoming cotangent. For float targets y, dL/dy is the loss's
    hand-written `target_grad` (computed only when y is differentiated); a loss without
    one raises a TypeError when a gradient w.r.t. y is asked for. Integer labels get no
    cotangent (float0 zeros). Works under jit and vmap. Cached per net, so calling it
    twice returns the same function (and jit cache).
    """
    @jax.custom_vjp
    def f(params, x, y):
        return _network.loss(net, params, x, y)

    def fwd(params, x, y):
        # symbolic_zeros=True: every leaf comes as CustomVJPPrimal(value, perturbed)
        unwrap = lambda t: jax.tree.map(lambda v: v.value, t, is_leaf=lambda v: isinstance(v, CustomVJPPrimal))
        y_wanted = y.perturbed and jnp.issubdtype(jnp.result_type(y.value), jnp.floating)
        params, x, y = unwrap(params), unwrap(x), unwrap(y)
        value, grads, dx = _network.backprop(net, params, x, y)   # one hand-written pass
        dy = None
        if y_wanted:     # only then: the network output again (XLA shares it with backprop's under jit)
            out = _network.forward(net, params, x)
            target_grad = getattr(net.loss, "target_grad", None)
            if target_grad is None:
                raise TypeError(f"loss_with_manual_grad: a gradient w.r.t. the targets y was asked for, "
                                f"but loss {net.loss!r} has no hand-written target_grad(out, target)")
            dy = target_grad(out, y).astype(jnp.result_type(y))         # dL/dy
        return value, (grads, dx, dy)

    def bwd(residuals, g):
        grads, dx, dy = residuals
        if isinstance(g, SymbolicZero):                          # nothing flows back
            return jax.tree.map(jnp.zeros_like, grads), jnp.zeros_like(dx), None
        scale = lambda t: (g * t).astype(t.dtype)              # g: dOut/dL, a scalar
        return jax.tree.map(scale, grads), scale(dx), None if dy is None else scale(dy)

    f.defvjp(fwd, bwd, symbolic_zeros=True)
    f.__doc__ = f"fnnet.loss of {net} with its hand-written backward as the VJP."
    return f
