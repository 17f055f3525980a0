"""Losses: `value(out, target) -> scalar` and a hand-written `grad(out, target) -> dL/dout`.

Shapes: out [batch, k]. Targets: same shape as `out`, except softmax cross-entropy,
which also takes integer class labels [batch]. `target_grad(out, target) -> dL/dtarget`
(hand-written too) serves `loss_with_manual_grad` when a gradient w.r.t. float targets
is asked for. `link(out)` turns the network output
into predictions (probabilities for the two fused classification losses).
The L2 penalty lives in `fnnet.network` because it reads the params, not the output.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.layers.activations import softmax
from fnnet.validate import check_finite, check_floating, check_shape, is_concrete


class _Loss:
    fused = False  # True when `out` are logits and the output nonlinearity lives in the loss
    batch_reduction = "mean"  # value is a mean over examples ("sum": a sum); data parallelism weighs by it

    def link(self, out):
        return out

    def _check_out(self, out):
        check_floating(self.name, "network output", out)
        if out.ndim != 2:
            raise ValueError(f"{self.name}: network output must be [batch, k], got {tuple(out.shape)}")

    def check(self, out, target):
        """Validate `target` against `out` [batch, k] (an array or a ShapeDtypeStruct);
        computes nothing on the device."""
        self._check_out(out)
        check_shape(self.name, "target", target, tuple(out.shape))
        check_finite(self.name, "target", target)

    def prepare(self, out, target):
        """Validate `target` and return it as an array of out's dtype."""
        self.check(out, target)
        return jnp.asarray(target).astype(out.dtype)

    def __str__(self):
        return self.name


@dataclasses.dataclass(frozen=True)
class MSE(_Loss):
    """L = mean over all elements of (out - target)² (seed 003)."""
    name = "mse"

    def value(self, out, target):
        t = self.prepare(out, target)
        return jnp.mean((out - t) ** 2)

    def grad(self, out, target):
        t = self.prepare(out, target)
        return 2 * (out - t) / out.size               # dL/dout = 2(out - t) / n_elements

    def target_grad(self, out, target):
        t = self.prepare(out, target)
        return 2 * (t - out) / out.size               # dL/dt = -2(out - t) / n_elements


@dataclasses.dataclass(frozen=True)
class HalfSSE(_Loss):
    """L = Σ ½(out - target)² over all elements (seed 000's J); no 1/n."""
    name = "half_sse"
    batch_reduction = "sum"

    def value(self, out, target):
        t = self.prepare(out, target)
        return 0.5 * jnp.sum((out - t) ** 2)

    def grad(self, out, target):
        t = self.prepare(out, target)
        return out - t                                # dL/dout = out - t

    def target_grad(self, out, target):
        t = self.prepare(out, target)
        return t - out                                # dL/dt = -(out - t)


