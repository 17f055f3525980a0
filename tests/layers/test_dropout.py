"""Dropout: inverted scaling, the mask from the key (same key, same mask), eval identity,
backward vs jax.vjp / the twin / finite differences with the key held fixed; bad rates."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet_reference as reference
from vision_oracles import check_mid_network, check_vjp_all, random


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_dropout_against_all_oracles_with_the_key_fixed(dtype, jit):
    layer, key = fnnet.Dropout(0.3), jax.random.key(5)
    x = random((4, 3, 5), dtype, 0)
    keep = layer.forward((), x, key=key, train=True)[1]
    assert keep.dtype == jnp.bool_ and keep.shape == x.shape           # one byte per element
    check_vjp_all("Dropout(0.3)", lambda x: layer.forward((), x, key=key, train=True)[0],
                  lambda x, dy: (layer.backward((), layer.forward((), x, key=key, train=True)[1], dy)[1],),
                  lambda x: reference.dropout_forward(x, np.asarray(keep), rate=0.3),
                  lambda x, dy: (reference.dropout_backward(x, np.asarray(keep), dy, rate=0.3),), (x,), dtype, jit)


def test_inverted_scaling_keeps_the_mean_and_eval_is_the_identity():
    layer = fnnet.Dropout(0.25)
    x = jnp.full((400, 50), 2.0)
    y, keep = layer.forward((), x, key=jax.random.key(0), train=True)
    frac = float(keep.mean())
    assert abs(frac - 0.75) < 0.01                                      # 20000 draws: sd 0.003
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 2.0 / 0.75])
    assert abs(float(y.mean()) - 2.0) < 0.03                            # E[y] = x
    y_eval, cache = layer.forward((), x)
    assert y_eval is x and cache is None
    assert layer.backward((), None, x)[1] is x
    a = layer.forward((), x, key=jax.random.key(1), train=True)[1]
    b = layer.forward((), x, key=jax.random.key(1), train=True)[1]
    c = layer.forward((), x, key=jax.random.key(2), train=True)[1]
    assert bool((a == b).all()) and not bool((a == c).all())
    np.testing.assert_array_equal(fnnet.Dropout(0.0).forward((), x, key=jax.random.key(0), train=True)[0], x)


def test_dropout_mid_network_with_the_network_key():
    net = fnnet.Network((fnnet.Dense(6), fnnet.Tanh(), fnnet.Dropout(0.5), fnnet.Dense(3)),
                        "softmax_cross_entropy", (4,))
    params, x, y = check_mid_network(net, jnp.float64, jit=True, n=8, key=jax.random.key(3))
    # the network hands layer 2 the key fold_in(key, 2)
    h = jnp.tanh(x @ params[0].w + params[0].b[None, :])
    keep = jax.random.bernoulli(jax.random.fold_in(jax.random.key(3), 2), jnp.float32(0.5), h.shape)
    out = jnp.where(keep, h / 0.5, 0) @ params[3].w + params[3].b[None, :]
    np.testing.assert_allclose(fnnet.forward(net, params, x, key=jax.random.key(3), train=True), out, rtol=1e-12)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "0.5", True])
def test_rate_outside_0_1_is_refused(rate):
    with pytest.raises(ValueError, match=r"Dropout: rate must be a number in \[0, 1\)"):
        fnnet.Dropout(rate)


@pytest.mark.parametrize("shards", [1, 2, 4])
@pytest.mark.parametrize("jit", [False, True])
def test_axis_name_gives_each_shard_its_rows_of_the_whole_batch_mask(shards, jit):
    # jax.vmap(axis_name=...) emulates the shards (shard_map in fit(mesh=...)): same key on each
    x = random((8, 3, 2), jnp.float64, 0)
    key = jax.random.key(4)
    whole, keep = fnnet.Dropout(0.4).forward((), x, key=key, train=True)
    layer = fnnet.Dropout(0.4, axis_name="data")

    def one(xs):
        y, k = layer.forward((), xs, key=key, train=True)
        return y, k, layer.backward((), k, xs)[1]
    run = jax.vmap(one, axis_name="data")
    y, k, dx = (jax.jit(run) if jit else run)(x.reshape(shards, 8 // shards, 3, 2))
    np.testing.assert_array_equal(k.reshape(keep.shape), keep)
    np.testing.assert_array_equal(y.reshape(x.shape), whole)
    np.testing.assert_array_equal(dx.reshape(x.shape), fnnet.Dropout(0.4).backward((), keep, x)[1])


def test_axis_name_outside_a_mesh_is_refused_in_train_mode():
    layer = fnnet.Dropout(0.5, axis_name="data")
    x = jnp.ones((4, 2))
    with pytest.raises(ValueError, match=r"mesh axis 'data' is not bound here.*axis_name=None"):
        layer.forward((), x, key=jax.random.key(0), train=True)
    assert layer.forward((), x, train=False)[0] is x              # eval: the identity, anywhere
    with pytest.raises(ValueError, match="axis_name must be None or a mesh axis name"):
        fnnet.Dropout(0.5, axis_name="")
    assert str(layer) == "Dropout(0.5, axis_name='data')"
