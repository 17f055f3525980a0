"""Embeddings: integer token ids -> vectors, and learned positions.

    Embedding(vocab, dim)                     ids [batch, T] int -> [batch, T, dim]
    PositionalEmbedding(context, dim)         x [batch, T, dim] -> x + P[:T]
    TokenPositionEmbedding(vocab, context, dim)  ids [batch, T] -> E[ids] + P[:T]  (GPT's encoder)

The forward is a gather (row ids[b, t] of E); its backward is the matching scatter-add:
dE[v] = Σ over every (b, t) with ids[b, t] = v of dy[b, t]. Repeated ids must accumulate
(`.at[ids].add`); writing `.at[ids].set` keeps only one of them (the classic bug).

Integer ids have no gradient: backward returns dx = None.

Out-of-range ids: with concrete ids (outside jit) forward raises a ValueError naming the
layer and the range. Under jit the values are unknown at trace time, and a plain JAX gather
would silently clamp (or wrap negatives); these layers gather with mode="fill" instead, so
an out-of-range id yields a row of NaN, which the loss and `fit`'s divergence check report,
and the scatter-add drops its gradient.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.validate import check_dy, check_floating, int_at_least, is_concrete


class EmbeddingParams(NamedTuple):
    w: jax.Array     # [vocab, dim]


class PositionalParams(NamedTuple):
    w: jax.Array     # [context, dim]


class EncoderParams(NamedTuple):
    wte: jax.Array   # [vocab, dim]    token embedding
    wpe: jax.Array   # [context, dim]  position embedding




def check_ids(where, ids, vocab, context=None):
    """ids: integer array [batch, T] with values in [0, vocab) (values checked when concrete)."""
    dtype = getattr(ids, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{where}: token ids must be an integer array [batch, T], got "
                        f"{type(ids).__name__} with dtype {dtype}")
    if ids.ndim != 2 or 0 in ids.shape:
        raise ValueError(f"{where}: token ids must be [batch, T], got shape {tuple(ids.shape)}")
    if context is not None and ids.shape[1] > context:
        raise ValueError(f"{where}: sequence length must be <= context {context}, got T = {ids.shape[1]}")
    if is_concrete(ids) and not isinstance(ids, jax.ShapeDtypeStruct):
        values = np.asarray(ids)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"{where}: token ids must be in [0, {vocab}), got values from {lo} to {hi}")


def _gather(w, ids):
    """w [vocab, dim], ids [batch, T] -> w[ids] [batch, T, dim]; NaN rows for bad ids."""
    ids = jnp.where(ids < 0, w.shape[0], ids)   # negatives would wrap: send them out of range
    return jnp.take(w, ids, axis=0, mode="fill", fill_value=jnp.nan)


def _scatter_add(shape, ids, dy):
    """dE = zeros(shape); dE[ids[b, t]] += dy[b, t] for every (b, t), repeats accumulating."""
    ids = jnp.where(ids < 0, shape[0], ids)
    return jnp.zeros(shape, dy.dtype).at[ids.reshape(-1)].add(dy.reshape(-1, shape[1]), mode="drop")




@dataclasses.dataclass(frozen=True)
class Embedding:
    """Lookup table E [vocab, dim]: y[b, t] = E[ids[b, t]]. Init N(0, init_std²) (GPT-2: 0.02)."""
    vocab: int
    dim: int
    init_std: float = 0.02
    input_kind = "ids"      # integer inputs: Network validates them with check_input

    def __post_init__(self):
        int_at_least("Embedding", "vocab", self.vocab)
        int_at_least("Embedding", "dim", self.dim)

    def __str__(self):
        return f"Embedding({self.vocab}, {self.dim})"

    def check_input(self, ids):
        check_ids(str(self), ids, self.vocab)

    def init(self, key, in_shape):
        """in_shape: (T,) -> (EmbeddingParams(w [vocab, dim]), (T, dim))."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 1:
            raise ValueError(f"{self}: input must be token ids [batch, T], got feature shape {in_shape}")
        w = self.init_std * jax.random.normal(key, (self.vocab, self.dim), jnp.float32)
        return EmbeddingParams(w), in_shape + (self.dim,)

    def forward(self, params, ids):
        """ids [batch, T] int -> (y [batch, T, dim], cache = ids)."""
        check_floating(str(self), "params.w", params.w)
        if params.w.shape != (self.vocab, self.dim):
            raise ValueError(f"{self}: params.w must be [{self.vocab}, {self.dim}], got {tuple(params.w.shape)}")
        self.check_input(ids)
        return _gather(params.w, ids), ids                     # y[b, t] = E[ids[b, t]]

    def backward(self, params, cache, dy):
        """dy [batch, T, dim] -> (EmbeddingParams(dw [vocab, dim]), None)."""
        ids = cache
        check_dy(str(self), dy, ids.shape + (self.dim,))
        dw = _scatter_add(params.w.shape, ids, dy)             # dL/dE[v] = Σ_{ids[b,t]=v} dy[b, t]
        return EmbeddingParams(dw), None                       # integer ids: no gradient

    def l2_mask(self, params):
        del params
        return EmbeddingParams(True)


