"""A character-level LSTM language model from fnnet layers (Karpathy's char-rnn, CS231n's
captioning RNN), beside the GPT.

    net    = fnnet.char_lstm(vocab=103, context=64, hidden=256, embed=32)
    params = fnnet.init(net, jax.random.key(0))
    logits = fnnet.forward(net, params, ids)           # ids [batch, 64] int -> [batch, 64, 103]
    loss, grads = fnnet.value_and_grad(net, params, ids, targets)   # hand-written BPTT
    text_ids = generate_lstm(net, params, prompt_ids, steps=200, key=k, temperature=0.8)

The network: Embedding(vocab, embed) -> LSTM(hidden) (× layers) -> Positionwise(Dense(vocab)).
Each LSTM reads the whole window [batch, T, ·] and returns every step's h; its backward is
the reverse scan of fnnet/layers/recurrent.py. Training windows start from a zero state.
Sampling carries every LSTM's (h, c) from one character to the next, so a sample is not
limited to `context` characters.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from fnnet.validate import int_at_least
from fnnet.layers.combinators import Positionwise
from fnnet.layers.dense import Dense
from fnnet.layers.embedding import Embedding
from fnnet.layers.recurrent import LSTM
from fnnet.losses_seq import SequenceCrossEntropy


def char_lstm(vocab, context, hidden=256, embed=32, layers=1, *, loss=None):
    """ids [batch, context] int -> logits [batch, context, vocab].

    vocab: number of token ids; context: training window length T; hidden: LSTM width H;
    embed: embedding width; layers: stacked LSTMs. loss: default SequenceCrossEntropy().
    The embedding starts at N(0, 1/embed) (unit-norm rows: an LSTM's input is not summed
    with positions, unlike the GPT's 0.02-scaled one).
    """
    from fnnet.network import Network
    for name, v in (("vocab", vocab), ("context", context), ("hidden", hidden), ("embed", embed),
                    ("layers", layers)):
        int_at_least("char_lstm", name, v)
    stack = (Embedding(vocab, embed, init_std=1 / math.sqrt(embed)),) + tuple(LSTM(hidden) for _ in range(layers))
    return Network(stack + (Positionwise(Dense(vocab)),), SequenceCrossEntropy() if loss is None else loss,
                   (context,))


def _parts(net):
    layers = net.layers
    ok = (len(layers) >= 3 and isinstance(layers[0], Embedding) and isinstance(layers[-1], Positionwise)
          and all(isinstance(l, LSTM) and l.return_sequences and not l.masked for l in layers[1:-1]))
    if not ok:
        raise TypeError(f"generate_lstm: net must be built by fnnet.char_lstm, got {net}")
    return layers


def generate_lstm(net, params, prompt, steps, *, key=None, temperature=0.0):
    """Autoregressive sampling: prompt ids [n0] int -> ids [n0 + steps] (numpy int32).

    The prompt is read in one forward (every LSTM from a zero state); then each new character
    is one LSTM step from the carried states. temperature = 0: greedy; > 0: sample from
    softmax(logits / temperature) with `key`.
    """
    import numpy as np
    layers = _parts(net)
    vocab = layers[0].vocab
    prompt = np.asarray(prompt)
    if not np.issubdtype(prompt.dtype, np.integer) or prompt.ndim != 1 or prompt.size == 0:
        raise ValueError(f"generate_lstm: prompt must be a non-empty 1-D array of integer ids, got "
                         f"shape {prompt.shape} dtype {prompt.dtype}")
    if prompt.min() < 0 or prompt.max() >= vocab:
        raise ValueError(f"generate_lstm: prompt ids must be in [0, {vocab}), got {prompt.min()} to {prompt.max()}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"generate_lstm: steps must be an int >= 0, got {steps!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"generate_lstm: temperature must be a finite number >= 0, got {temperature!r}")
    if temperature > 0 and key is None:
        raise ValueError("generate_lstm: temperature > 0 samples and needs key=jax.random.key(...)")
    from fnnet.contracts import check_params
    check_params(net, params)
    key = jax.random.key(0) if key is None else key
    out = _generate(layers, tuple(params), jnp.asarray(prompt[None, :], jnp.int32), steps, key, float(temperature))
    return np.concatenate([prompt.astype(np.int32), np.asarray(out)])


def _run(layers, params, ids, states):
    """ids [1, n] -> (logits of the last position [vocab], the LSTMs' states after it)."""
    h, _ = layers[0].forward(params[0], ids)
    new = []
    for layer, p, s in zip(layers[1:-1], params[1:-1], states):
        h, cache = layer.forward(p, h, initial=s)
        new.append(layer.final_state(cache))
    logits, _ = layers[-1].forward(params[-1], h[:, -1:])
    return logits[0, -1], tuple(new)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _generate(layers, params, prompt, steps, key, temperature):
    logits, states = _run(layers, params, prompt, tuple(None for _ in layers[1:-1]))   # zero initial states

    def pick(z, key):
        sampled = jax.random.categorical(key, z / jnp.where(temperature > 0, temperature, 1.0))
        return jnp.where(temperature > 0, sampled, jnp.argmax(z)).astype(jnp.int32)   # temperature 0: greedy

    def step(carry, _):
        logits, states, key = carry
        key, sub = jax.random.split(key)
        nxt = pick(logits, sub)
        logits, states = _run(layers, params, nxt.reshape(1, 1), states)
        return (logits, states, key), nxt

    return jax.lax.scan(step, (logits, states, key), None, length=steps)[1]
