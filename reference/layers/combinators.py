"""Layers made of layers in NumPy float64: Residual y = x + f(x), Sequential y = f_n(...f_1(x)),
Positionwise y = f applied to every position's feature vector.

The parts are plain functions, f(x) -> y and f_backward(x, dy) -> (grads, dx), standing where a
layer's params stand in the twins' argument order (Sequential: lists of them, one per part).
"""
import numpy as np


def residual_forward(x, f):
    x = np.asarray(x, np.float64)
    return x + f(x)


def residual_backward(x, f_backward, dy):
    """-> (f's grads, dx = dy + the block's dx): the skip and the block both carry dy back."""
    grads, dx_block = f_backward(np.asarray(x, np.float64), np.asarray(dy, np.float64))
    return grads, dy + dx_block


def sequential_forward(x, fs):
    """y = f_n(... f_2(f_1(x)))."""
    for f in fs:
        x = f(x)
    return x


def sequential_backward(x, fs, f_backwards, dy):
    """-> (tuple of each part's grads, dx): the inputs of every part by a forward pass, then the
    chain rule from the last part to the first."""
    inputs = []
    for f in fs:
        inputs.append(x)
        x = f(x)
    grads = [None] * len(inputs)
    for i in reversed(range(len(inputs))):
        grads[i], dy = f_backwards[i](inputs[i], dy)      # dL/dθ_i and dL/dx_i from dL/dy_i
    return tuple(grads), dy


def positionwise_forward(x, f):
    """x [batch, ..., d_in] -> y [batch, ..., d_out]: f on the [batch·..., d_in] rows."""
    x = np.asarray(x, np.float64)
    y = f(x.reshape(-1, x.shape[-1]))
    return y.reshape(x.shape[:-1] + y.shape[-1:])


def positionwise_backward(x, f_backward, dy):
    """-> (f's grads, dx like x): f's backward on the rows, dx reshaped back."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    grads, dx = f_backward(x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1]))
    return grads, dx.reshape(x.shape)
