"""Losses in NumPy float64: each `name(out, target) -> float` and
`name_grad(out, target) -> dL/dout` (an array of out's shape).

The two cross-entropies are fused with their output nonlinearity and take LOGITS z,
so their gradients are the short deltas the seeds derive, e.g. (softmax(z) - y)/batch.
"""
import numpy as np

from .layers.activations import sigmoid_forward, softmax_forward


def _error(fn, msg):
    return ValueError(f"reference.{fn}: {msg}")


def _pair(fn, out, target):
    """out, target -> float64 arrays of one (non-empty) shape."""
    out = np.asarray(out, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != out.shape:
        raise _error(fn, f"target must have out's shape {out.shape}, got {target.shape}")
    if out.size == 0:
        raise _error(fn, f"out must not be empty, got {out.shape}")
    return out, target


# --- mean squared error (seed 003) -------------------------------------------------

def mse(out, target):
    """L = mean over all elements of (out - target)².  out, target: [batch, ...]."""
    out, target = _pair("mse", out, target)
    return float(np.mean((out - target) ** 2))


def mse_grad(out, target):
    """dL/dout: same shape as out."""
    out, target = _pair("mse_grad", out, target)
    return 2.0 * (out - target) / out.size  # dL/dout = 2(out - target)/n, n = out.size


# --- half sum of squared errors (seed 000's J) ---------------------------------------

def half_sse(out, target):
    """L = Σ ½(out - target)² over all elements.  out, target: [batch, ...]."""
    out, target = _pair("half_sse", out, target)
    return float(0.5 * np.sum((out - target) ** 2))


def half_sse_grad(out, target):
    """dL/dout: same shape as out."""
    out, target = _pair("half_sse_grad", out, target)
    return out - target  # dL/dout = out - target


# --- softmax cross-entropy on logits (seeds 001, 002) ---------------------------------

def _logits_and_probs(fn, logits, target):
    """logits: [batch, k]; target: [batch, k] floats or [batch] integer labels.

    Returns (z [batch, k] float64, y [batch, k] float64); labels become one-hot rows.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise _error(fn, f"logits must be [batch, k], got {z.shape}")
    n, k = z.shape
    t = np.asarray(target)
    if t.ndim == 2:
        if t.shape != z.shape:
            raise _error(fn, f"target must be [{n}, {k}] (one-hot or probabilities) "
                             f"or [{n}] integer labels, got {t.shape}")
        return z, t.astype(np.float64)
    if t.ndim != 1 or t.shape[0] != n:
        raise _error(fn, f"target must be [{n}] integer labels or [{n}, {k}], got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise _error(fn, f"labels must be an integer array, got dtype {t.dtype}")
    if t.min() < 0 or t.max() >= k:
        raise _error(fn, f"labels must lie in [0, {k}), got values in [{t.min()}, {t.max()}]")
    y = np.zeros((n, k))
    y[np.arange(n), t] = 1.0
    return z, y


def _log_softmax(z):
    """log softmax(z) = z - logsumexp(z), max-shifted so nothing overflows."""
    m = z.max(axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def softmax_cross_entropy(logits, target):
    """L = -(1/batch) Σ_n Σ_k y_nk log softmax(z)_nk.

    logits: [batch, k]; target: [batch, k] (one-hot or probabilities) or [batch]
    integer labels in [0, k).
    """
    z, y = _logits_and_probs("softmax_cross_entropy", logits, target)
    return float(-np.sum(y * _log_softmax(z)) / z.shape[0])


def softmax_cross_entropy_grad(logits, target):
    """dL/dlogits: [batch, k]. Equals (softmax(z) - y)/batch for rows of y summing to 1."""
    z, y = _logits_and_probs("softmax_cross_entropy_grad", logits, target)
    mass = y.sum(axis=-1, keepdims=True)  # Σ_k y_nk (1 for one-hot rows)
    return (softmax_forward(z) * mass - y) / z.shape[0]  # dL/dz = (softmax(z)·Σ_k y - y)/batch


# --- sigmoid binary cross-entropy on logits -------------------------------------------

def _bce_pair(fn, logits, target):
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.size == 0:
        raise _error(fn, f"logits must be [batch, k], got {z.shape}")
    z, t = _pair(fn, z, target)
    if np.any(~((t >= 0.0) & (t <= 1.0))):
        raise _error(fn, "target must lie in [0, 1], got values in "
                         f"[{np.nanmin(t)}, {np.nanmax(t)}] or NaN")
    return z, t


def sigmoid_binary_cross_entropy(logits, target):
    """L = mean over all elements of -t log σ(z) - (1-t) log(1-σ(z)).

    Computed as max(z, 0) - z·t + log1p(exp(-|z|)), which never overflows.
    logits, target: [batch, k], target in [0, 1].
    """
    z, t = _bce_pair("sigmoid_binary_cross_entropy", logits, target)
    with np.errstate(under="ignore"):
        per = np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return float(np.mean(per))


def sigmoid_binary_cross_entropy_grad(logits, target):
    """dL/dlogits: [batch, k]."""
    z, t = _bce_pair("sigmoid_binary_cross_entropy_grad", logits, target)
    return (sigmoid_forward(z) - t) / z.size  # dL/dz = (σ(z) - t)/n, n = z.size


# --- L2 weight penalty (seed 002) -------------------------------------------------------

def l2_penalty(weights, lam):
    """½·lam·Σ_w Σ w² over a list of weight arrays (biases are not passed in)."""
    total = 0.0
    for w in weights:
        w = np.asarray(w, dtype=np.float64)
        total += float(np.sum(w * w))
    return 0.5 * float(lam) * total


def l2_grad(w, lam):
    """d(½·lam·Σ w²)/dw = lam·w, same shape as w."""
    return float(lam) * np.asarray(w, dtype=np.float64)  # dR/dw = λ w
