"""Flatten / reshape in NumPy float64: the backward is the inverse reshape.

x [batch, *s] -> y [batch, *shape] (row-major, as numpy and jax reshape).
"""
import numpy as np


def reshape_forward(x, *, shape):
    x = np.asarray(x, np.float64)
    return x.reshape((x.shape[0], *shape))


def reshape_backward(x, dy):
    """dy [batch, *shape] -> dx [batch, *s] (x's shape)."""
    x = np.asarray(x, np.float64)
    return np.asarray(dy, np.float64).reshape(x.shape)
