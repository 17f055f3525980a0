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

from fnnet import network as _network


@functools.lru_cache(maxsize=256)
def loss_with_manual_grad(net):
    """net -> f(params, x, y) -> scalar, equal to fnnet.loss(net, params, x, y).

    x: [batch, *in_shape]; y: the loss's targets (integer labels allowed).
    Under jax.grad / jax.vjp, f's derivative is fnnet.backprop's hand-written one:
    the forward pass keeps (grads, dL/dx) as residuals and the backward pass only
    scales them by the incoming cotangent. y is data: its cotangent is zero (None,
    which JAX turns into float0 zeros for integer labels). Works under jit and vmap.
    Cached per net, so calling it twice returns the same function (and jit cache).
    """
    @jax.custom_vjp
    def f(params, x, y):
        return _network.loss(net, params, x, y)

    def fwd(params, x, y):
        value, grads, dx = _network.backprop(net, params, x, y)   # one hand-written pass
        return value, (grads, dx)

    def bwd(residuals, g):
        grads, dx = residuals
        scale = lambda t: (g * t).astype(t.dtype)              # g: dOut/dL, a scalar
        return jax.tree.map(scale, grads), scale(dx), None      # (params, x, y) cotangents

    f.defvjp(fwd, bwd)
    f.__doc__ = f"fnnet.loss of {net} with its hand-written backward as the VJP."
    return f
