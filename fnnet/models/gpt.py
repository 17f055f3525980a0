"""A small GPT (GPT-2's architecture, pre-LN) from fnnet layers, with a tied LM head.

    net    = fnnet.gpt(vocab=96, context=64, layers=2, heads=4, dim=64)
    params = fnnet.init(net, jax.random.key(0))
    logits = fnnet.forward(net, params, ids)          # ids [batch, 64] int -> [batch, 64, 96]
    loss, grads = fnnet.value_and_grad(net, params, ids, targets)   # hand-written backward
    text_ids = generate(net, params, prompt_ids, steps=200, key=k, temperature=0.8)

The network is one layer, TiedLM(encoder, body):

    h₀ = E[ids] + P[:T]                       TokenPositionEmbedding     E [V, C], P [context, C]
    h  = body(h₀)                             per block:  h += attn(LN(h));  h += mlp(LN(h));  then LN
    logits = h Eᵀ                             the head reuses E: no weight of its own

Why one composite layer: a Network's params are one entry per layer, and a weight used
by two layers would need two entries that an optimizer could pull apart. TiedLM owns E and
uses it twice, so its backward adds both gradients:
    dE = h_flatᵀ · dlogits_flat   (head)   +   scatter_add(ids, dh₀)   (encoder)
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnnet.validate import int_at_least
from fnnet.layers.activations import GELU
from fnnet.layers.attention import CausalSelfAttention
from fnnet.layers.combinators import Positionwise, Residual, Sequential, l2_mask_of
from fnnet.layers.dense import Dense
from fnnet.layers.embedding import EncoderParams, TokenPositionEmbedding
from fnnet.layers.norm import LayerNorm
from fnnet.losses_seq import SequenceCrossEntropy


class LMParams(NamedTuple):
    encoder: EncoderParams   # wte [V, C] (also the head's weight), wpe [context, C]
    body: tuple              # the body's params (a Sequential: one entry per block)


@dataclasses.dataclass(frozen=True)
class TiedLM:
    """ids [batch, T <= context] int -> logits [batch, T, vocab] = body(E[ids] + P[:T]) · Eᵀ."""
    encoder: TokenPositionEmbedding
    body: object
    input_kind = "ids"

    def __post_init__(self):
        if not isinstance(self.encoder, TokenPositionEmbedding):
            raise TypeError(f"TiedLM: encoder must be a TokenPositionEmbedding, got {self.encoder!r}")
        for m in ("init", "forward", "backward"):
            if not callable(getattr(self.body, m, None)):
                raise TypeError(f"TiedLM: body {self.body!r} lacks method {m}")

    def __str__(self):
        e = self.encoder
        return f"TiedLM(vocab={e.vocab}, context={e.context}, dim={e.dim})"

    def check_input(self, ids):
        self.encoder.check_input(ids)

    def init(self, key, in_shape):
        """in_shape: (T,) -> (LMParams, (T, vocab))."""
        ke, kb = jax.random.split(key)
        pe, h_shape = self.encoder.init(ke, in_shape)
        pb, out = self.body.init(kb, h_shape)
        if tuple(out) != tuple(h_shape):
            raise ValueError(f"{self}: body must keep [T, {self.encoder.dim}], maps it to {tuple(out)}")
        return LMParams(pe, pb), (h_shape[0], self.encoder.vocab)

    def forward(self, params, ids):
        """ids [batch, T] -> (logits [batch, T, vocab], cache)."""
        h0, c_enc = self.encoder.forward(params.encoder, ids)           # h₀ = E[ids] + P[:T]
        h, c_body = self.body.forward(params.body, h0)                  # h = body(h₀)
        logits = jnp.einsum("btc,vc->btv", h, params.encoder.wte)        # logits = h Eᵀ
        return logits, (c_enc, c_body, h)

    def backward(self, params, cache, dlogits):
        """dlogits [batch, T, vocab] -> (LMParams of gradients, None: ids have no gradient)."""
        c_enc, c_body, h = cache
        want = h.shape[:2] + (self.encoder.vocab,)
        if dlogits.shape != want:
            raise ValueError(f"{self}: dy must have the output's shape {want}, got {tuple(dlogits.shape)}")
        wte = params.encoder.wte
        dwte_head = jnp.einsum("btv,btc->vc", dlogits, h)               # dL/dE (head) = dlogitsᵀ h
        dh = jnp.einsum("btv,vc->btc", dlogits, wte)                     # dL/dh = dlogits E
        dbody, dh0 = self.body.backward(params.body, c_body, dh)         # back through the blocks
        denc, _ = self.encoder.backward(params.encoder, c_enc, dh0)      # scatter-add into dE, Σ_b into dP
        return LMParams(EncoderParams(denc.wte + dwte_head, denc.wpe), dbody), None   # tied: both dE summed

    def l2_mask(self, params):
        """L2 (with l2 > 0) on E, P and the body's weight matrices; never biases or norms."""
        return LMParams(self.encoder.l2_mask(params.encoder), l2_mask_of(str(self), self.body, params.body))


