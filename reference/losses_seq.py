"""Sequence softmax cross-entropy in NumPy float64, written per position with loops.

z: logits [batch, T, V]; targets: int [batch, T]; mask: optional weights [batch, T].
L = (1/N) Σ_bt w_bt · (-Σ_v q_btv log softmax(z_bt)_v),  q = (1-ε) onehot + ε/V,  N = Σ w.
"""
import numpy as np


def _weights(targets, mask, ignore_index):
    t = np.asarray(targets)
    w = np.ones(t.shape) if mask is None else np.asarray(mask, np.float64).copy()
    if ignore_index is not None:
        w[t == ignore_index] = 0.0
    n = w.sum()
    return w / (n if n > 0 else 1.0)


def _log_softmax(row):
    m = row.max()
    return row - m - np.log(np.exp(row - m).sum())


def sequence_cross_entropy(z, targets, *, ignore_index=None, label_smoothing=0.0, mask=None):
    z = np.asarray(z, np.float64)
    w = _weights(targets, mask, ignore_index)
    b, t, v = z.shape
    total = 0.0
    for i in range(b):
        for j in range(t):
            if w[i, j] == 0:
                continue
            q = np.full(v, label_smoothing / v)
            q[int(targets[i, j])] += 1.0 - label_smoothing
            total += w[i, j] * -(q * _log_softmax(z[i, j])).sum()
    return total


def sequence_cross_entropy_grad(z, targets, *, ignore_index=None, label_smoothing=0.0, mask=None):
    """-> dL/dz [batch, T, V]: w_bt/N · (softmax(z_bt) - q_bt) per position."""
    z = np.asarray(z, np.float64)
    w = _weights(targets, mask, ignore_index)
    b, t, v = z.shape
    dz = np.zeros_like(z)
    for i in range(b):
        for j in range(t):
            if w[i, j] == 0:
                continue
            q = np.full(v, label_smoothing / v)
            q[int(targets[i, j])] += 1.0 - label_smoothing
            dz[i, j] = w[i, j] * (np.exp(_log_softmax(z[i, j])) - q)
    return dz
