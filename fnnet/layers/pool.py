"""2-D max and average pooling over NHWC images, 'valid' windows.

Shapes: x [batch, H, W, C] -> y [batch, H_out, W_out, C],
H_out = (H - window_h) // stride_h + 1 (rows past the last window are not read).

Max-pool ties: the whole gradient of a window goes to ONE element, the first maximum
in row-major order within the window. This is the subgradient jax.grad of
lax.reduce_window(max) picks (XLA's select-and-scatter with >=), so the two agree
exactly; giving the full cotangent to every tied element would not be a gradient.

The backward scatters into the strided positions with lax.pad (interior padding =
stride - 1), one pad per window offset: no index arrays, no im2col matrices.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnnet import validate
from fnnet.layers import image_inputs


class MaxPoolCache(NamedTuple):
    argmax: jax.Array   # [batch, H_out, W_out, C] int8: the winning offset p·kw + q in each window
    in_shape: tuple     # (batch, H, W, C), static


def _offsets(window):
    return [(p, q) for p in range(window[0]) for q in range(window[1])]


def _window_slice(x, p, q, stride, out):
    """x[:, p + i·s_h, q + j·s_w, :] for i < H_out, j < W_out: [batch, H_out, W_out, C]."""
    (sh, sw), (ho, wo) = stride, out
    return lax.slice(x, (0, p, q, 0), (x.shape[0], p + (ho - 1) * sh + 1, q + (wo - 1) * sw + 1, x.shape[3]),
                     (1, sh, sw, 1))


def _scatter(d, p, q, stride, in_shape):
    """The adjoint of _window_slice: place d [batch, H_out, W_out, C] at rows p + i·s_h,
    cols q + j·s_w of a zero [batch, H, W, C] array (lax.pad with interior padding)."""
    (sh, sw), (_, h, w, _) = stride, in_shape
    ho, wo = d.shape[1], d.shape[2]
    zero = jnp.zeros((), d.dtype)
    return lax.pad(d, zero, ((0, 0, 0), (p, h - p - (ho - 1) * sh - 1, sh - 1),
                             (q, w - q - (wo - 1) * sw - 1, sw - 1), (0, 0, 0)))


class _Pool:
    """Shared plumbing: window/stride validation, output shape, checks."""

    def __post_init__(self):
        where = f"{type(self).__name__}(window={self.window!r}, stride={self.stride!r})"
        image_inputs.pair(where, "window", self.window)
        if self.stride is not None:
            image_inputs.pair(where, "stride", self.stride)

    def __str__(self):
        k, s = self._sizes()
        return f"{type(self).__name__}({k[0]}x{k[1]}, stride={s[0]}x{s[1]})"

    def _sizes(self):
        k = image_inputs.pair(type(self).__name__, "window", self.window)
        s = k if self.stride is None else image_inputs.pair(type(self).__name__, "stride", self.stride)
        return k, s

    def _out(self, hw):
        k, s = self._sizes()
        return k, s, image_inputs.out_size(str(self), hw, k, s, ((0, 0), (0, 0)))

    def init(self, key, in_shape):
        """in_shape (H, W, C) -> ((), (H_out, W_out, C))."""
        del key
        h, w, c = image_inputs.image_shape(str(self), in_shape)
        return (), (*self._out((h, w))[2], c)

    def _check(self, params, x):
        image_inputs.check_no_params(str(self), params)
        image_inputs.check_image(str(self), x)


@dataclasses.dataclass(frozen=True)
class MaxPool2D(_Pool):
    """MaxPool2D(window=2, stride=None): max over each window; stride defaults to the window."""
    window: object = 2
    stride: object = None

    def forward(self, params, x):
        """x [batch, H, W, C] -> (y [batch, H_out, W_out, C], MaxPoolCache)."""
        self._check(params, x)
        k, s, out = self._out(x.shape[1:3])
        y = lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, *k, 1), (1, *s, 1), "VALID")   # y = max_window x
        # the first maximum of each window in row-major order (jnp.argmax keeps the first)
        stack = jnp.stack([_window_slice(x, p, q, s, out) for p, q in _offsets(k)])
        arg = jnp.argmax(stack, axis=0).astype(jnp.int8 if k[0] * k[1] <= 127 else jnp.int32)
        return y, MaxPoolCache(arg, tuple(x.shape))

    def backward(self, params, cache, dy):
        """dy [batch, H_out, W_out, C] -> ((), dx [batch, H, W, C])."""
        arg, in_shape = cache
        k, s, out = self._out(in_shape[1:3])
        validate.check_dy(str(self), dy, (in_shape[0], *out, in_shape[3]))
        dx = jnp.zeros(in_shape, dy.dtype)
        for o, (p, q) in enumerate(_offsets(k)):
            d = jnp.where(arg == o, dy, 0)                     # dL/dy to the window's winner only
            dx = dx + _scatter(d, p, q, s, in_shape)           # dL/dx[winner] += dL/dy (overlaps add)
        return (), dx


@dataclasses.dataclass(frozen=True)
class AvgPool2D(_Pool):
    """AvgPool2D(window=2, stride=None): mean over each window; stride defaults to the window."""
    window: object = 2
    stride: object = None

    def forward(self, params, x):
        """x [batch, H, W, C] -> (y [batch, H_out, W_out, C], cache = x's shape)."""
        self._check(params, x)
        k, s, _ = self._out(x.shape[1:3])
        total = lax.reduce_window(x, np.zeros((), x.dtype), lax.add, (1, *k, 1), (1, *s, 1), "VALID")
        return total / (k[0] * k[1]), tuple(x.shape)          # y = (1/(kh·kw)) Σ_window x

    def backward(self, params, cache, dy):
        """dy [batch, H_out, W_out, C] -> ((), dx [batch, H, W, C])."""
        in_shape = cache
        k, s, out = self._out(in_shape[1:3])
        validate.check_dy(str(self), dy, (in_shape[0], *out, in_shape[3]))
        d = dy / (k[0] * k[1])                                 # each of the kh·kw inputs gets dy/(kh·kw)
        dx = jnp.zeros(in_shape, dy.dtype)
        for p, q in _offsets(k):
            dx = dx + _scatter(d, p, q, s, in_shape)           # dL/dx = Σ_windows ∋ x dL/dy / (kh·kw)
        return (), dx