@dataclasses.dataclass(frozen=True)
class PositionalEmbedding:
    """Learned positions P [context, dim] added to x: y[b, t] = x[b, t] + P[t], any T <= context."""
    context: int
    dim: int
    init_std: float = 0.02

    def __post_init__(self):
        int_at_least("PositionalEmbedding", "context", self.context)
        int_at_least("PositionalEmbedding", "dim", self.dim)

    def __str__(self):
        return f"PositionalEmbedding({self.context}, {self.dim})"

    def init(self, key, in_shape):
        """in_shape: (T, dim) with T <= context -> (PositionalParams(w [context, dim]), in_shape)."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 2 or in_shape[1] != self.dim or in_shape[0] > self.context:
            raise ValueError(f"{self}: input must be [batch, T <= {self.context}, {self.dim}], "
                             f"got feature shape {in_shape}")
        w = self.init_std * jax.random.normal(key, (self.context, self.dim), jnp.float32)
        return PositionalParams(w), in_shape

    def forward(self, params, x):
        """x [batch, T, dim] -> (y [batch, T, dim], cache = T)."""
        check_floating(str(self), "x", x)
        if x.ndim != 3 or x.shape[2] != self.dim or x.shape[1] > self.context:
            raise ValueError(f"{self}: x must be [batch, T <= {self.context}, {self.dim}], got {tuple(x.shape)}")
        if params.w.shape != (self.context, self.dim):
            raise ValueError(f"{self}: params.w must be [{self.context}, {self.dim}], got {tuple(params.w.shape)}")
        return x + params.w[None, :x.shape[1]], x.shape        # y[b, t] = x[b, t] + P[t]

    def backward(self, params, cache, dy):
        """dy [batch, T, dim] -> (PositionalParams(dw [context, dim]), dx [batch, T, dim])."""
        check_dy(str(self), dy, cache)
        dw = jnp.zeros_like(params.w).at[:dy.shape[1]].set(dy.sum(axis=0))   # dL/dP[t] = Σ_b dy[b, t]; 0 for t >= T
        return PositionalParams(dw), dy                        # dL/dx = dy

    def l2_mask(self, params):
        del params
        return PositionalParams(True)


@dataclasses.dataclass(frozen=True)
class TokenPositionEmbedding:
    """GPT's encoder: y[b, t] = E[ids[b, t]] + P[t]; ids [batch, T <= context] int -> [batch, T, dim]."""
    vocab: int
    context: int
    dim: int
    init_std: float = 0.02
    input_kind = "ids"

    def __post_init__(self):
        for name in ("vocab", "context", "dim"):
            int_at_least("TokenPositionEmbedding", name, getattr(self, name))

    def __str__(self):
        return f"TokenPositionEmbedding({self.vocab}, {self.context}, {self.dim})"

    def check_input(self, ids):
        check_ids(str(self), ids, self.vocab, self.context)

    def init(self, key, in_shape):
        """in_shape: (T,) -> (EncoderParams(wte [vocab, dim], wpe [context, dim]), (T, dim))."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 1 or in_shape[0] > self.context:
            raise ValueError(f"{self}: input must be token ids [batch, T <= {self.context}], "
                             f"got feature shape {in_shape}")
        kt, kp = jax.random.split(key)
        dtype = jnp.float32
        return EncoderParams(self.init_std * jax.random.normal(kt, (self.vocab, self.dim), dtype),
                             self.init_std * jax.random.normal(kp, (self.context, self.dim), dtype)), \
            in_shape + (self.dim,)

    def forward(self, params, ids):
        """ids [batch, T] int -> (y [batch, T, dim], cache = ids)."""
        for name, want in (("wte", (self.vocab, self.dim)), ("wpe", (self.context, self.dim))):
            leaf = getattr(params, name)
            check_floating(str(self), f"params.{name}", leaf)
            if leaf.shape != want:
                raise ValueError(f"{self}: params.{name} must be {list(want)}, got {tuple(leaf.shape)}")
        self.check_input(ids)
        y = _gather(params.wte, ids) + params.wpe[None, :ids.shape[1]]   # y[b, t] = E[ids[b, t]] + P[t]
        return y, ids

    def backward(self, params, cache, dy):
        """dy [batch, T, dim] -> (EncoderParams(dwte, dwpe), None)."""
        ids = cache
        check_dy(str(self), dy, ids.shape + (self.dim,))
        dwte = _scatter_add(params.wte.shape, ids, dy)         # dL/dE[v] = Σ_{ids[b,t]=v} dy[b, t]
        dwpe = jnp.zeros_like(params.wpe).at[:ids.shape[1]].set(dy.sum(axis=0))   # dL/dP[t] = Σ_b dy[b, t]
        return EncoderParams(dwte, dwpe), None

    def l2_mask(self, params):
        del params
        return EncoderParams(True, True)
