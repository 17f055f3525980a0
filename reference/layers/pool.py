"""2-D max and average pooling in NumPy float64, loops over windows ('valid', NHWC).

x [batch, H, W, C] -> y [batch, H_out, W_out, C], H_out = (H - k_h) // s_h + 1.
Max ties: the gradient goes to the FIRST maximum of the window in row-major order
(the same convention as fnnet and jax.grad of lax.reduce_window).
"""
import numpy as np


def _windows(x, window, stride):
    x = np.asarray(x, np.float64)
    if x.ndim != 4:
        raise ValueError(f"reference.pool: x must be [batch, H, W, C], got {x.shape}")
    (kh, kw), (sh, sw) = window, stride
    ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"reference.pool: window {window} is larger than the input {x.shape[1:3]}")
    return x, ho, wo


def maxpool2d_forward(x, *, window, stride):
    x, ho, wo = _windows(x, window, stride)
    (kh, kw), (sh, sw) = window, stride
    y = np.empty((x.shape[0], ho, wo, x.shape[3]))
    for i in range(ho):
        for j in range(wo):
            y[:, i, j, :] = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :].max(axis=(1, 2))
    return y


def maxpool2d_backward(x, dy, *, window, stride):
    """dy [batch, H_out, W_out, C] -> dx [batch, H, W, C]: each window's dy to its first maximum."""
    x, ho, wo = _windows(x, window, stride)
    (kh, kw), (sh, sw) = window, stride
    dy = np.asarray(dy, np.float64)
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[3]):
            for i in range(ho):
                for j in range(wo):
                    win = x[n, i * sh:i * sh + kh, j * sw:j * sw + kw, c]
                    p, q = np.unravel_index(np.argmax(win), win.shape)   # first max, row-major
                    dx[n, i * sh + p, j * sw + q, c] += dy[n, i, j, c]    # dL/dx_winner += dL/dy
    return dx


def avgpool2d_forward(x, *, window, stride):
    x, ho, wo = _windows(x, window, stride)
    (kh, kw), (sh, sw) = window, stride
    y = np.empty((x.shape[0], ho, wo, x.shape[3]))
    for i in range(ho):
        for j in range(wo):
            y[:, i, j, :] = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :].mean(axis=(1, 2))
    return y


def avgpool2d_backward(x, dy, *, window, stride):
    """dy [batch, H_out, W_out, C] -> dx [batch, H, W, C]: dy/(k_h·k_w) to every window member."""
    x, ho, wo = _windows(x, window, stride)
    (kh, kw), (sh, sw) = window, stride
    dy = np.asarray(dy, np.float64)
    dx = np.zeros_like(x)
    for i in range(ho):
        for j in range(wo):
            dx[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :] += dy[:, i:i + 1, j:j + 1, :] / (kh * kw)
    return dx
