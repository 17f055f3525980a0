"""Causal multi-head self-attention in NumPy float64, one head at a time, with the softmax
backward written as the full per-row Jacobian diag(p) - p pᵀ (fnnet uses the collapsed form).

Shapes: x, dy [batch, T, C]; w_qkv [C, 3C], b_qkv [3C], w_o [C, C], b_o [C]; C = heads·D.
"""
import numpy as np


def _parts(x, w_qkv, b_qkv, heads):
    x = np.asarray(x, np.float64)
    b, t, c = x.shape
    if c % heads:
        raise ValueError(f"reference.attention: heads {heads} must divide C = {c}")
    qkv = x @ np.asarray(w_qkv, np.float64) + np.asarray(b_qkv, np.float64)
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    d = c // heads
    split = lambda a: [a[..., h * d:(h + 1) * d] for h in range(heads)]   # noqa: E731
    probs = []
    for qh, kh in zip(split(q), split(k)):
        s = qh @ kh.transpose(0, 2, 1) / np.sqrt(d)                       # [b, T, T]
        s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        probs.append(e / e.sum(axis=-1, keepdims=True))
    return x, split(q), split(k), split(v), probs, d


def attention_forward(x, w_qkv, b_qkv, w_o, b_o, *, heads):
    """-> y [batch, T, C]."""
    _, _, _, vs, probs, _ = _parts(x, w_qkv, b_qkv, heads)
    o = np.concatenate([p @ v for p, v in zip(probs, vs)], axis=-1)
    return o @ np.asarray(w_o, np.float64) + np.asarray(b_o, np.float64)


def attention_backward(x, w_qkv, b_qkv, w_o, b_o, dy, *, heads):
    """-> (dw_qkv, db_qkv, dw_o, db_o, dx)."""
    x, qs, ks, vs, probs, d = _parts(x, w_qkv, b_qkv, heads)
    dy = np.asarray(dy, np.float64)
    w_o = np.asarray(w_o, np.float64)
    o = np.concatenate([p @ v for p, v in zip(probs, vs)], axis=-1)
    c = x.shape[-1]
    dw_o = o.reshape(-1, c).T @ dy.reshape(-1, c)
    db_o = dy.reshape(-1, c).sum(0)
    do = dy @ w_o.T
    dq, dk, dv = [], [], []
    for h, (q, k, v, p) in enumerate(zip(qs, ks, vs, probs)):
        doh = do[..., h * d:(h + 1) * d]
        dv.append(p.transpose(0, 2, 1) @ doh)
        dp = doh @ v.transpose(0, 2, 1)                                   # [b, T, T]
        jac = np.einsum("bij,jk->bijk", p, np.eye(p.shape[-1])) - p[..., :, None] * p[..., None, :]
        ds = np.einsum("bijk,bij->bik", jac, dp) / np.sqrt(d)             # row i: (diag p - p pᵀ) dp
        dq.append(ds @ k)
        dk.append(ds.transpose(0, 2, 1) @ q)
    dqkv = np.concatenate(dq + dk + dv, axis=-1)
    dw_qkv = x.reshape(-1, c).T @ dqkv.reshape(-1, 3 * c)
    db_qkv = dqkv.reshape(-1, 3 * c).sum(0)
    return dw_qkv, db_qkv, dw_o, db_o, dqkv @ np.asarray(w_qkv, np.float64).T
