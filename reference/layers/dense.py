"""Dense (fully connected) layer in NumPy float64: y = x @ w + b.

Row-batch layout, as in seeds 000-002: each row of x is one sample.
  x: [batch, d_in]   w: [d_in, d_out]   b: [d_out]   y: [batch, d_out]
(Seed 003 writes the same layer column-wise, Y = W X + B with W [d_out, d_in];
transposing every array turns one form into the other.)
"""
import numpy as np


def _error(fn, msg):
    return ValueError(f"reference.{fn}: {msg}")


def _fmt(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _check_params(fn, w, b):
    if w.ndim != 2:
        raise _error(fn, f"w must be [d_in, d_out], got {w.shape}")
    if b.shape != (w.shape[1],):
        raise _error(fn, f"b must be [{w.shape[1]}] (w is {w.shape}), got {b.shape}")


def _check_x(fn, w, x):
    if x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise _error(fn, f"x must be [batch, {w.shape[0]}], got {x.shape}")


def dense_forward(x, w, b):
    """y = x @ w + b.

    x: [batch, d_in], w: [d_in, d_out], b: [d_out] -> y: [batch, d_out]
    """
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    _check_params("dense_forward", w, b)
    _check_x("dense_forward", w, x)
    return x @ w + b  # y_nj = Σ_i x_ni w_ij + b_j


def dense_backward(x, w, b, dy):
    """Gradients of L through y = x @ w + b, given dy = dL/dy.

    x: [batch, d_in], w: [d_in, d_out], b: [d_out], dy: [batch, d_out]
    -> (dw: [d_in, d_out], db: [d_out], dx: [batch, d_in])
    db is summed over the batch (the bias is shared by every row).
    """
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    _check_params("dense_backward", w, b)
    _check_x("dense_backward", w, x)
    if dy.shape != (x.shape[0], w.shape[1]):
        raise _error("dense_backward",
                     f"dy must be {_fmt((x.shape[0], w.shape[1]))} (y's shape), got {dy.shape}")
    dw = x.T @ dy        # dL/dW = x^T · dL/dy
    db = dy.sum(axis=0)  # dL/db = Σ_batch dL/dy
    dx = dy @ w.T        # dL/dx = dL/dy · W^T
    return dw, db, dx
