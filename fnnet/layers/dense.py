"""Dense (affine) layer: y = x · W + b.

Shapes: x [batch, d_in], W [d_in, d_out], b [d_out], y [batch, d_out].

Opt-in bfloat16 matmuls: `Dense(128, matmul_dtype="bfloat16")`, or every Dense of a net
with `with_matmul_dtype(net, "bfloat16")`. The three products (x·W, xᵀ·dy, dy·Wᵀ) then
round their operands to bfloat16 and accumulate in the params' dtype (float32); params,
the bias, the cache and every result stay float32. Never the default: it trades ~2-6%
gradient error (see fnnet.check.precision_report) for faster matmuls on CPUs and GPUs
with bf16 units.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax import lax

from fnnet import initializers as _init
from fnnet.validate import check_floating, check_shape, int_at_least


MATMUL_DTYPES = (None, "bfloat16")


def matmul(a, b, matmul_dtype=None):
    """a [m, k] @ b [k, n] -> [m, n] in a's dtype; with matmul_dtype ("bfloat16") the
    operands are rounded to it and the products accumulated in a's dtype."""
    if matmul_dtype is None:
        return a @ b
    low = jnp.dtype(matmul_dtype)
    return jnp.matmul(a.astype(low), b.astype(low), preferred_element_type=a.dtype)


def xt_matmul(x, dy, matmul_dtype=None):
    """xᵀ · dy for x [rows, d_in], dy [rows, d_out] -> [d_in, d_out]: a weight gradient,
    on XLA:CPU's fast matmul path (for any layer's dW: Dense, conv as im2col, projections).

    Written `x.T @ dy`, XLA folds the transpose into the dot (lhs_contracting_dims={0}), a
    column-major left operand that XLA:CPU's fast path (YNNPACK) rejects, so the product
    falls back to the default dot emitter (2-4x slower at W1's shapes). Here it is
    (dyᵀ · x)ᵀ with both transposes kept real row-major copies by optimization barriers,
    so the dot is canonical. dyᵀ rather than xᵀ: dy exists only in the backward, so its
    copy cannot be scheduled early and kept alive across the whole step beside the cached
    x (a copy of x was: it doubled the step's activation memory).

    Only when rows >= d_in and d_out < 2·rows: the two copies (dyᵀ, rows·d_out, and the
    result's transpose, d_in·d_out) are then small beside the product. For a wide layer on a
    small batch the result's transpose dominates (W3, 784-1024-1024 at batch 256: 1.33x
    jax.grad's CPU time, against parity for the plain form), and for outputs much wider than
    the batch the default emitter is as fast and the copies are pure cost (64 rows, 64 -> 256:
    the barriered form took 1.38x the plain dot's time, a Dense(256)+ReLU fit step 1.30x
    jax.grad's), so there the plain `x.T @ dy` stays. Measured on the project's 2-core CPU
    (rows x d_in x d_out, fast/plain time): 1617x128x10 0.35, 1024x64x64 0.55, 256x64x256
    0.74, 128x128x128 0.85; 64x64x256 1.38, 128x64x256 1.11, 128x128x512 1.19.
    """
    rows, d_in, d_out = x.shape[0], x.shape[1], dy.shape[1]
    if rows < d_in or d_out >= 2 * rows:                               # see above: the plain form
        return matmul(x.T, dy, matmul_dtype)                           # xᵀ · dy, folded by XLA
    dyt = lax.optimization_barrier(dy.T)                               # dyᵀ [d_out, rows]
    return lax.optimization_barrier(matmul(dyt, x, matmul_dtype)).T    # (dyᵀ · x)ᵀ = xᵀ · dy


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
    matmul_dtype: Optional[str] = None   # None: the params' dtype; "bfloat16": opt-in, see above

    def __str__(self):
        return f"Dense({self.units})" if self.matmul_dtype is None else \
            f"Dense({self.units}, matmul_dtype={self.matmul_dtype})"

    def __post_init__(self):
        int_at_least("Dense", "units", self.units)
        _init.get(self.w_init), _init.get(self.b_init)  # fail early on a typo
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"Dense: matmul_dtype must be one of {MATMUL_DTYPES}, got {self.matmul_dtype!r}")

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
        y = matmul(x, params.w, self.matmul_dtype) + params.b[None, :]   # y = x·W + b
        return y, x

    def backward(self, params, cache, dy):
        """dy [batch, units] -> (DenseParams(dw, db), dx [batch, d_in])."""
        x = cache
        check_shape(str(self), "dy", dy, (x.shape[0], self.units))
        dw = xt_matmul(x, dy, self.matmul_dtype)              # dL/dW = xᵀ · dL/dy
        db = dy.sum(axis=0)                                   # dL/db = Σ_batch dL/dy
        dx = matmul(dy, params.w.T, self.matmul_dtype)        # dL/dx = dL/dy · Wᵀ
        return DenseParams(dw, db), dx

    def l2_mask(self, params):
        """Which leaves the L2 penalty ½λΣw² applies to: weights, never biases."""
        del params
        return DenseParams(w=True, b=False)


def with_matmul_dtype(net, matmul_dtype):
    """The same network with every top-level Dense doing its matmuls in `matmul_dtype`.

    net: a fnnet.Network; matmul_dtype: "bfloat16" (opt-in) or None (back to the params'
    dtype). Params are unchanged (float32 stay float32) and fit the new net as they are.
    """
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"with_matmul_dtype: matmul_dtype must be one of {MATMUL_DTYPES}, got {matmul_dtype!r}")
    layers = getattr(net, "layers", None)
    if layers is None or not dataclasses.is_dataclass(net):
        raise TypeError(f"with_matmul_dtype: net must be a fnnet.Network, got {type(net).__name__}")
    if not any(isinstance(layer, Dense) for layer in layers):
        raise ValueError(f"with_matmul_dtype: {net} has no Dense layer")
    return dataclasses.replace(net, layers=tuple(
        dataclasses.replace(layer, matmul_dtype=matmul_dtype) if isinstance(layer, Dense) else layer
        for layer in layers))
