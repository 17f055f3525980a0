"""fnnet.char_lstm: the layer stack, the whole net's hand-written BPTT vs jax.grad and check_network,
a short fit that learns, sampling with carried states equal to re-reading the text, bad input.
The pydoc_text validation figure is scripts/char_lstm_pydoc.py's."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from helpers import RTOL, assert_trees_close
from seq_helpers import randomize


def test_stack_and_shapes():
    net = fnnet.char_lstm(11, 7, hidden=5, embed=3, layers=2)
    assert [type(l).__name__ for l in net.layers] == ["Embedding", "LSTM", "LSTM", "Positionwise"]
    assert fnnet.out_shape(net) == (7, 11)
    params = fnnet.init(net, jax.random.key(0))
    assert params[1].wx.shape == (3, 20) and params[2].wx.shape == (5, 20) and params[3].w.shape == (5, 11)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_whole_net_backward_matches_jax_grad(dtype):
    net = fnnet.char_lstm(9, 6, hidden=5, embed=4, layers=2)
    params = randomize(fnnet.init(net, jax.random.key(1), dtype), 2, dtype)
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.integers(0, 9, (3, 6))), jnp.asarray(rng.integers(0, 9, (3, 6)))
    value, grads = jax.jit(lambda p: fnnet.value_and_grad(net, p, x, y))(params)
    av, ag = jax.jit(jax.value_and_grad(lambda p: fnnet.loss(net, p, x, y)))(params)
    assert_trees_close((value, grads), (av, ag), RTOL[np.dtype(dtype)], "char_lstm vs jax.grad")


def test_check_network_float64():
    net = fnnet.char_lstm(6, 4, hidden=3, embed=2)
    params = randomize(fnnet.init(net, jax.random.key(0), jnp.float64), 3, jnp.float64)
    rng = np.random.default_rng(1)
    x, y = jnp.asarray(rng.integers(0, 6, (2, 4))), jnp.asarray(rng.integers(0, 6, (2, 4)))
    fnnet.check.check_network(net, params, x, y, reference=None).raise_if_failed()


def test_short_fit_learns_a_periodic_text():
    ids = np.tile(np.array([0, 1, 2, 3, 1, 2]), 40)                 # period 6: predictable from context
    from fnnet import text
    x, y = text.windows(ids, 12)
    net = fnnet.char_lstm(4, 12, hidden=16, embed=4)
    params = fnnet.init(net, jax.random.key(0))
    before = float(fnnet.loss(net, params, x, y))
    params, hist, *_ = fnnet.fit(net, params, x, y, optimizer=optax.adam(1e-2), epochs=60)
    assert float(hist.loss[-1]) < 0.25 * before


def test_generate_with_carried_state_equals_rereading():
    """Greedy sampling one step at a time from the carried (h, c) picks the argmax of the full
    forward over everything so far: the state carries exactly what re-reading would compute."""
    net = fnnet.char_lstm(7, 5, hidden=6, embed=3, layers=2)
    params = randomize(fnnet.init(net, jax.random.key(2), jnp.float64), 4, jnp.float64, scale=1.0)
    prompt = np.array([3, 1, 4])
    out = fnnet.generate_lstm(net, params, prompt, 6)
    assert out.dtype == np.int32 and out.shape == (9,) and np.array_equal(out[:3], prompt)
    # one causal forward over the whole text (longer than the training context, so a Network with
    # in_shape (8,)): position n - 1's logits have read out[:n] and nothing after
    longer = fnnet.char_lstm(7, 8, hidden=6, embed=3, layers=2)
    logits = fnnet.forward(longer, params, jnp.asarray(out[None, :8]))
    np.testing.assert_array_equal(np.argmax(np.asarray(logits[0, 2:]), axis=-1), out[3:])
    sampled = fnnet.generate_lstm(net, params, prompt, 6, key=jax.random.key(0), temperature=1.0)
    assert np.array_equal(sampled, fnnet.generate_lstm(net, params, prompt, 6, key=jax.random.key(0),
                                                       temperature=1.0))


def test_bad_input():
    with pytest.raises(ValueError, match="char_lstm: hidden must be an int >= 1, got 0"):
        fnnet.char_lstm(5, 4, hidden=0)
    net = fnnet.char_lstm(5, 4, hidden=3, embed=2)
    params = fnnet.init(net, jax.random.key(0))
    with pytest.raises(ValueError, match=r"generate_lstm: prompt ids must be in \[0, 5\)"):
        fnnet.generate_lstm(net, params, np.array([1, 7]), 3)
    with pytest.raises(ValueError, match="generate_lstm: temperature > 0 samples and needs key"):
        fnnet.generate_lstm(net, params, np.array([1]), 3, temperature=0.5)
    with pytest.raises(TypeError, match="generate_lstm: net must be built by fnnet.char_lstm"):
        fnnet.generate_lstm(fnnet.gpt(5, 4, 1, 1, 4), params, np.array([1]), 3)
