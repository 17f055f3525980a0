"""LayerNorm and RMSNorm over the last axis in NumPy float64, backward via the explicit
per-row Jacobian (fnnet uses the collapsed formula; this is the longhand).

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
