"""Dense (affine) layer: y = x · W + b.

Shapes: x [batch, d_in], W [d_in, d_out], b [d_out], y [batch, d_out].
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnnet import initializers as _init
from fnnet._validate import check_floating, check_shape


class DenseParams(NamedTuple):
    w: jax.Array  # [d_in, d_out]
    b: jax.Array  # [d_out]


@dataclasses.dataclass(frozen=True)
class Dense:
    """Fully connected layer with `units` outputs.

    `w_init` / `b_init` name an initializer from `fnnet.initializers` (glorot_uniform and
    zeros by default; the seeds used "normal" and "lecun_normal").
    """
    units: int
    w_init: str = "glorot_uniform"
    b_init: str = "zeros"

    def __str__(self):
        return f"Dense({self.units})"

    def __post_init__(self):
        if not isinstance(self.units, int) or isinstance(self.units, bool) or self.units < 1:
            raise ValueError(f"Dense: units must be a positive int, got {self.units!r}")
        _init.get(self.w_init), _init.get(self.b_init)  # fail early on a typo

    def init(self, key, in_shape):
        """in_shape: (d_in,) -> (DenseParams(w [d_in, units], b [units]), (units,))."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 1:
            raise ValueError(f"{self}: input must be [batch, d_in], got feature shape {in_shape}")
        kw, kb = jax.random.split(key)
        # Always drawn in float32, whatever jax_enable_x64 says (fnnet.init casts to the
        # dtype asked for): the same key gives the same weights with x64 on or off.
        w = _init.get(self.w_init)(kw, (in_shape[0], self.units), jnp.float32)
        b = _init.get(self.b_init)(kb, (self.units,), jnp.float32)
        return DenseParams(w, b), (self.units,)

    def _check(self, params, x):
        check_floating(str(self), "params.w", params.w)
        check_shape(str(self), "params.w", params.w, (params.w.shape[0], self.units))
        check_shape(str(self), "params.b", params.b, (self.units,))
        check_floating(str(self), "x", x)
        check_shape(str(self), "x", x, (None, params.w.shape[0]))

    def forward(self, params, x):
        """x [batch, d_in] -> (y [batch, units], cache = x)."""
        self._check(params, x)
        y = x @ params.w + params.b[None, :]     # y = x·W + b
        return y, x

    def backward(self, params, cache, dy):
        """dy [batch, units] -> (DenseParams(dw, db), dx [batch, d_in])."""
        x = cache
        check_shape(str(self), "dy", dy, (x.shape[0], self.units))
        dw = x.T @ dy                  # dL/dW = xᵀ · dL/dy
        db = dy.sum(axis=0)            # dL/db = Σ_batch dL/dy
        dx = dy @ params.w.T           # dL/dx = dL/dy · Wᵀ
        return DenseParams(dw, db), dx

    def l2_mask(self, params):
        """Which leaves the L2 penalty ½λΣw² applies to: weights, never biases."""
        del params
        return DenseParams(w=True, b=False)
