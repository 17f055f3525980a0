"""Flatten and Reshape: move values between feature shapes, keeping the batch axis.

Shapes: Flatten: x [batch, *s] -> y [batch, prod(s)] (row-major: for NHWC images the
channel index runs fastest); Reshape(shape): x [batch, *s] -> y [batch, *shape] with
prod(shape) == prod(s). Params are `()`; the backward is the inverse reshape.
"""
from __future__ import annotations

import dataclasses
import math

from fnnet.validate import check_floating
from fnnet import validate
from fnnet.layers import image_inputs


class _Shape:
    def _check(self, params, x, in_shape=None):
        image_inputs.check_no_params(str(self), params)
        check_floating(str(self), "x", x)
        if x.ndim < 1:
            raise ValueError(f"{self}: x must be [batch, ...], got a scalar")

    def forward(self, params, x):
        """x [batch, *s] -> (y [batch, *target(s)], cache = x's shape)."""
        self._check(params, x)
        return x.reshape(x.shape[0], *self._target(tuple(x.shape[1:]))), tuple(x.shape)   # y = reshape(x)

    def backward(self, params, cache, dy):
        """dy [batch, *target] -> ((), dx [batch, *s])."""
        in_shape = cache
        validate.check_dy(str(self), dy, (in_shape[0], *self._target(tuple(in_shape[1:]))))
        return (), dy.reshape(in_shape)                      # dL/dx = reshape⁻¹(dL/dy)

    def init(self, key, in_shape):
        """in_shape s -> ((), target(s))."""
        del key
        return (), self._target(tuple(in_shape))


@dataclasses.dataclass(frozen=True)
class Flatten(_Shape):
    """[batch, *s] -> [batch, prod(s)]."""

    def __str__(self):
        return "Flatten()"

    def _target(self, s):
        return (math.prod(s),)


@dataclasses.dataclass(frozen=True)
class Reshape(_Shape):
    """Reshape(shape): [batch, *s] -> [batch, *shape]; positive ints, same number of values."""
    shape: tuple

    def __post_init__(self):
        shape = (self.shape,) if not isinstance(self.shape, (tuple, list)) else tuple(self.shape)
        if not shape:
            raise ValueError(f"Reshape: shape must be a non-empty tuple of ints >= 1, got {self.shape!r}")
        for i, d in enumerate(shape):
            validate.int_at_least("Reshape", f"shape[{i}]", d)
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))

    def __str__(self):
        return f"Reshape({self.shape})"

    def _target(self, s):
        if math.prod(s) != math.prod(self.shape):
            raise ValueError(f"{self}: cannot reshape feature shape {s} ({math.prod(s)} values) to "
                             f"{self.shape} ({math.prod(self.shape)} values)")
        return self.shape