def block(dim, heads, mlp_ratio=4, recompute=False, out_std=0.02):
    """One pre-LN transformer block on [batch, T, dim]:
    h += attn(LN(h)); h += W₂ GELU(W₁ LN(h)) (W₁: dim -> mlp_ratio·dim)."""
    attn = Residual(Sequential((LayerNorm(), CausalSelfAttention(heads, dim, recompute, out_std))))
    mlp = Residual(Sequential((LayerNorm(), Positionwise(Dense(mlp_ratio * dim)), GELU(),
                               Positionwise(Dense(dim)))))
    return (attn, mlp)


def gpt(vocab, context, layers, heads, dim, *, mlp_ratio=4, loss=None, recompute=False):
    """A GPT as an fnnet Network: ids [batch, context] int -> logits [batch, context, vocab].

    vocab: number of token ids; context: sequence length T; layers: transformer blocks;
    heads: attention heads (must divide dim); dim: model width C.
    loss: default SequenceCrossEntropy() (mean next-token cross-entropy, nats per token).
    recompute: CausalSelfAttention's cache choice (False: keep p; see fnnet/layers/attention.py).
    Attention output projections start at std 0.02/sqrt(2·layers) (GPT-2's residual scaling).
    """
    from fnnet.network import Network
    for name, v in (("vocab", vocab), ("context", context), ("layers", layers), ("heads", heads),
                    ("dim", dim), ("mlp_ratio", mlp_ratio)):
        int_at_least("gpt", name, v)
    if dim % heads:
        raise ValueError(f"gpt: heads must divide dim, got dim={dim}, heads={heads}")
    out_std = 0.02 / math.sqrt(2 * layers)
    blocks = sum((block(dim, heads, mlp_ratio, recompute, out_std) for _ in range(layers)), ())
    body = Sequential(blocks + (LayerNorm(),))
    model = TiedLM(TokenPositionEmbedding(vocab, context, dim), body)
    return Network((model,), SequenceCrossEntropy() if loss is None else loss, (context,))


def _model(net):
    layer = net.layers[0] if len(net.layers) == 1 else None
    if not isinstance(layer, TiedLM):
        raise TypeError(f"generate: net must be built by fnnet.gpt (one TiedLM layer), got {net}")
    return layer


def generate(net, params, prompt, steps, *, key=None, temperature=0.0):
    """Autoregressive sampling: prompt ids [n0] int -> ids [n0 + steps] (numpy int32).

    temperature = 0 (default): greedy (argmax each step, no key needed); > 0: sample from
    softmax(logits / temperature) with `key`. Each step reads the last `context` ids.
    """
    import numpy as np
    model = _model(net)
    prompt = np.asarray(prompt)
    if not np.issubdtype(prompt.dtype, np.integer) or prompt.ndim != 1 or prompt.size == 0:
        raise ValueError(f"generate: prompt must be a non-empty 1-D array of integer ids, got "
                         f"shape {prompt.shape} dtype {prompt.dtype}")
    if prompt.min() < 0 or prompt.max() >= model.encoder.vocab:
        raise ValueError(f"generate: prompt ids must be in [0, {model.encoder.vocab}), got "
                         f"{prompt.min()} to {prompt.max()}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"generate: steps must be an int >= 0, got {steps!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"generate: temperature must be a finite number >= 0, got {temperature!r}")
    if temperature > 0 and key is None:
        raise ValueError("generate: temperature > 0 samples and needs key=jax.random.key(...)")
    n0 = int(prompt.size)
    buf = np.zeros(max(n0 + steps, model.encoder.context), np.int32)
    buf[:n0] = prompt
    key = jax.random.key(0) if key is None else key
    from fnnet.contracts import check_params
    check_params(net, params)
    out = _generate(model, params[0], jnp.asarray(buf), steps, n0, key, float(temperature))
    return np.asarray(out)[:n0 + steps]


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _generate(model, params, buf, steps, n0, key, temperature):
    context = model.encoder.context

    def step(i, carry):
        buf, key = carry
        n = n0 + i                                               # ids known so far
        window = jax.lax.dynamic_slice(buf, (jnp.maximum(n - context, 0),), (context,))[None]
        logits = model.forward(params, window)[0][0]             # [context, V]; causal: padding unseen
        z = jax.lax.dynamic_index_in_dim(logits, jnp.minimum(n, context) - 1, keepdims=False)
        key, sub = jax.random.split(key)
        sampled = jax.random.categorical(sub, z / jnp.where(temperature > 0, temperature, 1.0))
        nxt = jnp.where(temperature > 0, sampled, jnp.argmax(z))  # temperature 0: greedy
        return buf.at[n].set(nxt.astype(buf.dtype)), key

    return jax.lax.fori_loop(0, steps, step, (buf, key))[0]
