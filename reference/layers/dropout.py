"""Inverted dropout in NumPy float64, given the keep mask (the randomness is the caller's).

x, keep: [batch, ...] (keep boolean); y = keep · x / (1 - rate); dx = keep · dy / (1 - rate).
"""
import numpy as np


def dropout_forward(x, keep, *, rate):
    x = np.asarray(x, np.float64)
    keep = np.asarray(keep, bool)
    if keep.shape != x.shape or not 0 <= rate < 1:
        raise ValueError(f"reference.dropout_forward: keep must be x's shape {x.shape} and 0 <= rate < 1, "
                         f"got {keep.shape}, rate {rate}")
    return np.where(keep, x / (1.0 - rate), 0.0)


def dropout_backward(x, keep, dy, *, rate):
    dy, keep = np.asarray(dy, np.float64), np.asarray(keep, bool)
    if keep.shape != np.shape(x) or dy.shape != np.shape(x):
        raise ValueError(f"reference.dropout_backward: keep and dy must be x's shape {np.shape(x)}, "
                         f"got {keep.shape} and {dy.shape}")
    return np.where(keep, dy / (1.0 - rate), 0.0)   # dL/dx = m ⊙ dL/dy / (1-rate)
