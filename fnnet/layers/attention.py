"""Causal multi-head self-attention (GPT-2's), forward and hand-written backward.

Shapes: x [batch, T, C] with C = heads · D. Params:
    w_qkv [C, 3C], b_qkv [3C]    fused projection to queries, keys, values
    w_o   [C, C],  b_o   [C]     output projection

Forward, per head (q, k, v: [batch, heads, T, D]):
    s = q kᵀ / √D, masked to -inf above the diagonal (position t sees positions <= t)
    p = softmax(s) over the last axis,   o = p v,   y = concat_heads(o) · W_o + b_o

What the backward keeps: by default (recompute=False) p itself [batch, heads, T, T];
recompute=True keeps only the row log-sum-exp m = logsumexp(s) [batch, heads, T, 1] and
rebuilds p = exp(q kᵀ/√D - m) from q and k, as FlashAttention does. Measured on XLA:CPU
(`fnnet bench --workloads GPT`, its attention-alone table): the cache shrinks (13.6 MB ->
5.3 MB for x [8, 256, 128], 4 heads), but the compiled training step's temp bytes do not
(the backward's own [T, T] temporaries dominate), and the extra q kᵀ costs time; so keeping
p is the default.
The softmax Jacobian is applied as ds = p ⊙ (dp - δ) with δ = rowsum(dp ⊙ p) = rowsum(do ⊙ o),
so the [T, T] Jacobian of every row is never formed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnnet.validate import check_dy, check_floating, int_at_least


class AttentionParams(NamedTuple):
    w_qkv: jax.Array  # [C, 3C]
    b_qkv: jax.Array  # [3C]
    w_o: jax.Array    # [C, C]
    b_o: jax.Array    # [C]


class AttentionCache(NamedTuple):
    x: jax.Array      # [batch, T, C]
    q: jax.Array      # [batch, heads, T, D]
    k: jax.Array      # [batch, heads, T, D]
    v: jax.Array      # [batch, heads, T, D]
    o: jax.Array      # [batch, T, C]  heads concatenated
    p_or_m: jax.Array  # p [batch, heads, T, T] (recompute=False) or m [batch, heads, T, 1]


def _causal_mask(t):
    return jnp.tril(jnp.ones((t, t), dtype=bool))[None, None]   # [1, 1, T, T]: key j <= query i


def split_heads(a, heads):
    """[batch, T, W] -> [batch, heads, T, W / heads]."""
    b, t, w = a.shape
    return a.reshape(b, t, heads, w // heads).transpose(0, 2, 1, 3)


def _scores(q, k):
    """s = q kᵀ / √D with the causal mask (-inf above the diagonal): [batch, heads, T, T]."""
    s = jnp.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
    return jnp.where(_causal_mask(q.shape[2]), s, -jnp.inf)


def attend(qkv, heads, recompute=False):
    """The heads' attention, from the projected qkv [batch, T, 3W] (queries | keys | values,
    W = heads · D) to o [batch, T, W] (heads concatenated) -> (o, (q, k, v, p_or_m)).

    Shared by CausalSelfAttention (all heads) and tensor parallelism's head-split layer
    (fnnet/train/tensor_parallel.py: each device its own heads).
    """
    b, t, w3 = qkv.shape
    q, k, v = (split_heads(a, heads) for a in jnp.split(qkv, 3, axis=-1))
    s = _scores(q, k)
    smax = jax.lax.stop_gradient(s.max(axis=-1, keepdims=True))   # the diagonal is never masked: finite
    m = smax + jnp.log(jnp.exp(s - smax).sum(axis=-1, keepdims=True))   # m = logsumexp_j s_ij
    p = jnp.exp(s - m)                                               # p = softmax(s); 0 where masked
    o = jnp.einsum("bhij,bhjd->bhid", p, v).transpose(0, 2, 1, 3).reshape(b, t, w3 // 3)   # o = p v, heads concat
    return o, (q, k, v, m if recompute else p)


def attend_backward(do_cat, o, q, k, v, p_or_m, recompute, dy_barrier=None):
    """dL/do [batch, T, W] (heads concatenated) -> dL/dqkv [batch, T, 3W]: attend's backward.

    o is attend's output and (q, k, v, p_or_m) its saved parts; dy_barrier, when recompute
    is on, is an array the rebuilt p must wait for (the layer's dy, see CausalSelfAttention).
    """
    b, t, w = do_cat.shape
    heads = q.shape[1]
    if recompute:
        # The barrier (i) stops XLA from merging this recomputation with the forward's s
        # (CSE would bring back the [B, H, T, T] buffer we meant not to keep) and (ii) ties
        # it to dy, so it cannot be scheduled before this layer's backward begins.
        qb, kb, _ = jax.lax.optimization_barrier((q, k, do_cat if dy_barrier is None else dy_barrier))
        p = jnp.exp(_scores(qb, kb) - p_or_m)                  # p = exp(s - m), rebuilt
    else:
        p = p_or_m
    do = split_heads(do_cat, heads)                              # [b, h, T, D]
    # dv = pᵀ do and dk = dsᵀ q contract p's and ds's first T axis; as dots XLA:CPU's fast
    # matmul path rejects that (lhs_contracting_dims={2}). Computed as (doᵀ p)ᵀ and
    # (qᵀ ds)ᵀ with doᵀ, qᵀ [b, h, D, T] real copies (the barriers stop XLA folding them
    # back), every dot is canonical, and the copies are D/T the size of pᵀ.
    dot_t = jax.lax.optimization_barrier(do.swapaxes(-1, -2))   # doᵀ [b, h, D, T]
    dv = jnp.einsum("bhdi,bhij->bhdj", dot_t, p).swapaxes(-1, -2)   # dL/dv = pᵀ do = (doᵀ p)ᵀ
    dp = jnp.einsum("bhid,bhjd->bhij", do, v)                    # dL/dp = do vᵀ
    # δ_i = Σ_j dp_ij p_ij = do_i · o_i per head: [b, h, T, 1], without touching [T, T]
    delta = (do_cat * o).reshape(b, t, heads, -1).sum(-1).transpose(0, 2, 1)[..., None]
    ds = p * (dp - delta) / math.sqrt(q.shape[-1])               # dL/ds = p ⊙ (dp - δ), then the 1/√D scale
    dq = jnp.einsum("bhij,bhjd->bhid", ds, k)                    # dL/dq = ds k
    qt = jax.lax.optimization_barrier(q.swapaxes(-1, -2))       # qᵀ [b, h, D, T]
    dk = jnp.einsum("bhdi,bhij->bhdj", qt, ds).swapaxes(-1, -2)  # dL/dk = dsᵀ q = (qᵀ ds)ᵀ
    return jnp.concatenate([a.transpose(0, 2, 1, 3).reshape(b, t, w) for a in (dq, dk, dv)], axis=-1)


@dataclasses.dataclass(frozen=True)
class CausalSelfAttention:
    """heads: number of heads, dim: model width C (heads must divide it).

    Init (GPT-2): weights N(0, 0.02²), biases 0; `out_std` sets w_o's std (gpt() passes
    0.02/sqrt(2·layers) so that the residual stream's variance stays put with depth).
    """
    heads: int
    dim: int
    recompute: bool = False
    out_std: float = 0.02

    def __post_init__(self):
        for name in ("heads", "dim"):
            int_at_least("CausalSelfAttention", name, getattr(self, name))
        if self.dim % self.heads:
            raise ValueError(f"CausalSelfAttention: heads must divide dim, got dim={self.dim}, heads={self.heads}")
        if not isinstance(self.recompute, bool):
            raise TypeError(f"CausalSelfAttention: recompute must be True or False, got {self.recompute!r}")

    def __str__(self):
        return f"CausalSelfAttention(heads={self.heads}, dim={self.dim})"

    def init(self, key, in_shape):
        """in_shape: (T, C) -> (AttentionParams, (T, C))."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 2 or in_shape[1] != self.dim:
            raise ValueError(f"{self}: input must be [batch, T, {self.dim}], got feature shape {in_shape}")
        c, dtype = self.dim, jnp.float32
        k1, k2 = jax.random.split(key)
        return AttentionParams(0.02 * jax.random.normal(k1, (c, 3 * c), dtype), jnp.zeros((3 * c,), dtype),
                               self.out_std * jax.random.normal(k2, (c, c), dtype), jnp.zeros((c,), dtype)), in_shape

    def _check(self, params, x):
        check_floating(str(self), "x", x)
        if x.ndim != 3 or x.shape[2] != self.dim:
            raise ValueError(f"{self}: x must be [batch, T, {self.dim}], got {tuple(x.shape)}")
        c = self.dim
        for name, want in zip(AttentionParams._fields, ((c, 3 * c), (3 * c,), (c, c), (c,))):
            leaf = getattr(params, name)
            check_floating(str(self), f"params.{name}", leaf)
            if leaf.shape != want:
                raise ValueError(f"{self}: params.{name} must be {list(want)}, got {tuple(leaf.shape)}")

    def forward(self, params, x):
        """x [batch, T, C] -> (y [batch, T, C], AttentionCache)."""
        self._check(params, x)
        qkv = jnp.einsum("btc,ce->bte", x, params.w_qkv) + params.b_qkv[None, None]   # [b, T, 3C] = x W + b
        o, (q, k, v, p_or_m) = attend(qkv, self.heads, self.recompute)                # o = softmax(q kᵀ/√D) v
        y = jnp.einsum("btc,ce->bte", o, params.w_o) + params.b_o[None, None]          # y = o W_o + b_o
        return y, AttentionCache(x, q, k, v, o, p_or_m)

    def backward(self, params, cache, dy):
        """dy [batch, T, C] -> (AttentionParams of gradients, dx [batch, T, C])."""
        x, q, k, v, o, p_or_m = cache
        check_dy(str(self), dy, x.shape)
        dw_o = jnp.einsum("btc,bte->ce", o, dy)                  # dL/dW_o = oᵀ dy   (Σ over batch, T)
        db_o = dy.sum(axis=(0, 1))                               # dL/db_o = Σ dy
        do_cat = jnp.einsum("bte,ce->btc", dy, params.w_o)       # dL/do = dy W_oᵀ
        dqkv = attend_backward(do_cat, o, q, k, v, p_or_m, self.recompute, dy)   # through the heads
        dw_qkv = jnp.einsum("btc,bte->ce", x, dqkv)              # dL/dW_qkv = xᵀ dqkv
        db_qkv = dqkv.sum(axis=(0, 1))                           # dL/db_qkv = Σ dqkv
        dx = jnp.einsum("bte,ce->btc", dqkv, params.w_qkv)       # dL/dx = dqkv W_qkvᵀ
        return AttentionParams(dw_qkv, db_qkv, dw_o, db_o), dx

    def l2_mask(self, params):
        """L2 on the two weight matrices, never the biases."""
        del params
        return AttentionParams(True, False, True, False)
