"""2-D convolution (cross-correlation) in NumPy float64, the naive loop over output pixels.

NHWC: x [batch, H, W, C_in], w [kh, kw, C_in, F], b [F], y [batch, H_out, W_out, F].
pads = ((top, bottom), (left, right)) of zeros; stride = (s_h, s_w).
    y[n, i, j, f] = b[f] + Σ_{p,q,c} xpad[n, i·s_h + p, j·s_w + q, c] · w[p, q, c, f]
The backward walks the same windows and adds each output's gradient back into them
(CS231n's conv_backward_naive): no transposed convolutions, so it is an independent witness.
"""
import numpy as np


def _error(fn, msg):
    return ValueError(f"reference.{fn}: {msg}")


def _prepare(fn, x, w, stride, pads):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    if x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[2]:
        raise _error(fn, f"x must be [batch, H, W, {w.shape[2] if w.ndim == 4 else 'C'}] and w "
                         f"[kh, kw, C_in, F], got x {x.shape}, w {w.shape}")
    (t, bo), (le, r) = pads
    xp = np.pad(x, ((0, 0), (t, bo), (le, r), (0, 0)))
    kh, kw = w.shape[:2]
    ho = (xp.shape[1] - kh) // stride[0] + 1
    wo = (xp.shape[2] - kw) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise _error(fn, f"kernel {w.shape[:2]} is larger than the padded input {xp.shape[1:3]}")
    return x, w, xp, ho, wo


def conv2d_forward(x, w, b, *, stride=(1, 1), pads=((0, 0), (0, 0))):
    """x [batch, H, W, C], w [kh, kw, C, F], b [F] -> y [batch, H_out, W_out, F]."""
    x, w, xp, ho, wo = _prepare("conv2d_forward", x, w, stride, pads)
    kh, kw = w.shape[:2]
    y = np.empty((x.shape[0], ho, wo, w.shape[3]))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw, :]
            y[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))  # Σ_{p,q,c} x·w
    return y + np.asarray(b, np.float64)


def conv2d_backward(x, w, b, dy, *, stride=(1, 1), pads=((0, 0), (0, 0))):
    """dy [batch, H_out, W_out, F] -> (dw [kh, kw, C, F], db [F], dx [batch, H, W, C])."""
    x, w, xp, ho, wo = _prepare("conv2d_backward", x, w, stride, pads)
    dy = np.asarray(dy, np.float64)
    if dy.shape != (x.shape[0], ho, wo, w.shape[3]):
        raise _error("conv2d_backward", f"dy must be {(x.shape[0], ho, wo, w.shape[3])}, got {dy.shape}")
    kh, kw = w.shape[:2]
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(ho):
        for j in range(wo):
            si, sj = i * stride[0], j * stride[1]
            patch = xp[:, si:si + kh, sj:sj + kw, :]
            g = dy[:, i, j, :]                                              # [batch, F]
            dw += np.tensordot(patch, g, axes=([0], [0]))                   # dL/dw += patchᵀ · dy_ij
            dxp[:, si:si + kh, sj:sj + kw, :] += np.tensordot(g, w, axes=([1], [3]))  # dL/dpatch += dy_ij · wᵀ
    (t, _), (le, _) = pads
    dx = dxp[:, t:t + x.shape[1], le:le + x.shape[2], :]                    # drop the padding's gradient
    db = dy.sum(axis=(0, 1, 2))                                             # dL/db = Σ dy
    return dw, db, dx
