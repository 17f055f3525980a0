"""Embeddings in NumPy float64: lookup forward, explicit-loop scatter-add backward.

Shapes: ids [batch, T] int; w [vocab, dim]; positions p [context, dim]; y, dy [batch, T, dim].
"""
import numpy as np


def _ids(ids, vocab):
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 2:
        raise ValueError(f"reference.embedding: ids must be int [batch, T], got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"reference.embedding: ids must be in [0, {vocab}), got {ids.min()} to {ids.max()}")
    return ids


def embedding_forward(ids, w):
    """y[b, t] = w[ids[b, t]]."""
    w = np.asarray(w, np.float64)
    return w[_ids(ids, w.shape[0])]


def embedding_backward(ids, w, dy):
    """-> dw [vocab, dim]: every (b, t) adds dy[b, t] to row ids[b, t]."""
    w, dy = np.asarray(w, np.float64), np.asarray(dy, np.float64)
    ids = _ids(ids, w.shape[0])
    dw = np.zeros_like(w)
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            dw[ids[b, t]] += dy[b, t]
    return dw


def positional_forward(x, p):
    """y[b, t] = x[b, t] + p[t] for t < T."""
    x = np.asarray(x, np.float64)
    return x + np.asarray(p, np.float64)[: x.shape[1]]


def positional_backward(x, p, dy):
    """-> (dp [context, dim], dx = dy)."""
    dy = np.asarray(dy, np.float64)
    if dy.shape != np.shape(x):
        raise ValueError(f"reference.positional_backward: dy must be x's shape {np.shape(x)}, got {dy.shape}")
    dp = np.zeros(np.shape(p))
    dp[: dy.shape[1]] = dy.sum(axis=0)
    return dp, dy.copy()


def token_position_forward(ids, wte, wpe):
    """GPT's encoder: y[b, t] = wte[ids[b, t]] + wpe[t]."""
    return positional_forward(embedding_forward(ids, wte), wpe)


def token_position_backward(ids, wte, wpe, dy):
    """-> (dwte [vocab, dim], dwpe [context, dim]); ids have no gradient."""
    dwpe, dh = positional_backward(embedding_forward(ids, wte), wpe, dy)
    return embedding_backward(ids, wte, dh), dwpe
