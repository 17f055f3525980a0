"""Inverted dropout: keyed, train-only, rescaled so that eval mode is the identity.

Shapes: x [batch, ...] -> y of the same shape; params are `()`.
Train: m ~ Bernoulli(1 - rate) per element, drawn from the key; y = m ⊙ x / (1 - rate),
so E[y] = x. Eval: y = x (no key needed). The cache is the boolean mask (one byte per
element), the only thing the backward needs: dL/dx = m ⊙ dL/dy / (1 - rate).

Data-parallel (axis_name="data", inside jax.shard_map; fnnet.fit(mesh=...) sets it): each of
the D devices holds rows [i·b, (i+1)·b) of a batch of D·b, and the key is the same on every
device. Each device draws the whole batch's mask [D·b, ...] from the key and keeps its own
rows (lax.axis_index), so the masks are exactly those of one device on the whole batch: no
communication, at the price of drawing D times the random bits.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
from jax import lax

from fnnet.validate import check_floating
from fnnet import validate
from fnnet.layers import image_inputs


@dataclasses.dataclass(frozen=True)
class Dropout:
    """Dropout(rate, axis_name=None): zero each element with probability rate in train mode;
    0 <= rate < 1.

    Stochastic (see fnnet/state.py): forward(params, x, *, key, train). The network gives it
    the key fold_in(key, layer_index); the same key gives the same mask.
    axis_name: None, or the mesh axis the batch is split over inside jax.shard_map: this
      shard's rows of the whole batch's mask (module docstring). fit(mesh=...) sets it.
    """
    rate: float
    axis_name: str | None = None
    stochastic = True

    def __post_init__(self):
        r = self.rate
        if not isinstance(r, numbers.Real) or isinstance(r, bool) or not (math.isfinite(r) and 0 <= r < 1):
            raise ValueError(f"Dropout: rate must be a number in [0, 1) (the probability of dropping), got {r!r}")
        if self.axis_name is not None and not (isinstance(self.axis_name, str) and self.axis_name):
            raise ValueError(f"Dropout: axis_name must be None or a mesh axis name (a str), got {self.axis_name!r}")
        object.__setattr__(self, "rate", float(r))

    def __str__(self):
        return f"Dropout({self.rate:g})" if self.axis_name is None else \
            f"Dropout({self.rate:g}, axis_name={self.axis_name!r})"

    def _mask(self, key, shape):
        """keep [shape] bool: this call's rows of the mask (all of it without axis_name)."""
        # p as float32 whatever x's dtype and the x64 switch: the same key gives the same mask
        # in float32 and float64 (the checker's float64 finite differences rely on it)
        p = jnp.float32(1.0 - self.rate)
        if self.axis_name is None:
            return jax.random.bernoulli(key, p, shape)
        try:
            shards, i = lax.psum(1, self.axis_name), lax.axis_index(self.axis_name)
        except NameError as e:       # JAX: "unbound axis name"
            raise ValueError(f"{self}: the mesh axis {self.axis_name!r} is not bound here; run train mode "
                             f"inside jax.shard_map over a mesh with that axis (fit(mesh=...) does), or use "
                             f"axis_name=None") from e
        b = shape[0]
        whole = jax.random.bernoulli(key, p, (shards * b, *shape[1:]))   # the whole batch's mask, as one device
        return lax.dynamic_slice_in_dim(whole, i * b, b)                 # this device's rows [i·b, (i+1)·b)

    def init(self, key, in_shape):
        del key
        return (), tuple(in_shape)

    def forward(self, params, x, *, key=None, train=False):
        """x [batch, ...] -> (y [batch, ...], cache = keep mask [batch, ...] bool, or None in eval)."""
        image_inputs.check_no_params(str(self), params)
        check_floating(str(self), "x", x)
        if x.ndim < 1:
            raise ValueError(f"{self}: x must be [batch, ...], got a scalar")
        if not train or self.rate == 0.0:
            return x, None                                   # eval: y = x
        if key is None:
            raise ValueError(f"{self}: train mode needs a PRNG key (key=jax.random.key(...))")
        keep = self._mask(key, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0), keep   # y = m ⊙ x / (1 - rate)

    def backward(self, params, cache, dy):
        """dy [batch, ...] -> ((), dx [batch, ...])."""
        keep = cache
        if keep is None:
            return (), dy                                    # eval: dL/dx = dL/dy
        validate.check_dy(str(self), dy, keep.shape)
        return (), jnp.where(keep, dy / (1.0 - self.rate), 0)   # dL/dx = m ⊙ dL/dy / (1 - rate)
