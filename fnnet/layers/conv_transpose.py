"""2-D transposed convolution ("deconvolution", fractionally strided convolution), NHWC, with bias.

Shapes: x [batch, H, W, C_in], w [kh, kw, C_in, filters], b [filters],
y [batch, H_out, W_out, filters]. Each input pixel scatters a kernel-sized patch into the
output, `stride` pixels apart, and `padding` crops the border of the full result:

    y_full[n, i·s + p, j·s + q, f] += x[n, i, j, c] · w[p, q, c, f]        (H_full = (H − 1)·s + kh)
    y = y_full[:, top : H_full − bottom, left : W_full − right, :] + b

padding: an int or pair crops that many pixels from both sides (must be < the kernel size:
PyTorch's `padding`); 'valid' crops nothing; 'same' gives H_out = H·s (TensorFlow's), cropping
max(k − s, 0) pixels, the odd one at the bottom/right, and padding with zeros when k < s.
This is the adjoint (the transpose) of Conv2D(C_in, kernel, stride, padding) applied to
y-sized images: ConvTranspose2D's forward is Conv2D's dx and its dx is Conv2D's forward.

Forward and backward are all `lax.conv_general_dilated`:
    y  = (x dilated by s, padded by k − 1 − crop) correlated with w flipped in space
    dx = dy padded by the crop, correlated with w at stride s (I and O swapped)
    dw = dy padded by the crop, correlated with x dilated by s (batch is the contracted axis)
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnnet import initializers as _init
from fnnet.validate import check_floating, check_same_dtype, check_shape
from fnnet import validate
from fnnet.layers import image_inputs


class ConvTransposeParams(NamedTuple):
    w: jax.Array  # [kh, kw, C_in, filters]
    b: jax.Array  # [filters]


class ConvTransposeCache(NamedTuple):
    x: jax.Array   # [batch, H, W, C_in]


@dataclasses.dataclass(frozen=True)
class ConvTranspose2D:
    """ConvTranspose2D(filters, kernel, stride=1, padding='valid'): NHWC transposed convolution.

    kernel, stride: int or (height, width); padding: 'valid', 'same' (H_out = H·stride) or an
    int / pair smaller than the kernel (cropped from both sides: H_out = (H − 1)·s + k − 2p).
    w_init applies to the [kh·kw·C_in, filters] matrix (he_normal by default, as Conv2D).
    L2 covers w, never b.
    """
    filters: int
    kernel: object = 3
    stride: object = 1
    padding: object = "valid"
    w_init: str = "he_normal"
    b_init: str = "zeros"

    def __post_init__(self):
        where = f"ConvTranspose2D({self.filters!r}, kernel={self.kernel!r})"
        validate.int_at_least(where, "filters", self.filters)
        k = image_inputs.pair(where, "kernel", self.kernel)
        image_inputs.pair(where, "stride", self.stride)
        if isinstance(self.padding, str):
            if self.padding not in ("valid", "same"):
                raise ValueError(f"{where}: padding must be 'valid', 'same' or an int, got {self.padding!r}")
        else:
            for d, (p, kd) in enumerate(zip(image_inputs.pair(where, "padding", self.padding, lo=0), k)):
                if p >= kd:
                    raise ValueError(f"{where}: padding {p} must be smaller than the kernel size {kd} "
                                     f"(axis {'hw'[d]}): it crops the output, and k − 1 is the most that "
                                     f"still leaves each input pixel an output")
        _init.get(self.w_init), _init.get(self.b_init)

    def __str__(self):
        k, s = image_inputs.pair("", "", self.kernel), image_inputs.pair("", "", self.stride)
        return f"ConvTranspose2D({self.filters}, kernel={k[0]}x{k[1]}, stride={s[0]}x{s[1]}, padding={self.padding!r})"

    def _geometry(self, hw):
        """-> (kernel, stride, crops ((top, bottom), (left, right)), (H_out, W_out)).
        A negative crop pads the full output with zeros ('same' with k < s)."""
        where = str(self)
        k, s = image_inputs.pair(where, "kernel", self.kernel), image_inputs.pair(where, "stride", self.stride)
        if self.padding == "valid":
            crops = ((0, 0), (0, 0))
        elif self.padding == "same":
            crops = tuple((t // 2, t - t // 2) if t >= 0 else (0, t)
                          for t in (kd - sd for kd, sd in zip(k, s)))
        else:
            p = image_inputs.pair(where, "padding", self.padding, lo=0)
            crops = ((p[0], p[0]), (p[1], p[1]))
        out = tuple((n - 1) * sd + kd - lo - hi for n, kd, sd, (lo, hi) in zip(hw, k, s, crops))
        for d, o in enumerate(out):
            if o < 1:
                raise ValueError(f"{where}: the padding crops the whole output along "
                                 f"{('height', 'width')[d]} (input {hw[d]} -> {o})")
        return k, s, crops, out

    def init(self, key, in_shape):
        """in_shape (H, W, C_in) -> (ConvTransposeParams(w [kh, kw, C_in, filters], b [filters]),
        (H_out, W_out, filters))."""
        h, w_, c = image_inputs.image_shape(str(self), in_shape)
        (kh, kw), _, _, (ho, wo) = self._geometry((h, w_))
        kw_, kb = jax.random.split(key)
        w = _init.get(self.w_init)(kw_, (kh * kw * c, self.filters), jnp.float32).reshape(kh, kw, c, self.filters)
        b = _init.get(self.b_init)(kb, (self.filters,), jnp.float32)
        return ConvTransposeParams(w, b), (ho, wo, self.filters)

    def _check(self, params, x):
        where = str(self)
        k = image_inputs.pair(where, "kernel", self.kernel)
        check_floating(where, "params.w", params.w)
        if params.w.ndim != 4 or tuple(params.w.shape[:2]) != k or params.w.shape[3] != self.filters:
            raise ValueError(f"{where}: params.w must be [{k[0]}, {k[1]}, C_in, {self.filters}], "
                             f"got {tuple(params.w.shape)}")
        check_shape(where, "params.b", params.b, (self.filters,))
        image_inputs.check_image(where, x, channels=params.w.shape[2])
        check_same_dtype(where, "x", x, params.w.dtype)

    def forward(self, params, x):
        """x [batch, H, W, C_in] -> (y [batch, H_out, W_out, filters], cache)."""
        self._check(params, x)
        (kh, kw), s, crops, _ = self._geometry(x.shape[1:3])
        # y = Σ_{p,q} scatter of x·w[p,q] at stride s = (x dilated by s, padded k−1−crop) ⋆ flip(w)
        pads = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip((kh, kw), crops)]
        y = lax.conv_general_dilated(x, jnp.flip(params.w, (0, 1)), window_strides=(1, 1), padding=pads,
                                     lhs_dilation=s, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + params.b[None, None, None, :], ConvTransposeCache(x)

    def backward(self, params, cache, dy):
        """dy [batch, H_out, W_out, filters] -> (ConvTransposeParams(dw, db), dx [batch, H, W, C_in])."""
        (x,) = cache
        _, s, crops, out = self._geometry(x.shape[1:3])
        validate.check_dy(str(self), dy, (x.shape[0], *out, self.filters))
        # dL/dx[n,i,j,c] = Σ_{p,q,f} dy_full[n, i·s+p, j·s+q, f] · w[p,q,c,f]: dy_full is dy with the
        # crop put back as zeros, correlated with w at stride s (features f in, c out)
        dx = lax.conv_general_dilated(dy, params.w, window_strides=s, padding=list(crops),
                                      dimension_numbers=("NHWC", "HWOI", "NHWC"))
        # dL/dw[p,q,c,f] = Σ_{n,i,j} x[n,i,j,c] · dy_full[n, i·s+p, j·s+q, f]: f plays the batch axis,
        # n the contracted feature axis, and x dilated by s is the kernel
        dw = lax.conv_general_dilated(dy, x, window_strides=(1, 1), padding=list(crops), rhs_dilation=s,
                                      dimension_numbers=("CHWN", "IHWO", "HWCN"))
        db = dy.sum(axis=(0, 1, 2))                       # dL/db = Σ_{n,i,j} dL/dy
        return ConvTransposeParams(dw, db), dx

    def l2_mask(self, params):
        """L2 covers the kernel, never the bias."""
        del params
        return ConvTransposeParams(w=True, b=False)
