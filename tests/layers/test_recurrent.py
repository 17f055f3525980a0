"""RNN, LSTM, GRU: hand-written BPTT vs jax.vjp, the step-by-step NumPy twin and float64 finite
differences; padded steps (mask channel), initial state, mid-network, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from fnnet.layers.recurrent import mask_channel
from fnnet_reference.layers import recurrent as R
from helpers import RTOL, assert_trees_close, maybe_jit
from seq_helpers import DTYPE_JIT, f64, four_way, mid_network, randomize

KINDS = {"rnn": fnnet.RNN, "lstm": fnnet.LSTM, "gru": fnnet.GRU}
B, T, C, H = 2, 5, 3, 4


def _ref_backward(kind, layer):
    """(params64, x64, dy64) -> (dparams, dx) from the twin; the mask channel's dx is 0."""
    def ref(p, x, dy):
        *g, dx = getattr(R, kind + "_backward")(x, *p, dy, return_sequences=layer.return_sequences,
                                                masked=layer.masked)
        return type(p)(*g), dx
    return ref


def _setup(kind, dtype, seed=0, masked=False, return_sequences=True, lengths=(T, 3)):
    layer = KINDS[kind](H, return_sequences=return_sequences, masked=masked)
    params = randomize(layer.init(jax.random.key(seed), (T, C + masked))[0], seed, dtype, scale=0.6)
    rng = np.random.default_rng(seed + 1)
    x = jnp.asarray(rng.normal(size=(B, T, C)), dtype)
    if masked:
        x = mask_channel(x, jnp.asarray(lengths))
    return layer, params, x, rng


# every output in float64/float32, eager and jitted; the last state only (which changes where dy
# enters the reverse scan, not the step's arithmetic) in float64 jitted
VARIANTS = [(True, dtype, jit) for dtype, jit in DTYPE_JIT] + [(False, jnp.float64, True)]


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("return_sequences,dtype,jit", VARIANTS,
                         ids=[f"{'all' if r else 'last'}-{np.dtype(d).name}-{'jit' if j else 'eager'}"
                              for r, d, j in VARIANTS])
def test_recurrent_four_witnesses(kind, return_sequences, dtype, jit):
    layer, params, x, rng = _setup(kind, dtype, return_sequences=return_sequences)
    y, _ = layer.forward(params, x)
    want = getattr(R, kind + "_forward")(f64(x), *jax.tree.map(f64, params), return_sequences=return_sequences)
    np.testing.assert_allclose(f64(y), want, rtol=0, atol=1e-5 if dtype == jnp.float32 else 1e-13)
    dy = jnp.asarray(rng.normal(size=y.shape), dtype)
    four_way(layer, params, x, dy, _ref_backward(kind, layer), jit)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("return_sequences", [True, False], ids=["all", "last"])
def test_recurrent_masked_four_witnesses(kind, return_sequences):
    layer, params, x, rng = _setup(kind, jnp.float64, masked=True, return_sequences=return_sequences)
    y, _ = layer.forward(params, x)
    dy = jnp.asarray(rng.normal(size=y.shape))
    _, dx = four_way(layer, params, x, dy, _ref_backward(kind, layer), jit=True)
    assert np.all(np.asarray(dx)[1, 3:] == 0), "padded steps must receive no gradient"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_padding_is_inert(kind):
    """Past a sequence's length: outputs are 0, the final state is the state at the length,
    padded inputs change nothing, and the gradients equal those of the truncated sequence."""
    layer, params, x, rng = _setup(kind, jnp.float64, masked=True, lengths=(T, 3))
    last = KINDS[kind](H, return_sequences=False)
    junk = x.at[1, 3:, :-1].set(jnp.asarray(rng.normal(size=(T - 3, C)) * 50))   # padding holds garbage
    y, cache = layer.forward(params, x)
    y2, cache2 = layer.forward(params, junk)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(np.asarray(y)[1, 3:], 0.0)
    short = x[1:2, :3, :-1]                                  # sequence 1 cut at its length, no mask
    h_short, c_short = last.forward(params, short)
    np.testing.assert_allclose(jax.tree.leaves(layer.final_state(cache2))[0][1:2], h_short, rtol=0, atol=1e-14)
    dy = jnp.asarray(rng.normal(size=y.shape))
    dp, dx, dinit = layer.backward_initial(params, cache2, dy)
    np.testing.assert_array_equal(np.asarray(dx)[1, 3:], 0.0)
    # gradients of sequence 1 alone equal those of its truncated run
    dy1 = dy.at[0].set(0.0)
    dp1, dx1 = layer.backward(params, cache2, dy1)
    seq = KINDS[kind](H)
    _, cs = seq.forward(params, short)
    dps, dxs = seq.backward(params, cs, dy1[1:2, :3])
    assert_trees_close((dp1, dx1[1:2, :3, :-1]), (dps, dxs), 1e-12, "padded vs truncated")


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("jit", [False, True])
def test_initial_state_and_final_state_gradients(kind, jit):
    """backward_initial's d(initial) (and a cotangent on the final state) vs jax.vjp and the twin."""
    layer, params, x, rng = _setup(kind, jnp.float64, seed=3)
    n = 2 if kind == "lstm" else 1
    init = tuple(jnp.asarray(rng.normal(size=(B, H))) for _ in range(n))
    initial = fnnet.LSTMState(*init) if kind == "lstm" else init[0]
    dy = jnp.asarray(rng.normal(size=(B, T, H)))
    dfin = tuple(jnp.asarray(rng.normal(size=(B, H))) for _ in range(n))
    dfinal = fnnet.LSTMState(*dfin) if kind == "lstm" else dfin[0]

    def fwd(p, x, s):
        y, cache = layer.forward(p, x, initial=s)
        return y, layer.final_state(cache)

    def bwd(p, x, s, dy, dfinal):
        return layer.backward_initial(p, layer.forward(p, x, initial=s)[1], dy, dfinal)

    dp, dx, dinit = maybe_jit(bwd, jit)(params, x, initial, dy, dfinal)
    _, vjp = jax.vjp(fwd, params, x, initial)
    assert_trees_close((dp, dx, dinit), vjp((dy, dfinal)), RTOL[np.dtype("float64")], "vs jax.vjp")
    # the twin: dy on every output, plus dfinal on the final h (and c via a second pass is not
    # expressible there, so compare it with dfinal on h only)
    dfinal_h = (dfin[0],) + tuple(jnp.zeros_like(d) for d in dfin[1:])
    dp2, dx2, dinit2 = layer.backward_initial(params, layer.forward(params, x, initial=initial)[1], dy,
                                              fnnet.LSTMState(*dfinal_h) if kind == "lstm" else dfinal_h[0])
    twin_initial = tuple(f64(s) for s in init) if kind == "lstm" else f64(init[0])
    *g, rdx, rinit = getattr(R, kind + "_backward")(f64(x), *jax.tree.map(f64, params), f64(dy),
                                                    dlast=f64(dfin[0]), initial=twin_initial)
    assert_trees_close((dp2, dx2, tuple(jax.tree.leaves(dinit2))),
                       (type(params)(*g), rdx, tuple(rinit) if kind == "lstm" else (rinit,)), 1e-10, "vs reference")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_mid_network(kind):
    mid_network(KINDS[kind](3), (4, 3)).raise_if_failed()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_check_layer(kind):
    """The case `fnnet check` runs: check_layer with the twin as the reference witness."""
    layer, params, x, _ = _setup(kind, jnp.float64, seed=5, masked=True, lengths=(T, 2))
    fnnet.check.check_layer(layer, params, x, reference=_ref_backward(kind, layer)).raise_if_failed()


