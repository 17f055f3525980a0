"""Residual connection in NumPy float64: y = x + f(x), dx = dy + f'(x)ᵀ dy.

f and f_backward are plain functions: f(x) -> y, f_backward(x, dy) -> (grads, dx); they
take the place of a layer's params in the twins' argument order.
"""
import numpy as np


def residual_forward(x, f):
    x = np.asarray(x, np.float64)
    return x + f(x)


def residual_backward(x, f_backward, dy):
    """-> (f's grads, dx = dy + the block's dx): the skip and the block both carry dy back."""
    grads, dx_block = f_backward(np.asarray(x, np.float64), np.asarray(dy, np.float64))
    return grads, dy + dx_block
