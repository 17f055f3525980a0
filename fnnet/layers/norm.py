"""Normalization over the last (feature) axis: LayerNorm and RMSNorm; GroupNorm over channel
groups (and all positions) of each sample.

Shapes: x [batch, ..., d] -> y of the same shape; gamma, beta [d]. Every position
(each row of the flattened [n, d] view) is normalized on its own, so these layers
work on [batch, d] (MLPs) and [batch, T, d] (sequences) alike. GroupNorm's statistics
span a sample's positions too: x [batch, ..., C], gamma, beta [C].
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnnet.validate import check_dy, check_floating, int_at_least


class LayerNormParams(NamedTuple):
    gamma: jax.Array  # [d]  scale
    beta: jax.Array   # [d]  shift


class RMSNormParams(NamedTuple):
    gamma: jax.Array  # [d]  scale


def _row(v, ndim):
    """[d] -> [1, ..., 1, d]: explicit broadcasting (fnnet runs with rank promotion off)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _sum_rows(a):
    """[batch, ..., d] -> [d]: Σ over every axis but the last."""
    return a.reshape(-1, a.shape[-1]).sum(axis=0)


class _Norm:
    eps: float

    def __post_init__(self):
        if not (isinstance(self.eps, (int, float)) and not isinstance(self.eps, bool)
                and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"{type(self).__name__}: eps must be a finite number > 0, got {self.eps!r}")

    def _check(self, params, x):
        check_floating(str(self), "x", x)
        if x.ndim < 2:
            raise ValueError(f"{self}: x must be [batch, ..., d], got shape {tuple(x.shape)}")
        for name, leaf in zip(params._fields, params):
            check_floating(str(self), f"params.{name}", leaf)
            if leaf.shape != (x.shape[-1],):
                raise ValueError(f"{self}: params.{name} must be [{x.shape[-1]}] (x's last axis), "
                                 f"got {tuple(leaf.shape)}")


@dataclasses.dataclass(frozen=True)
class LayerNorm(_Norm):
    """y = γ ⊙ (x - μ) / sqrt(σ² + eps) + β, with μ, σ² the mean and (biased) variance
    of each position's d features. Params: LayerNormParams(gamma [d] = 1, beta [d] = 0)."""
    eps: float = 1e-5

    def __str__(self):
        return "LayerNorm()"

    def init(self, key, in_shape):
        """in_shape: (..., d) -> (LayerNormParams(gamma [d], beta [d]), in_shape)."""
        del key
        in_shape = tuple(in_shape)
        dtype = jnp.float32
        return LayerNormParams(jnp.ones(in_shape[-1:], dtype), jnp.zeros(in_shape[-1:], dtype)), in_shape

    def forward(self, params, x):
        """x [batch, ..., d] -> (y [batch, ..., d], cache = (x̂, rstd [batch, ..., 1]))."""
        self._check(params, x)
        mu = x.mean(axis=-1, keepdims=True)                   # μ = (1/d) Σ_j x_j
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)          # σ² = (1/d) Σ_j (x_j - μ)²
        rstd = jax.lax.rsqrt(var + self.eps)                  # r = 1 / sqrt(σ² + eps)
        xhat = xc * rstd                                      # x̂ = (x - μ) · r
        y = _row(params.gamma, x.ndim) * xhat + _row(params.beta, x.ndim)   # y = γ x̂ + β
        return y, (xhat, rstd)

    def backward(self, params, cache, dy):
        """dy [batch, ..., d] -> (LayerNormParams(dgamma [d], dbeta [d]), dx [batch, ..., d])."""
        xhat, rstd = cache
        check_dy(str(self), dy, xhat.shape)
        dgamma = _sum_rows(dy * xhat)                         # dL/dγ = Σ_rows dy ⊙ x̂
        dbeta = _sum_rows(dy)                                 # dL/dβ = Σ_rows dy
        g = dy * _row(params.gamma, dy.ndim)                  # dL/dx̂ = dy ⊙ γ
        # dL/dx = r · (g - mean(g) - x̂ · mean(g ⊙ x̂))   (μ and σ² both depend on every x_j)
        dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
        return LayerNormParams(dgamma, dbeta), dx

    def l2_mask(self, params):
        """No L2 on scale or shift (their natural value is 1 and 0, not 0)."""
        del params
        return LayerNormParams(False, False)


