"""Batch normalization over every axis but the channels (the last one).

Shapes: x [N, C] (statistics over N) or NHWC images [N, H, W, C] (over N, H, W: "spatial"
batchnorm); gamma, beta [C]; running mean, var [C]; y has x's shape. m = values per channel.

Train:  μ = mean(x), σ² = mean((x - μ)²) (biased, as in the normalization),
        x̂ = (x - μ) / √(σ² + ε), y = γ x̂ + β;
        running ← momentum · running + (1 - momentum) · batch, with the UNBIASED variance
        σ² · m / (m - 1) for the running one (Bessel's correction, as torch and makemore do).
Eval:   x̂ = (x - running_mean) / √(running_var + ε): constants, so y is affine in x.

The backward in train mode differentiates through μ and σ². Two forms, tested equal:
  "full": the chain rule step by step through σ² and μ (CS231n's staged backward);
  "simplified": the one-liner dx = (1/(m·σ̃)) (m·dx̂ - Σdx̂ - x̂ Σ(dx̂ ⊙ x̂)), σ̃ = √(σ² + ε).

Synchronized statistics (axis_name="data", inside jax.shard_map over a mesh with that axis;
fnnet.fit(mesh=..., batch_stats="sync") sets it): the batch is the union of every device's
shard along the axis, so m = M = m_shard · D (every shard has the same shape under shard_map)
and each Σ above runs over all M values, as on one device:
  forward   μ = psum(Σ_shard x) / M, then σ² = psum(Σ_shard (x - μ)²) / M    (two passes, two
            all-reduces: the same two-pass arithmetic as one device, equal to it to rounding)
  backward  the sums the dx rule needs (Σdx̂, Σdx̂ ⊙ x̂; the full form also Σ(x - μ)) are
            stacked into one [k, C] array and psummed once: one all-reduce
  running statistics are updated from the global μ, σ² (Bessel with M): equal on every device.
dgamma, dbeta stay this shard's own sums: the caller's gradient all-reduce adds them up.
Outside shard_map a set axis_name is refused in train mode (ValueError naming the axis); eval
mode reads the running statistics and needs no communication, so it works anywhere.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnnet.validate import check_dy, check_floating, check_shape


class BatchNormParams(NamedTuple):
    gamma: jax.Array  # [C]
    beta: jax.Array   # [C]


class BatchNormState(NamedTuple):
    mean: jax.Array   # [C] running mean
    var: jax.Array    # [C] running (unbiased) variance


class TrainCache(NamedTuple):
    xhat: jax.Array   # x's shape: (x - μ) / σ̃
    inv: jax.Array    # [1, ..., 1, C] (x's rank): 1 / σ̃ of the batch


class EvalCache(NamedTuple):
    xhat: jax.Array   # x's shape: (x - running_mean) / √(running_var + ε)
    inv: jax.Array    # [1, ..., 1, C]: 1 / √(running_var + ε), a constant


FORMS = ("simplified", "full")


def local_sums(axes):
    """reduce(*arrays) -> each array summed over `axes` (keepdims): the batch is this array."""
    return lambda *arrays: tuple(a.sum(axes, keepdims=True) for a in arrays)


def dx_simplified(dxhat, xhat, inv, axes, m, reduce=None):
    """dL/dx from dL/dx̂ in one line: (σ̃⁻¹/m)(m·dx̂ - Σdx̂ - x̂ Σ(dx̂ ⊙ x̂)); sums over `axes`.

    reduce(*arrays) -> their batch sums (keepdims); default local_sums(axes). m: values per
    channel in the whole batch (all shards' under synchronized statistics)."""
    s_dxhat, s_dxhat_xhat = (reduce or local_sums(axes))(dxhat, dxhat * xhat)   # Σdx̂, Σ dx̂ ⊙ x̂
    return (inv / m) * (m * dxhat - s_dxhat - xhat * s_dxhat_xhat)


def dx_full(dxhat, xhat, inv, axes, m, reduce=None):
    """dL/dx from dL/dx̂ by the chain rule through σ² and μ, one node at a time (reduce, m: as
    dx_simplified; its three sums go through one reduce call)."""
    xmu = xhat / inv                                             # x - μ
    s_dxmu, s_dxinv, s_m2xmu = (reduce or local_sums(axes))(dxhat * xmu, dxhat * inv, -2.0 * xmu)
    dvar = s_dxmu * -0.5 * inv ** 3                              # dL/dσ² = Σ dx̂ (x-μ) · -½ σ̃⁻³
    dmu = -s_dxinv + dvar * (s_m2xmu / m)                        # dL/dμ = Σ -dx̂/σ̃ + dL/dσ² · mean(-2(x-μ))
    return dxhat * inv + dvar * 2.0 * xmu / m + dmu / m          # dL/dx = dx̂/σ̃ + dL/dσ² · 2(x-μ)/m + dL/dμ / m


@dataclasses.dataclass(frozen=True)
class BatchNorm:
    """BatchNorm(momentum=0.9, eps=1e-5, backward_form="simplified", axis_name=None) over all
    axes but the last.

    Stateful (see fnnet/state.py): forward(params, x, *, state, train) -> (y, cache, state).
    Params gamma (ones) and beta (zeros) [C]; state BatchNormState(mean zeros, var ones) [C].
    L2 (net.l2) covers neither gamma nor beta (see l2_mask).
    axis_name: None (statistics over this call's x), or a mesh axis name: synchronized batch
      statistics over every shard along that axis, inside jax.shard_map (module docstring).
      fit(mesh=...) sets it itself; there is no need to pass it.
    """
    momentum: float = 0.9
    eps: float = 1e-5
    backward_form: str = "simplified"
    axis_name: str | None = None

    def __post_init__(self):
        for name, lo_ok in (("momentum", True), ("eps", False)):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"BatchNorm: {name} must be a finite number, got {v!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1) (the running average's decay), "
                             f"got {self.momentum!r}")
        if not self.eps > 0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {self.eps!r}")
        if self.backward_form not in FORMS:
            raise ValueError(f"BatchNorm: backward_form must be one of {FORMS}, got {self.backward_form!r}")
        if self.axis_name is not None and not (isinstance(self.axis_name, str) and self.axis_name):
            raise ValueError(f"BatchNorm: axis_name must be None or a mesh axis name (a str), got {self.axis_name!r}")
        object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "eps", float(self.eps))

    def __str__(self):
        sync = "" if self.axis_name is None else f", axis_name={self.axis_name!r}"
        return f"BatchNorm(momentum={self.momentum:g}{sync})"

    def _psum(self, a):
        """Σ over the devices along axis_name (one all-reduce); a clear error outside shard_map."""
        try:
            return lax.psum(a, self.axis_name)
        except NameError as e:       # JAX: "unbound axis name"
            raise ValueError(f"{self}: synchronized batch statistics need the mesh axis {self.axis_name!r}, "
                             f"which is not bound here; run train mode inside jax.shard_map over a mesh with "
                             f"that axis (fit(mesh=...) does), or use axis_name=None") from e

    def _shards(self):
        """Devices along axis_name (1 without one); a Python int at trace time."""
        return 1 if self.axis_name is None else self._psum(1)

    def _channels(self, in_shape):
        in_shape = tuple(in_shape)
        if len(in_shape) not in (1, 3):
            raise ValueError(f"{self}: input must be [N, C] or images [N, H, W, C], got feature shape {in_shape}")
        return in_shape[-1]

    def init(self, key, in_shape):
        """in_shape (C,) or (H, W, C) -> (BatchNormParams(gamma [C], beta [C]), in_shape)."""
        del key
        c = self._channels(in_shape)
        return BatchNormParams(jnp.ones((c,), jnp.float32), jnp.zeros((c,), jnp.float32)), tuple(in_shape)

    def init_state(self, in_shape, dtype):
        """-> BatchNormState(mean zeros [C], var ones [C]) of dtype."""
        c = self._channels(in_shape)
        return BatchNormState(jnp.zeros((c,), dtype), jnp.ones((c,), dtype))

    def _check(self, params, x, state, train):
        where = str(self)
        check_floating(where, "x", x)
        if x.ndim not in (2, 4):
            raise ValueError(f"{where}: x must be [N, C] or images [N, H, W, C], got rank {x.ndim} "
                             f"with shape {tuple(x.shape)}")
        c = x.shape[-1]
        check_shape(where, "params.gamma", params.gamma, (c,))
        check_shape(where, "params.beta", params.beta, (c,))
        if not isinstance(state, BatchNormState):
            raise TypeError(f"{where}: state must be a BatchNormState (fnnet.init_state(net)), "
                            f"got {type(state).__name__}")
        check_shape(where, "state.mean", state.mean, (c,))
        check_shape(where, "state.var", state.var, (c,))
        m = math.prod(x.shape[:-1]) * (self._shards() if train else 1)   # values per channel, all shards
        if train and m < 2:
            raise ValueError(f"{where}: train mode over {m} value per channel (x {tuple(x.shape)}): the batch "
                             f"variance is 0, so x̂ = 0/√ε; use a batch of >= 2 or train=False")
        return tuple(range(x.ndim - 1)), m

    def forward(self, params, x, *, state, train=False):
        """x [N, C] or [N, H, W, C] -> (y like x, cache, new_state)."""
        axes, m = self._check(params, x, state, train)
        c = x.shape[-1]
        row = (1,) * (x.ndim - 1) + (c,)                       # [C] as [1, ..., 1, C]: no implicit broadcast
        if train and self.axis_name is not None:               # synchronized: Σ over every shard, m = M
            mu = self._psum(x.sum(axes, keepdims=True)) / m                 # μ = (1/M) Σ_devices Σ_shard x
            var = self._psum(((x - mu) ** 2).sum(axes, keepdims=True)) / m  # σ² = (1/M) Σ_devices Σ_shard (x - μ)²
        elif train:
            mu = x.mean(axes, keepdims=True)                   # μ = (1/m) Σ x
            var = ((x - mu) ** 2).mean(axes, keepdims=True)    # σ² = (1/m) Σ (x - μ)²
        if train:
            inv = 1.0 / jnp.sqrt(var + self.eps)               # 1/σ̃
            xhat = (x - mu) * inv                              # x̂ = (x - μ)/σ̃
            a = self.momentum
            new_state = BatchNormState(
                jax.lax.stop_gradient(a * state.mean + (1 - a) * mu.reshape(c)),
                jax.lax.stop_gradient(a * state.var + (1 - a) * var.reshape(c) * (m / (m - 1))))
            cache = TrainCache(xhat, inv)
        else:
            inv = 1.0 / jnp.sqrt(state.var.reshape(row) + self.eps)   # constants: running statistics
            xhat = (x - state.mean.reshape(row)) * inv
            new_state, cache = state, EvalCache(xhat, inv)
        return params.gamma.reshape(row) * xhat + params.beta.reshape(row), cache, new_state   # y = γ x̂ + β

    def backward(self, params, cache, dy):
        """dy like x -> (BatchNormParams(dgamma [C], dbeta [C]), dx like x)."""
        xhat, inv = cache
        check_dy(str(self), dy, xhat.shape)
        axes = tuple(range(dy.ndim - 1))
        dgamma = (dy * xhat).sum(axes)                         # dL/dγ = Σ dy ⊙ x̂
        dbeta = dy.sum(axes)                                   # dL/dβ = Σ dy
        dxhat = dy * params.gamma.reshape(inv.shape)           # dL/dx̂ = dy ⊙ γ
        if isinstance(cache, EvalCache):
            return BatchNormParams(dgamma, dbeta), dxhat * inv  # dL/dx = dx̂/σ̃ (μ, σ̃ constant)
        m = math.prod(dy.shape[:-1])
        rule = dx_simplified if self.backward_form == "simplified" else dx_full
        if self.axis_name is None:
            return BatchNormParams(dgamma, dbeta), rule(dxhat, xhat, inv, axes, m)

        def reduce(*arrays):                                   # the rule's k sums over every shard:
            stacked = jnp.stack([a.sum(axes) for a in arrays])  # [k, C] this shard's Σ_shard
            total = self._psum(stacked)                         # [k, C] Σ_devices Σ_shard: one all-reduce
            return tuple(t.reshape(inv.shape) for t in total)
        # m = M (all shards' values); dgamma, dbeta: this shard's, the caller's gradient psum adds them
        return BatchNormParams(dgamma, dbeta), rule(dxhat, xhat, inv, axes, m * self._shards(), reduce)

    def l2_mask(self, params):
        """L2 covers neither the scale gamma nor the shift beta."""
        del params
        return BatchNormParams(gamma=False, beta=False)