def test_recurrent_classifier_trains_and_saves(tmp_path):
    """LSTM(last) -> Dense in a Network: fit lowers the loss; the net round-trips a checkpoint."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(32, 6, 2)))
    y = jnp.asarray((np.asarray(x)[:, :, 0].sum(1) > 0).astype(np.int32))   # the sign of a running sum
    net = fnnet.Network((fnnet.LSTM(8, return_sequences=False), fnnet.Dense(2)), "softmax_cross_entropy", (6, 2))

    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    params, hist, *_ = fnnet.fit(net, params, x, y, optimizer=optax.adam(0.05), epochs=40)
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    fnnet.save(tmp_path / "lstm.npz", net, params)
    net2, params2 = fnnet.load(tmp_path / "lstm.npz")
    assert net2 == net
    assert_trees_close(params2, params, 0.0, "checkpoint")


def test_recurrent_bad_input():
    lstm = fnnet.LSTM(4)
    p = jax.tree.map(lambda a: a.astype(jnp.float64), lstm.init(jax.random.key(0), (5, 3))[0])
    with pytest.raises(TypeError, match=r"LSTM\(4\): x has dtype float32 but the params are float64"):
        lstm.forward(p, jnp.zeros((2, 5, 3), jnp.float32))
    with pytest.raises(ValueError, match=r"LSTM\(4\): x must have 3 channels"):
        lstm.forward(p, jnp.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"LSTM\(4\): x must be sequences \[batch, T, C\]"):
        lstm.forward(p, jnp.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"LSTM\(4\): x must be a floating array"):
        lstm.forward(p, jnp.zeros((2, 5, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"LSTM\(4\): initial must be LSTMState"):
        lstm.forward(p, jnp.zeros((2, 5, 3)), initial=jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"GRU\(4, masked\): x must have 3 \+ 1 mask channel"):
        gru = fnnet.GRU(4, masked=True)
        gru.forward(gru.init(jax.random.key(0), (5, 4))[0], jnp.zeros((2, 5, 3), jnp.float32))
    with pytest.raises(ValueError, match=r"RNN\(4\): initial state must be \[2, 4\] float32"):
        rnn = fnnet.RNN(4)
        rnn.forward(rnn.init(jax.random.key(0), (5, 3))[0], jnp.zeros((2, 5, 3), jnp.float32),
                    initial=jnp.zeros((3, 4), jnp.float32))
    with pytest.raises(ValueError, match=r"LSTM\(4\): params.wh must be \[4, 16\]"):
        lstm.forward(p._replace(wh=jnp.zeros((4, 12))), jnp.zeros((2, 5, 3)))
    y, cache = lstm.forward(p, jnp.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"LSTM\(4\): dy must have the output's shape \(2, 5, 4\)"):
        lstm.backward(p, cache, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"LSTM\(4\): dfinal must be like final_state: LSTMState of \[2, 4\]"):
        lstm.backward_initial(p, cache, jnp.zeros((2, 5, 4)), dfinal=jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"RNN\(0\): hidden must be an int >= 1"):
        fnnet.RNN(0)
    with pytest.raises(ValueError, match=r"GRU\(3\): return_sequences must be True or False"):
        fnnet.GRU(3, return_sequences=1)
    with pytest.raises(ValueError, match=r"RNN\(3, masked\): needs at least one feature channel"):
        fnnet.RNN(3, masked=True).init(jax.random.key(0), (5, 1))
