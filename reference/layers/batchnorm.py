"""Batch normalization in NumPy float64, over every axis but the last (channels).

x [N, C] or [N, H, W, C]; gamma, beta, running mean/var [C]; m = values per channel.
Train: x̂ = (x - μ)/√(σ² + ε) with the batch's μ and biased σ²; the running variance is
updated with the unbiased σ²·m/(m-1). Eval: the running statistics are constants.

The train backward is the computational graph walked one node at a time, as in
CS231n's batchnorm_backward (not the one-line form fnnet's default uses), so that
agreeing with it says something.
"""
import numpy as np


def _flat(x):
    x = np.asarray(x, np.float64)
    if x.ndim not in (2, 4):
        raise ValueError(f"reference.batchnorm: x must be [N, C] or [N, H, W, C], got {x.shape}")
    return x.reshape(-1, x.shape[-1])           # [m, C]


def batchnorm_forward(x, gamma, beta, *, eps=1e-5):
    """-> (y like x, batch mean [C], biased batch var [C])."""
    shape = np.shape(x)
    xf = _flat(x)
    mu = xf.mean(axis=0)
    var = ((xf - mu) ** 2).mean(axis=0)
    y = np.asarray(gamma, np.float64) * (xf - mu) / np.sqrt(var + eps) + np.asarray(beta, np.float64)
    return y.reshape(shape), mu, var


def batchnorm_running(mean, var, batch_mean, batch_var, m, momentum):
    """running ← momentum · running + (1 - momentum) · batch, variance unbiased (m/(m-1))."""
    return (momentum * np.asarray(mean, np.float64) + (1 - momentum) * batch_mean,
            momentum * np.asarray(var, np.float64) + (1 - momentum) * batch_var * m / (m - 1))


def batchnorm_backward(x, gamma, beta, dy, *, eps=1e-5):
    """Train mode: dy like x -> (dgamma [C], dbeta [C], dx like x), through μ and σ²."""
    shape = np.shape(x)
    xf, dyf = _flat(x), _flat(dy)
    gamma = np.asarray(gamma, np.float64)
    m = xf.shape[0]
    mu = xf.sum(axis=0) / m                     # node 1: μ
    xmu = xf - mu                               # node 2: x - μ
    sq = xmu ** 2                               # node 3
    var = sq.sum(axis=0) / m                    # node 4: σ²
    std = np.sqrt(var + eps)                    # node 5
    istd = 1.0 / std                            # node 6
    xhat = xmu * istd                           # node 7
    dbeta = dyf.sum(axis=0)
    dgamma = (dyf * xhat).sum(axis=0)
    dxhat = dyf * gamma                         # back through node 8: y = γ x̂ + β
    distd = (dxhat * xmu).sum(axis=0)           # node 7
    dxmu1 = dxhat * istd
    dstd = -distd / std ** 2                    # node 6
    dvar = 0.5 * dstd / np.sqrt(var + eps)      # node 5
    dsq = np.ones_like(sq) * dvar / m           # node 4
    dxmu2 = 2 * xmu * dsq                       # node 3
    dx1 = dxmu1 + dxmu2                         # node 2 (x branch)
    dmu = -(dxmu1 + dxmu2).sum(axis=0)          # node 2 (μ branch)
    dx2 = np.ones_like(xf) * dmu / m            # node 1
    return dgamma, dbeta, (dx1 + dx2).reshape(shape)


def batchnorm_eval_forward(x, gamma, beta, mean, var, *, eps=1e-5):
    shape = np.shape(x)
    xf = _flat(x)
    y = np.asarray(gamma, np.float64) * (xf - mean) / np.sqrt(np.asarray(var, np.float64) + eps) + beta
    return y.reshape(shape)


def batchnorm_eval_backward(x, gamma, beta, mean, var, dy, *, eps=1e-5):
    """Eval mode: the statistics are constants -> (dgamma, dbeta, dx)."""
    shape = np.shape(x)
    xf, dyf = _flat(x), _flat(dy)
    istd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    xhat = (xf - mean) * istd
    return (dyf * xhat).sum(axis=0), dyf.sum(axis=0), (dyf * np.asarray(gamma, np.float64) * istd).reshape(shape)
