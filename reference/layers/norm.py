"""LayerNorm and RMSNorm over the last axis, GroupNorm over channel groups, in NumPy float64,
backward via the explicit per-row (per-group) Jacobian (fnnet uses the collapsed formula;
this is the longhand).

Shapes: x, dy: [batch, ..., d]; gamma, beta: [d].
"""
import numpy as np


def layernorm_forward(x, gamma, beta, *, eps=1e-5):
    """y = γ (x - μ)/sqrt(σ² + eps) + β per row of the last axis."""
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray(gamma, np.float64) * (x - mu) / np.sqrt(var + eps) + np.asarray(beta, np.float64)


def layernorm_backward(x, gamma, beta, dy, *, eps=1e-5):
    """-> (dgamma [d], dbeta [d], dx like x)."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * r
    g = dy * np.asarray(gamma, np.float64)
    # J_ij = ∂x̂_i/∂x_j = r (δ_ij - 1/d - x̂_i x̂_j / d);  dx_j = Σ_i g_i J_ij
    eye = np.eye(d)
    jac = r[..., None] * (eye - 1.0 / d - xhat[..., :, None] * xhat[..., None, :] / d)
    dx = np.einsum("...i,...ij->...j", g, jac)
    flat = (-1, d)
    return (dy * xhat).reshape(flat).sum(0), dy.reshape(flat).sum(0), dx


def rmsnorm_forward(x, gamma, *, eps=1e-6):
    """y = γ x / sqrt(mean(x²) + eps) per row of the last axis."""
    x = np.asarray(x, np.float64)
    return np.asarray(gamma, np.float64) * x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)


def rmsnorm_backward(x, gamma, dy, *, eps=1e-6):
    """-> (dgamma [d], dx like x)."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    d = x.shape[-1]
    r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    xhat = x * r
    g = dy * np.asarray(gamma, np.float64)
    jac = r[..., None] * (np.eye(d) - xhat[..., :, None] * xhat[..., None, :] / d)   # ∂x̂_i/∂x_j
    return (dy * xhat).reshape(-1, d).sum(0), np.einsum("...i,...ij->...j", g, jac)


def _groups(x, groups):
    """[B, ..., C] -> [B, G, n]: each sample's group of C/G channels at every position."""
    b, c = x.shape[0], x.shape[-1]
    xs = x.reshape(b, -1, groups, c // groups)                # [B, S, G, C/G]
    return xs.transpose(0, 2, 1, 3).reshape(b, groups, -1)


def _ungroup(a, shape, groups):
    b, c = shape[0], shape[-1]
    return a.reshape(b, groups, -1, c // groups).transpose(0, 2, 1, 3).reshape(shape)


def groupnorm_forward(x, gamma, beta, *, groups, eps=1e-5):
    """y = γ_c (x - μ_bg)/sqrt(σ²_bg + eps) + β_c, statistics over each sample's group."""
    x = np.asarray(x, np.float64)
    xg = _groups(x, groups)
    mu = xg.mean(axis=-1, keepdims=True)
    var = ((xg - mu) ** 2).mean(axis=-1, keepdims=True)
    xhat = _ungroup((xg - mu) / np.sqrt(var + eps), x.shape, groups)
    return np.asarray(gamma, np.float64) * xhat + np.asarray(beta, np.float64)


def groupnorm_backward(x, gamma, beta, dy, *, groups, eps=1e-5):
    """-> (dgamma [C], dbeta [C], dx like x), through each group's explicit Jacobian."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    c = x.shape[-1]
    xg = _groups(x, groups)
    n = xg.shape[-1]
    mu = xg.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(((xg - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (xg - mu) * r
    g = _groups(dy * np.asarray(gamma, np.float64), groups)
    # J_ij = ∂x̂_i/∂x_j = r (δ_ij - 1/n - x̂_i x̂_j / n) within one group
    jac = r[..., None] * (np.eye(n) - 1.0 / n - xhat[..., :, None] * xhat[..., None, :] / n)
    dx = _ungroup(np.einsum("...i,...ij->...j", g, jac), x.shape, groups)
    xh = _ungroup(xhat, x.shape, groups)
    return (dy * xh).reshape(-1, c).sum(0), dy.reshape(-1, c).sum(0), dx
