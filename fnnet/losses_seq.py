"""Sequence losses: softmax cross-entropy over logits [batch, T, V] with integer targets.

    loss = SequenceCrossEntropy()                          # mean over every position
    loss = SequenceCrossEntropy(ignore_index=-1)           # positions whose target is -1 don't count
    loss = SequenceCrossEntropy(label_smoothing=0.1)       # q = (1-ε)·onehot + ε/V
    loss.value(logits, targets, mask=w)                    # w [batch, T]: per-position weights

With weights w_bt (mask ⊙ [target != ignore_index]) and N = Σ w_bt:
    L = -(1/N) Σ_bt w_bt Σ_v q_btv · log softmax(z_bt)_v
    dL/dz_bt = (w_bt / N) · (softmax(z_bt) - q_bt)                     (Σ_v q_btv = 1)
N = 0 (every position masked) gives L = 0 and a zero gradient, not 0/0.

Over the batch (data parallelism, fnnet/train/sharding.py): without ignore_index every
example has T positions, so L is the mean over examples of each example's mean over T and
batch_reduction = "mean" (a device's shard weighs q/B, exactly). With ignore_index N counts
the batch's non-ignored positions, which differ per example: L is not a mean of per-example
means, so batch_reduction is None and fit(mesh=) refuses the loss (batch_reduction_note says
why) rather than weigh shards wrongly. A mask= is never passed by a Network (fit uses none).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.layers.activations import softmax
from fnnet.validate import check_finite, check_floating, is_concrete


def log_softmax(z):
    """z - logsumexp(z) over the last axis, max-shifted."""
    m = jax.lax.stop_gradient(z.max(axis=-1, keepdims=True))
    return z - m - jnp.log(jnp.exp(z - m).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class SequenceCrossEntropy:
    """Softmax cross-entropy fused on logits z [batch, T, V]; targets: integer ids [batch, T].

    ignore_index: a target value (e.g. -1) whose positions are left out of the mean.
    label_smoothing: ε in [0, 1): the target distribution is (1-ε)·onehot + ε/V.
    """
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    name = "sequence_cross_entropy"
    fused = True

    def __post_init__(self):
        if self.ignore_index is not None and (isinstance(self.ignore_index, bool)
                                              or not isinstance(self.ignore_index, int)):
            raise TypeError(f"{self.name}: ignore_index must be an int or None, got {self.ignore_index!r}")
        ls = self.label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not (math.isfinite(ls) and 0 <= ls < 1):
            raise ValueError(f"{self.name}: label_smoothing must be in [0, 1), got {ls!r}")

    def __str__(self):
        return self.name

    @property
    def batch_reduction(self):
        """"mean" (the value is a mean over examples) without ignore_index; None with it."""
        return "mean" if self.ignore_index is None else None

    @property
    def batch_reduction_note(self):
        if self.ignore_index is None:
            return None
        return (f"with ignore_index={self.ignore_index} the loss is a mean over the batch's non-ignored "
                f"positions, whose count differs per example, so it is not a mean over examples and "
                f"per-device shards cannot be weighted exactly; use SequenceCrossEntropy() "
                f"(ignore_index=None) for data-parallel training")

    def link(self, out):
        return softmax(out)

    def check(self, out, target, mask=None):
        """out: [batch, T, V] array or ShapeDtypeStruct; target: int [batch, T]; mask: [batch, T]."""
        if len(out.shape) != 3:
            raise ValueError(f"{self.name}: network output must be logits [batch, T, V], got {tuple(out.shape)}")
        b, t, v = out.shape
        dtype = getattr(target, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(f"{self.name}: targets must be integer ids [batch, T] = [{b}, {t}], got "
                            f"{type(target).__name__} with dtype {dtype}")
        if tuple(target.shape) != (b, t):
            raise ValueError(f"{self.name}: targets must be [batch, T] = [{b}, {t}], got {tuple(target.shape)}")
        if is_concrete(target) and not isinstance(target, jax.ShapeDtypeStruct) and target.size:
            values = np.asarray(target)
            if self.ignore_index is not None:
                values = values[values != self.ignore_index]
            if values.size and (values.min() < 0 or values.max() >= v):
                ignore = "" if self.ignore_index is None else f" (or ignore_index {self.ignore_index})"
                raise ValueError(f"{self.name}: targets must be in [0, {v}){ignore}, got values from "
                                 f"{int(values.min())} to {int(values.max())}")
        if mask is not None:
            if getattr(mask, "dtype", None) != jnp.bool_:
                check_floating(self.name, "mask", mask)
            if tuple(mask.shape) != (b, t):
                raise ValueError(f"{self.name}: mask must be [batch, T] = [{b}, {t}], got {tuple(mask.shape)}")
            check_finite(self.name, "mask", mask)

    def _parts(self, out, target, mask):
        """Validated (log p [b, T, V], q [b, T, V], w/N [b, T, 1])."""
        check_floating(self.name, "network output", out)
        target = jnp.asarray(target)
        mask = None if mask is None else jnp.asarray(mask)
        self.check(out, target, mask)
        v = out.shape[-1]
        w = jnp.ones(target.shape, out.dtype) if mask is None else mask.astype(out.dtype)
        if self.ignore_index is not None:
            w = jnp.where(target == self.ignore_index, 0, w)          # ignored positions weigh 0
        n = w.sum()
        w = w / jnp.where(n > 0, n, 1)                                 # w_bt / N  (N = 0: all masked)
        onehot = jax.nn.one_hot(jnp.where(w > 0, target, 0), v, dtype=out.dtype)
        eps = self.label_smoothing
        q = (1 - eps) * onehot + eps / v                               # q = (1-ε)·onehot + ε/V
        return out, q, w[..., None]

    def value(self, out, target, mask=None):
        """Scalar: the weighted mean over positions of -Σ_v q_v log softmax(z)_v."""
        z, q, w = self._parts(out, target, mask)
        return -jnp.sum(w * q * log_softmax(z))

    def grad(self, out, target, mask=None):
        """dL/dz [batch, T, V] = (w_bt / N) · (softmax(z_bt) - q_bt)."""
        z, q, w = self._parts(out, target, mask)
        return w * (softmax(z) - q)
