"""Inverted dropout: keyed, train-only, rescaled so that eval mode is the identity.

Shapes: x [batch, ...] -> y of the same shape; params are `()`.
Train: m ~ Bernoulli(1 - rate) per element, drawn from the key; y = m ⊙ x / (1 - rate),
so E[y] = x. Eval: y = x (no key needed). The cache is the boolean mask (one byte per
element), the only thing the backward needs: dL/dx = m ⊙ dL/dy / (1 - rate).
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from fnnet._validate import check_floating
from fnnet.layers import _checks


@dataclasses.dataclass(frozen=True)
class Dropout:
    """Dropout(rate): zero each element with probability rate in train mode; 0 <= rate < 1.

    Stochastic (see fnnet/state.py): forward(params, x, *, key, train). The network gives it
    the key fold_in(key, layer_index); the same key gives the same mask.
    """
    rate: float
    stochastic = True

    def __post_init__(self):
        r = self.rate
        if not isinstance(r, numbers.Real) or isinstance(r, bool) or not (math.isfinite(r) and 0 <= r < 1):
            raise ValueError(f"Dropout: rate must be a number in [0, 1) (the probability of dropping), got {r!r}")
        object.__setattr__(self, "rate", float(r))

    def __str__(self):
        return f"Dropout({self.rate:g})"

    def init(self, key, in_shape):
        del key
        return (), tuple(in_shape)

    def forward(self, params, x, *, key=None, train=False):
        """x [batch, ...] -> (y [batch, ...], cache = keep mask [batch, ...] bool, or None in eval)."""
        _checks.check_no_params(str(self), params)
        check_floating(str(self), "x", x)
        if x.ndim < 1:
            raise ValueError(f"{self}: x must be [batch, ...], got a scalar")
        if not train or self.rate == 0.0:
            return x, None                                   # eval: y = x
        if key is None:
            raise ValueError(f"{self}: train mode needs a PRNG key (key=jax.random.key(...))")
        # p as float32 whatever x's dtype and the x64 switch: the same key gives the same mask
        # in float32 and float64 (the checker's float64 finite differences rely on it)
        keep = jax.random.bernoulli(key, jnp.float32(1.0 - self.rate), x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0), keep   # y = m ⊙ x / (1 - rate)

    def backward(self, params, cache, dy):
        """dy [batch, ...] -> ((), dx [batch, ...])."""
        keep = cache
        if keep is None:
            return (), dy                                    # eval: dL/dx = dL/dy
        _checks.check_dy(str(self), dy, keep.shape)
        return (), jnp.where(keep, dy / (1.0 - self.rate), 0)   # dL/dx = m ⊙ dL/dy / (1 - rate)
