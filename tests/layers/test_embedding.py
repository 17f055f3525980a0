"""Embeddings: the scatter-add backward vs jax.vjp (ids closed over), the loop twin and FD;
repeated ids accumulate; out-of-range and float ids are refused (NaN rows under jit)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.layers.embedding import EmbeddingParams, EncoderParams, PositionalParams
from helpers import RTOL, assert_trees_close
from fnnet_reference.layers import embedding as R
from seq_helpers import DTYPE_JIT, four_way, mid_network, randomize

IDS = np.array([[1, 1, 4, 1, 0], [6, 4, 4, 2, 1]])   # repeats within and across rows; 3, 5 unused


@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_embedding_four_witnesses(dtype, jit):
    layer = fnnet.Embedding(7, 3)
    params = randomize(layer.init(jax.random.key(0), (5,))[0], 0, dtype)
    dy = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 3)), dtype)
    y, _ = layer.forward(params, jnp.asarray(IDS))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(params.w)[IDS])
    dp, _ = four_way(layer, params, jnp.asarray(IDS), dy,
                     lambda p, ids, dy: (EmbeddingParams(R.embedding_backward(ids, p.w, dy)), None), jit, wrt_x=False)
    np.testing.assert_array_equal(dp.w[3], 0)                               # unused ids get no gradient


def test_repeated_ids_accumulate_and_overwrite_is_caught():
    layer = fnnet.Embedding(4, 2)
    params = randomize(layer.init(jax.random.key(0), (3,))[0], 0, jnp.float64)
    ids = jnp.array([[2, 2, 2]])
    dy = jnp.asarray(np.random.default_rng(0).normal(size=(1, 3, 2)))
    dw = layer.backward(params, layer.forward(params, ids)[1], dy)[0].w
    np.testing.assert_allclose(dw[2], dy[0].sum(axis=0), rtol=1e-15)      # dE[2] = Σ_t dy[t]
    overwrite = jnp.zeros((4, 2)).at[ids.reshape(-1)].set(dy.reshape(-1, 2))   # the classic bug
    _, vjp = jax.vjp(lambda p: layer.forward(p, ids)[0], params)
    assert_trees_close(dw, vjp(dy)[0].w, RTOL[np.dtype("float64")])
    with pytest.raises(AssertionError, match="relative error"):
        assert_trees_close(overwrite, vjp(dy)[0].w, 1e-4)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_positional_and_encoder(dtype):
    rng = np.random.default_rng(2)
    pos = fnnet.PositionalEmbedding(6, 3)                                   # context 6, used T = 5
    pp = randomize(pos.init(jax.random.key(0), (5, 3))[0], 1, dtype)
    x = jnp.asarray(rng.normal(size=(2, 5, 3)), dtype)
    dy = jnp.asarray(rng.normal(size=(2, 5, 3)), dtype)
    dp, _ = four_way(pos, pp, x, dy, lambda p, x, dy: (PositionalParams(R.positional_backward(x, p.w, dy)[0]), dy), True)
    np.testing.assert_array_equal(dp.w[5], 0)                               # position 5 unseen
    enc = fnnet.TokenPositionEmbedding(7, 6, 3)
    pe = randomize(enc.init(jax.random.key(0), (5,))[0], 2, dtype)

    def ref(p, ids, dy):
        return EncoderParams(R.embedding_backward(ids, p.wte, dy),
                             R.positional_backward(R.embedding_forward(ids, p.wte), p.wpe, dy)[0]), None
    four_way(enc, pe, jnp.asarray(IDS), dy, ref, False, wrt_x=False)


def test_positional_mid_network():
    mid_network(fnnet.PositionalEmbedding(4, 3), (3, 3)).raise_if_failed()


def test_bad_ids():
    layer = fnnet.TokenPositionEmbedding(7, 4, 3)
    params = layer.init(jax.random.key(0), (4,))[0]
    with pytest.raises(ValueError, match=r"TokenPositionEmbedding\(7, 4, 3\): token ids must be in \[0, 7\), got values from 0 to 7"):
        layer.forward(params, jnp.array([[0, 7, 1]]))
    with pytest.raises(ValueError, match=r"got values from -1 to 2"):
        layer.forward(params, jnp.array([[-1, 2]]))
    with pytest.raises(TypeError, match=r"token ids must be an integer array \[batch, T\].*float"):
        layer.forward(params, jnp.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"sequence length must be <= context 4, got T = 5"):
        layer.forward(params, jnp.zeros((1, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"token ids must be \[batch, T\], got shape \(3,\)"):
        layer.forward(params, jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="Embedding: vocab must be an int >= 1"):
        fnnet.Embedding(0, 3)


def test_out_of_range_under_jit_is_nan_not_clamped():
    layer = fnnet.Embedding(5, 2)
    params = layer.init(jax.random.key(0), (3,))[0]
    y = jax.jit(lambda ids: layer.forward(params, ids)[0])(jnp.array([[1, 5, -1]]))
    assert np.isfinite(y[0, 0]).all() and np.isnan(y[0, 1]).all() and np.isnan(y[0, 2]).all()
    dy = jnp.ones((1, 3, 2))
    dw = jax.jit(lambda ids: layer.backward(params, ids, dy)[0].w)(jnp.array([[1, 5, -1]]))
    np.testing.assert_array_equal(dw.sum(axis=1), [0, 2, 0, 0, 0])         # bad ids drop their gradient


def test_embedding_check_layer_with_integer_ids():
    """fnnet.check.check_layer holds integer ids fixed and compares dparams four ways."""
    layer = fnnet.Embedding(7, 3)
    params = randomize(layer.init(jax.random.key(0), (5,))[0], 4, jnp.float64)

    def reference(p, ids, ct):
        return (EmbeddingParams(R.embedding_backward(np.asarray(ids).astype(np.int64), p.w, ct)),)   # dparams only
    report = fnnet.check.check_layer(layer, params, jnp.asarray(IDS), reference=reference)
    report.raise_if_failed()