def log_softmax(z):
    """z - logsumexp(z) over the last axis, max-shifted."""
    m = jax.lax.stop_gradient(z.max(axis=-1, keepdims=True))
    return z - m - jnp.log(jnp.exp(z - m).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class SoftmaxCrossEntropy(_Loss):
    """Softmax and cross-entropy fused on logits z [batch, k].

    target: one-hot / probabilities [batch, k], or integer labels [batch] in [0, k).
    L = -(1/batch) Σ_n Σ_k y_nk · log softmax(z)_nk
    """
    name = "softmax_cross_entropy"
    fused = True

    def link(self, out):
        return softmax(out)

    def check(self, out, target):
        self._check_out(out)
        n, k = out.shape
        dtype = np.dtype(target.dtype if hasattr(target, "dtype") else np.asarray(target).dtype)
        if np.issubdtype(dtype, np.integer):
            check_shape(self.name, "integer labels", target, (n,))
            if is_concrete(target) and np.size(target):
                values = np.asarray(target)  # host copy: jnp ops would be staged under jit
                lo, hi = int(values.min()), int(values.max())
                if lo < 0 or hi >= k:
                    first = int(np.flatnonzero((values < 0) | (values >= k))[0])
                    raise ValueError(f"{self.name}: labels must be in [0, {k}), got values "
                                     f"from {lo} to {hi} (first out of range: y[{first}] = "
                                     f"{int(values[first])})")
            return
        if np.ndim(target) == 1 and dtype != np.bool_:
            raise TypeError(f"{self.name}: labels of shape [batch] must be integers, got dtype "
                            f"{dtype} (pass int class indices or [batch, {k}] one-hot)")
        check_shape(self.name, "target", target, (n, k))
        check_finite(self.name, "target", target)
        if is_concrete(target) and bool(np.any(np.asarray(target) < 0)):
            raise ValueError(f"{self.name}: target probabilities must be >= 0")

    def prepare(self, out, target):
        self.check(out, target)
        target = jnp.asarray(target)
        if jnp.issubdtype(target.dtype, jnp.integer):
            return jax.nn.one_hot(target, out.shape[1], dtype=out.dtype)
        return target.astype(out.dtype)

    def value(self, out, target):
        y = self.prepare(out, target)
        return -jnp.sum(y * log_softmax(out)) / out.shape[0]

    def grad(self, out, target):
        y = self.prepare(out, target)
        p = softmax(out)
        # dL/dz = (softmax(z) · Σ_k y - y) / batch  ==  (softmax(z) - y) / batch for one-hot y
        return (p * y.sum(axis=-1, keepdims=True) - y) / out.shape[0]

    def target_grad(self, out, target):
        """Float targets [batch, k] only (integer labels have no gradient)."""
        self.prepare(out, target)
        return -log_softmax(out) / out.shape[0]       # dL/dy = -log softmax(z) / batch


@dataclasses.dataclass(frozen=True)
class SigmoidBinaryCrossEntropy(_Loss):
    """Sigmoid and binary cross-entropy fused on logits z [batch, k], targets t in [0, 1].

    L = mean over all elements of  -t·log σ(z) - (1-t)·log(1-σ(z))
      = mean of  log(1 + e^z) - z·t                      (logaddexp: no overflow for any z)

    Written with logaddexp rather than max(z,0) + log1p(e^-|z|): equal in value, but
    autodiff of max and abs at z = 0 would give jax.grad (our oracle) a wrong kink.
    """
    name = "sigmoid_binary_cross_entropy"
    fused = True

    def link(self, out):
        return jax.nn.sigmoid(out)

    def check(self, out, target):
        super().check(out, target)
        if is_concrete(target):
            tn = np.asarray(target)
            if tn.size and (tn.min() < 0 or tn.max() > 1):
                raise ValueError(f"{self.name}: targets must be in [0, 1], got values from "
                                 f"{tn.min()} to {tn.max()}")

    def value(self, out, target):
        t = self.prepare(out, target)
        return jnp.mean(jnp.logaddexp(0, out) - out * t)

    def grad(self, out, target):
        t = self.prepare(out, target)
        return (jax.nn.sigmoid(out) - t) / out.size   # dL/dz = (σ(z) - t) / n_elements

    def target_grad(self, out, target):
        self.prepare(out, target)
        return -out / out.size                        # dL/dt = -z / n_elements


LOSSES = {c.name: c for c in (MSE, HalfSSE, SoftmaxCrossEntropy, SigmoidBinaryCrossEntropy)}


def get(name_or_loss):
    if isinstance(name_or_loss, str):
        try:
            return LOSSES[name_or_loss]()
        except KeyError:
            raise ValueError(f"unknown loss {name_or_loss!r}; known: {sorted(LOSSES)}") from None
    return name_or_loss


# Sequence losses ([batch, T, V] logits) live in their own file; registered here by name.
from fnnet.losses_seq import SequenceCrossEntropy  # noqa: E402
LOSSES[SequenceCrossEntropy.name] = SequenceCrossEntropy
