"""ConvTranspose2D in NumPy float64, NHWC, by its definition: every input pixel scatters
x[n, i, j, :] · w[p, q] to output pixel (i·s + p, j·s + q), then the border is cropped.
Backward by the same loop over kernel offsets (p, q), gathering instead of scattering.

Shapes: x [N, H, W, C], w [kh, kw, C, F], b [F]; y [N, H_out, W_out, F]. Options (keyword-only):
stride (s_h, s_w); crops ((top, bottom), (left, right)) cut from the full output, a negative entry
meaning that many zero rows/columns appended.
"""
import numpy as np


def _full_shape(x, w, stride):
    n, h, wd, _ = x.shape
    kh, kw, _, f = w.shape
    return (n, (h - 1) * stride[0] + kh, (wd - 1) * stride[1] + kw, f)


def _crop(a, crops):
    (t, bo), (le, ri) = crops
    a = np.pad(a, ((0, 0), (0, max(-bo, 0)), (0, max(-ri, 0)), (0, 0)))   # negative crop: zeros appended
    return a[:, t:a.shape[1] - max(bo, 0), le:a.shape[2] - max(ri, 0), :]


def conv_transpose2d_forward(x, w, b, *, stride=(1, 1), crops=((0, 0), (0, 0))):
    """-> y [N, H_out, W_out, F]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    h, wd = x.shape[1:3]
    full = np.zeros(_full_shape(x, w, stride))
    for p in range(w.shape[0]):
        for q in range(w.shape[1]):
            full[:, p:p + (h - 1) * stride[0] + 1:stride[0], q:q + (wd - 1) * stride[1] + 1:stride[1], :] += \
                np.einsum("nijc,cf->nijf", x, w[p, q])
    return _crop(full, crops) + np.asarray(b, np.float64)


def conv_transpose2d_backward(x, w, b, dy, *, stride=(1, 1), crops=((0, 0), (0, 0))):
    """-> (dw [kh, kw, C, F], db [F], dx like x); b does not enter the gradients (y is affine in b)."""
    del b
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    h, wd = x.shape[1:3]
    (t, bo), (le, ri) = crops
    full = np.zeros(_full_shape(x, w, stride))
    # put dy back where the forward took y from (cropped rows get zero gradient)
    hf, wf = full.shape[1:3]
    src = dy[:, :hf - t - max(bo, 0), :wf - le - max(ri, 0), :]
    full[:, t:t + src.shape[1], le:le + src.shape[2], :] = src
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for p in range(w.shape[0]):
        for q in range(w.shape[1]):
            patch = full[:, p:p + (h - 1) * stride[0] + 1:stride[0], q:q + (wd - 1) * stride[1] + 1:stride[1], :]
            dx += np.einsum("nijf,cf->nijc", patch, w[p, q])
            dw[p, q] = np.einsum("nijc,nijf->cf", x, patch)
    return dw, dy.sum(axis=(0, 1, 2)), dx
