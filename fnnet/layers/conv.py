"""2-D convolution (cross-correlation, as in every DL library), NHWC, with bias.

Shapes: x [batch, H, W, C_in], w [kh, kw, C_in, filters] (HWIO), b [filters],
y [batch, H_out, W_out, filters] with H_out = (H + pad_top + pad_bottom - kh) // stride + 1.

    y[n, i, j, f] = b[f] + Σ_{p, q, c} xpad[n, i·s + p, j·s + q, c] · w[p, q, c, f]

Why NHWC: fnnet's arrays are [batch, features] rows, and channels-last keeps a pixel's
features contiguous, like those rows; `x.reshape(n, 8, 8, 1)` of the digits' [n, 64] rows
is free, Flatten -> Dense sees the same order as the data, and NHWC is the layout XLA's
CPU/TPU convolutions and flax/TensorFlow use by default (torch's NCHW would need transposes).

The backward is two more convolutions (lax.conv_general_dilated with other dimension
numbers), never an im2col matrix:
    dx = full correlation of the stride-dilated dy with the flipped kernel, I and O swapped
    dw = correlation of xpad (batch and channel axes swapped) with the stride-dilated dy
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnnet import initializers as _init
from fnnet.validate import check_floating, check_shape
from fnnet import validate
from fnnet.layers import image_inputs


class ConvParams(NamedTuple):
    w: jax.Array  # [kh, kw, C_in, filters]
    b: jax.Array  # [filters]


class ConvCache(NamedTuple):
    x: jax.Array   # [batch, H, W, C_in], the unpadded input
    pads: tuple    # ((top, bottom), (left, right)), static


@dataclasses.dataclass(frozen=True)
class Conv2D:
    """Conv2D(filters, kernel, stride=1, padding='valid'): NHWC convolution with bias.

    kernel, stride: int or (height, width); padding: 'valid', 'same' (XLA's: output
    ceil(in / stride); either in any case, 'SAME' as lax and flax write it) or an int / pair smaller than the kernel (zeros on both sides).
    w_init: an initializer from fnnet.initializers, applied to the [kh·kw·C_in, filters]
    matrix so that fan_in = kh·kw·C_in (he_normal by default: convs are followed by ReLU).
    L2 (net.l2) covers the kernel w, never the bias b (see l2_mask).
    """
    filters: int
    kernel: object = 3
    stride: object = 1
    padding: object = "valid"
    w_init: str = "he_normal"
    b_init: str = "zeros"

    def __post_init__(self):
        where = f"Conv2D({self.filters!r}, kernel={self.kernel!r})"
        validate.int_at_least(where, "filters", self.filters)
        image_inputs.pair(where, "kernel", self.kernel)
        image_inputs.pair(where, "stride", self.stride)
        # 'SAME' (lax, flax) is stored as 'same': equal layers compare and hash equal
        object.__setattr__(self, "padding", image_inputs.check_padding_arg(where, self.padding))
        _init.get(self.w_init), _init.get(self.b_init)

    def __str__(self):
        k, s = image_inputs.pair("", "", self.kernel), image_inputs.pair("", "", self.stride)
        return f"Conv2D({self.filters}, kernel={k[0]}x{k[1]}, stride={s[0]}x{s[1]}, padding={self.padding!r})"

    def _geometry(self, hw):
        k, s = image_inputs.pair(str(self), "kernel", self.kernel), image_inputs.pair(str(self), "stride", self.stride)
        pads = image_inputs.padding_pairs(str(self), self.padding, k, s, hw)
        return k, s, pads, image_inputs.out_size(str(self), hw, k, s, pads)

    def init(self, key, in_shape):
        """in_shape (H, W, C_in) -> (ConvParams(w [kh, kw, C_in, filters], b [filters]),
        (H_out, W_out, filters))."""
        h, w_, c = image_inputs.image_shape(str(self), in_shape)
        (kh, kw), _, _, (ho, wo) = self._geometry((h, w_))
        kw_, kb = jax.random.split(key)
        # drawn in float32 whatever jax_enable_x64 says (fnnet.init casts): same key, same weights
        w = _init.get(self.w_init)(kw_, (kh * kw * c, self.filters), jnp.float32).reshape(kh, kw, c, self.filters)
        b = _init.get(self.b_init)(kb, (self.filters,), jnp.float32)
        return ConvParams(w, b), (ho, wo, self.filters)

    def _check(self, params, x):
        where = str(self)
        k = image_inputs.pair(where, "kernel", self.kernel)
        check_floating(where, "params.w", params.w)
        if params.w.ndim != 4 or tuple(params.w.shape[:2]) != k or params.w.shape[3] != self.filters:
            raise ValueError(f"{where}: params.w must be [{k[0]}, {k[1]}, C_in, {self.filters}], "
                             f"got {tuple(params.w.shape)}")
        check_shape(where, "params.b", params.b, (self.filters,))
        image_inputs.check_image(where, x, channels=params.w.shape[2])

    def forward(self, params, x):
        """x [batch, H, W, C_in] -> (y [batch, H_out, W_out, filters], cache)."""
        self._check(params, x)
        _, s, pads, _ = self._geometry(x.shape[1:3])
        y = lax.conv_general_dilated(x, params.w, window_strides=s, padding=pads,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + params.b[None, None, None, :], ConvCache(x, pads)   # y = x ⋆ w + b

    def backward(self, params, cache, dy):
        """dy [batch, H_out, W_out, filters] -> (ConvParams(dw, db), dx [batch, H, W, C_in])."""
        x, pads = cache
        (kh, kw), s, _, out = self._geometry(x.shape[1:3])
        validate.check_dy(str(self), dy, (x.shape[0], *out, self.filters))
        # rows/cols of xpad past the last window (the stride's remainder) get no gradient
        rem = [(n + lo + hi - k) % st for n, k, st, (lo, hi) in zip(x.shape[1:3], (kh, kw), s, pads)]
        # dL/dx: dy dilated by the stride, full-padded, correlated with w flipped in space, I<->O
        w_flip = jnp.flip(params.w, (0, 1))
        dx_pads = [(k - 1 - lo, k - 1 - hi + r) for k, (lo, hi), r in zip((kh, kw), pads, rem)]
        dx = lax.conv_general_dilated(dy, w_flip, window_strides=(1, 1), padding=dx_pads, lhs_dilation=s,
                                      dimension_numbers=("NHWC", "HWOI", "NHWC"))
        # dL/dw[p,q,c,f] = Σ_{n,i,j} xpad[n, i·s+p, j·s+q, c] · dy[n,i,j,f]: batch n is the contracted
        # "feature" axis, channels c the "batch" axis; the stride becomes the rhs (dy) dilation
        xc = x[:, :x.shape[1] - max(rem[0] - pads[0][1], 0), :x.shape[2] - max(rem[1] - pads[1][1], 0), :]
        dw_pads = [(lo, max(hi - r, 0)) for (lo, hi), r in zip(pads, rem)]
        dw = lax.conv_general_dilated(xc, dy, window_strides=(1, 1), padding=dw_pads, rhs_dilation=s,
                                      dimension_numbers=("CHWN", "IHWO", "HWNC"))
        db = dy.sum(axis=(0, 1, 2))                   # dL/db = Σ_{n,i,j} dL/dy
        return ConvParams(dw, db), dx

    def l2_mask(self, params):
        """L2 covers the kernel, never the bias."""
        del params
        return ConvParams(w=True, b=False)