@dataclasses.dataclass(frozen=True)
class RMSNorm(_Norm):
    """y = γ ⊙ x / sqrt(mean(x²) + eps) (Zhang & Sennrich 2019; no centring, no shift).
    Params: RMSNormParams(gamma [d] = 1)."""
    eps: float = 1e-6

    def __str__(self):
        return "RMSNorm()"

    def init(self, key, in_shape):
        """in_shape: (..., d) -> (RMSNormParams(gamma [d]), in_shape)."""
        del key
        in_shape = tuple(in_shape)
        return RMSNormParams(jnp.ones(in_shape[-1:], jnp.float32)), in_shape

    def forward(self, params, x):
        """x [batch, ..., d] -> (y [batch, ..., d], cache = (x̂, r [batch, ..., 1]))."""
        self._check(params, x)
        r = jax.lax.rsqrt((x * x).mean(axis=-1, keepdims=True) + self.eps)   # r = 1 / sqrt(mean x² + eps)
        xhat = x * r                                          # x̂ = x · r
        return _row(params.gamma, x.ndim) * xhat, (xhat, r)   # y = γ x̂

    def backward(self, params, cache, dy):
        """dy [batch, ..., d] -> (RMSNormParams(dgamma [d]), dx [batch, ..., d])."""
        xhat, r = cache
        check_dy(str(self), dy, xhat.shape)
        dgamma = _sum_rows(dy * xhat)                         # dL/dγ = Σ_rows dy ⊙ x̂
        g = dy * _row(params.gamma, dy.ndim)                  # dL/dx̂ = dy ⊙ γ
        dx = r * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))   # dL/dx = r (g - x̂ mean(g ⊙ x̂))
        return RMSNormParams(dgamma), dx

    def l2_mask(self, params):
        """No L2 on the scale."""
        del params
        return RMSNormParams(False)


class GroupNormParams(NamedTuple):
    gamma: jax.Array  # [C]  per-channel scale
    beta: jax.Array   # [C]  per-channel shift


@dataclasses.dataclass(frozen=True)
class GroupNorm(_Norm):
    """GroupNorm(groups) (Wu & He 2018): the C channels (last axis) split into `groups` groups
    of C/groups; each sample's group is normalized over its channels and every spatial/time
    position together, then scaled and shifted per channel. groups = C is InstanceNorm,
    groups = 1 normalizes each sample over everything (LayerNorm over all non-batch axes).

    Shapes: x [batch, ..., C] (NHWC images [B, H, W, C], sequences [B, T, C], rows [B, C])
    -> y like x. Params: GroupNormParams(gamma [C] = 1, beta [C] = 0).
    """
    groups: int = 1
    eps: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        int_at_least("GroupNorm", "groups", self.groups)

    def __str__(self):
        return f"GroupNorm({self.groups})"

    def _check_groups(self, c):
        if c % self.groups:
            raise ValueError(f"{self}: the channel count {c} (last axis) must be divisible by groups={self.groups}")

    def init(self, key, in_shape):
        """in_shape: (..., C) -> (GroupNormParams(gamma [C], beta [C]), in_shape)."""
        del key
        in_shape = tuple(in_shape)
        if not in_shape:
            raise ValueError(f"{self}: input must have a channel axis, got feature shape {in_shape}")
        self._check_groups(in_shape[-1])
        return GroupNormParams(jnp.ones(in_shape[-1:], jnp.float32), jnp.zeros(in_shape[-1:], jnp.float32)), in_shape

    def _grouped(self, a):
        """[B, ..., C] -> [B, S, G, C/G] with S the product of the middle axes."""
        return a.reshape(a.shape[0], -1, self.groups, a.shape[-1] // self.groups)

    def forward(self, params, x):
        """x [batch, ..., C] -> (y like x, cache = (x̂ [B, S, G, C/G], rstd [B, 1, G, 1]))."""
        self._check(params, x)
        self._check_groups(x.shape[-1])
        xg = self._grouped(x)
        mu = xg.mean(axis=(1, 3), keepdims=True)              # μ_bg = mean over the group's positions and channels
        xc = xg - mu
        var = (xc * xc).mean(axis=(1, 3), keepdims=True)      # σ²_bg = mean (x − μ)² (biased)
        rstd = jax.lax.rsqrt(var + self.eps)                  # r = 1 / sqrt(σ² + eps)
        xhat = (xc * rstd).reshape(x.shape)                   # x̂ = (x − μ) · r
        y = _row(params.gamma, x.ndim) * xhat + _row(params.beta, x.ndim)   # y = γ_c x̂ + β_c
        return y, (xhat, rstd)

    def backward(self, params, cache, dy):
        """dy [batch, ..., C] -> (GroupNormParams(dgamma [C], dbeta [C]), dx like dy)."""
        xhat, rstd = cache
        check_dy(str(self), dy, xhat.shape)
        dgamma = _sum_rows(dy * xhat)                         # dL/dγ_c = Σ_{b, positions} dy ⊙ x̂
        dbeta = _sum_rows(dy)                                 # dL/dβ_c = Σ_{b, positions} dy
        g = self._grouped(dy * _row(params.gamma, dy.ndim))   # dL/dx̂ = dy ⊙ γ
        xh = self._grouped(xhat)
        # dL/dx = r · (g − mean_group(g) − x̂ · mean_group(g ⊙ x̂))   (μ, σ² depend on the whole group)
        dx = rstd * (g - g.mean(axis=(1, 3), keepdims=True) - xh * (g * xh).mean(axis=(1, 3), keepdims=True))
        return GroupNormParams(dgamma, dbeta), dx.reshape(dy.shape)

    def l2_mask(self, params):
        """No L2 on scale or shift."""
        del params
        return GroupNormParams(False, False)
