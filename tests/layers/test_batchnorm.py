"""BatchNorm over [N, C] and NHWC images: train-mode backward (simplified and full forms, equal)
vs jax.vjp / the staged twin / finite differences; eval mode with running statistics as
constants; the running update with momentum; mid-network with state; bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet_reference as reference
from helpers import RTOL, assert_trees_close
from vision_oracles import check_mid_network, check_vjp_all, random

SHAPES = {"[N, C]": (6, 4), "images [N, H, W, C]": (2, 3, 4, 3)}


def train_case(shape, form, dtype, jit):
    layer = fnnet.BatchNorm(momentum=0.8, backward_form=form)
    c = shape[-1]
    x = random(shape, dtype, 0, 3.0) + 1.5
    gamma, beta = random((c,), dtype, 1) + 1.0, random((c,), dtype, 2)
    st = fnnet.BatchNormState(random((c,), dtype, 3), jnp.abs(random((c,), dtype, 4)) + 0.5)

    def fwd(g, b, x):
        return layer.forward(fnnet.BatchNormParams(g, b), x, state=st, train=True)[0]

    def vjp(g, b, x, dy):
        p = fnnet.BatchNormParams(g, b)
        dp, dx = layer.backward(p, layer.forward(p, x, state=st, train=True)[1], dy)
        return dp.gamma, dp.beta, dx

    def ref_vjp(g, b, x, dy):
        dg, db, dx = reference.batchnorm_backward(x, g, b, dy, eps=layer.eps)
        return dg, db, dx

    return check_vjp_all(f"BatchNorm {form}", fwd, vjp,
                         lambda g, b, x: reference.batchnorm_forward(x, g, b, eps=layer.eps)[0], ref_vjp,
                         (gamma, beta, x), dtype, jit)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("form", ["simplified", "full"])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_train_mode_against_all_oracles(shape, form, dtype):
    train_case(SHAPES[shape], form, dtype, jit=False)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_simplified_and_full_backward_are_equal_under_jit(shape):
    a = train_case(SHAPES[shape], "simplified", jnp.float64, jit=True)
    b = train_case(SHAPES[shape], "full", jnp.float64, jit=True)
    assert_trees_close(a, b, RTOL[np.dtype("float64")], "simplified vs full")


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_eval_mode_reads_running_statistics_as_constants(dtype, jit):
    layer = fnnet.BatchNorm()
    x = random((2, 3, 3, 2), dtype, 0, 2.0)
    gamma, beta = random((2,), dtype, 1) + 1.0, random((2,), dtype, 2)
    mean, var = random((2,), dtype, 3), jnp.abs(random((2,), dtype, 4)) + 0.5
    st = fnnet.BatchNormState(mean, var)
    y, _, new = layer.forward(fnnet.BatchNormParams(gamma, beta), x, state=st, train=False)
    assert new is st

    def fwd(g, b, x):
        return layer.forward(fnnet.BatchNormParams(g, b), x, state=st)[0]

    def vjp(g, b, x, dy):
        p = fnnet.BatchNormParams(g, b)
        dp, dx = layer.backward(p, layer.forward(p, x, state=st)[1], dy)
        return dp.gamma, dp.beta, dx

    m64, v64 = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    check_vjp_all("BatchNorm eval", fwd, vjp,
                  lambda g, b, x: reference.batchnorm_eval_forward(x, g, b, m64, v64, eps=layer.eps),
                  lambda g, b, x, dy: reference.batchnorm_eval_backward(x, g, b, m64, v64, dy, eps=layer.eps),
                  (gamma, beta, x), dtype, jit)


def test_running_statistics_update_with_momentum_and_bessel():
    layer = fnnet.BatchNorm(momentum=0.7)
    x = random((5, 2, 2, 3), jnp.float64, 0, 2.0) + 1.0
    params, _ = layer.init(None, (2, 2, 3))
    st = layer.init_state((2, 2, 3), jnp.float64)
    np.testing.assert_array_equal(st.mean, np.zeros(3))
    np.testing.assert_array_equal(st.var, np.ones(3))
    _, _, new = layer.forward(params, x, state=st, train=True)
    _, mu, var = reference.batchnorm_forward(np.asarray(x), np.ones(3), np.zeros(3))
    want = reference.batchnorm_running(np.zeros(3), np.ones(3), mu, var, 20, 0.7)
    assert_trees_close(tuple(new), want, 1e-12, "running stats")
    assert layer.l2_mask(params) == fnnet.BatchNormParams(False, False)


def test_batchnorm_mid_network_trains_with_state():
    # a tanh before each BatchNorm: a bias feeding BatchNorm directly has gradient exactly 0
    # (the batch mean removes it), where a relative comparison says nothing
    net = fnnet.Network((fnnet.Conv2D(3, 2), fnnet.Tanh(), fnnet.BatchNorm(), fnnet.Flatten(), fnnet.Dense(4),
                         fnnet.Tanh(), fnnet.BatchNorm(), fnnet.Dense(3)), "softmax_cross_entropy", (4, 4, 2))
    params, x, y = check_mid_network(net, jnp.float64, jit=True, n=6, state=True)
    s = fnnet.init_state(net, jnp.float64)
    _, _, s1 = fnnet.value_and_grad(net, params, x, y, state=s)
    assert not np.allclose(s1[2].mean, s[2].mean) and s1[0] == ()
    out, s2 = fnnet.forward(net, params, x, state=s1)                     # eval: unchanged state
    assert s2 is s1 or all(a is b for a, b in zip(jax.tree.leaves(s2), jax.tree.leaves(s1)))


def test_bad_input():
    layer = fnnet.BatchNorm()
    params, _ = layer.init(None, (4,))
    st = layer.init_state((4,), jnp.float32)
    with pytest.raises(ValueError, match=r"train mode over 1 value per channel.*the batch variance is 0"):
        layer.forward(params, jnp.ones((1, 4)), state=st, train=True)
    layer.forward(params, jnp.ones((1, 4)), state=st, train=False)          # eval: fine
    with pytest.raises(ValueError, match=r"BatchNorm.*params.gamma must be \[3\], got \(4,\)"):
        layer.forward(params, jnp.ones((2, 3)), state=st, train=True)
    with pytest.raises(ValueError, match=r"x must be \[N, C\] or images \[N, H, W, C\], got rank 3"):
        layer.forward(params, jnp.ones((2, 3, 4)), state=st, train=True)
    with pytest.raises(ValueError, match=r"input must be \[N, C\] or images"):
        layer.init(None, (3, 4))
    for kw in ({"momentum": 1.0}, {"eps": 0.0}, {"backward_form": "alt"}):
        with pytest.raises(ValueError, match="BatchNorm"):
            fnnet.BatchNorm(**kw)
    net = fnnet.Network((fnnet.Dense(4), fnnet.BatchNorm(), fnnet.Dense(2)), "mse", (3,))
    p = fnnet.init(net, jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\(momentum=0.9\)\) has state.*init_state"):
        fnnet.forward(net, p, jnp.ones((2, 3), jnp.float32))


# --- axis_name: synchronized statistics over shards --------------------------------------
# jax.vmap(axis_name=...) runs one call per shard with psum over them, in this process: the
# same collectives shard_map uses (tests/train/test_sharding_state.py runs 8 real devices).

def _sharded(layer, p, st, x, dy, shards):
    """Forward + backward of `layer` on x split into `shards` row blocks, psum over them ->
    (y, dx, dgamma, dbeta, state) with rows re-joined and per-shard param grads summed."""
    def one(xs, dys):
        y, cache, new = layer.forward(p, xs, state=st, train=True)
        dp, dx = layer.backward(p, cache, dys)
        return y, dx, dp.gamma, dp.beta, new
    split = lambda a: a.reshape(shards, a.shape[0] // shards, *a.shape[1:])   # noqa: E731
    y, dx, dg, db, new = jax.vmap(one, axis_name="data")(split(x), split(dy))
    join = lambda a: a.reshape(-1, *a.shape[2:])                             # noqa: E731
    return join(y), join(dx), dg.sum(0), db.sum(0), jax.tree.map(lambda a: a[0], new), \
        jax.tree.map(lambda a: jnp.abs(a - a[:1]).max(), new)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 2, 3)])
@pytest.mark.parametrize("form", ["simplified", "full"])
@pytest.mark.parametrize("jit", [False, True])
def test_synchronized_statistics_over_shards_equal_the_whole_batch(shape, form, jit):
    c = shape[-1]
    x = random(shape, jnp.float64, 0, 3.0) + 1.5
    dy = random(shape, jnp.float64, 5)
    p = fnnet.BatchNormParams(random((c,), jnp.float64, 1) + 1.0, random((c,), jnp.float64, 2))
    st = fnnet.BatchNormState(random((c,), jnp.float64, 3), jnp.abs(random((c,), jnp.float64, 4)) + 0.5)
    whole = fnnet.BatchNorm(momentum=0.8, backward_form=form)
    y, cache, new = whole.forward(p, x, state=st, train=True)
    dp, dx = whole.backward(p, cache, dy)
    run = lambda: _sharded(fnnet.BatchNorm(momentum=0.8, backward_form=form, axis_name="data"),  # noqa: E731
                           p, st, x, dy, shards=4 if shape[0] % 4 == 0 else 2)
    ys, dxs, dg, db, new_s, spread = jax.jit(run)() if jit else run()
    assert_trees_close((ys, dxs, dg, db, new_s), (y, dx, dp.gamma, dp.beta, new), 1e-12, "sharded vs whole")
    assert max(jax.tree.leaves(spread)) == 0.0                 # running statistics identical on every shard


def test_shards_without_axis_name_use_their_own_statistics():
    x = random((8, 3), jnp.float64, 0, 3.0) + jnp.arange(8.0)[:, None]   # shards differ in mean
    p = fnnet.BatchNormParams(jnp.ones(3), jnp.zeros(3))
    st = fnnet.BatchNormState(jnp.zeros(3), jnp.ones(3))
    ys = _sharded(fnnet.BatchNorm(), p, st, x, x, shards=2)[0]
    y = fnnet.BatchNorm().forward(p, x, state=st, train=True)[0]
    assert jnp.abs(ys - y).max() > 0.1                          # "local": per-shard statistics
    np.testing.assert_allclose(ys[:4].mean(0), 0, atol=1e-12)    # each shard normalized alone


def test_axis_name_outside_a_mesh_is_refused_in_train_mode_and_harmless_in_eval():
    layer = fnnet.BatchNorm(axis_name="data")
    x = random((4, 3), jnp.float64, 0)
    p = fnnet.BatchNormParams(jnp.ones(3), jnp.zeros(3))
    st = fnnet.BatchNormState(jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match=r"mesh axis 'data', which is not bound here.*axis_name=None"):
        layer.forward(p, x, state=st, train=True)
    y, _, _ = layer.forward(p, x, state=st, train=False)        # eval: running statistics, no psum
    np.testing.assert_allclose(y, fnnet.BatchNorm().forward(p, x, state=st, train=False)[0])
    with pytest.raises(ValueError, match="axis_name must be None or a mesh axis name"):
        fnnet.BatchNorm(axis_name=3)
    assert str(layer) == "BatchNorm(momentum=0.9, axis_name='data')"


def test_synchronized_train_mode_counts_values_over_all_shards():
    # one example per shard is fine when the shards together hold >= 2 (m = M = 4 here)
    layer = fnnet.BatchNorm(axis_name="data")
    p = fnnet.BatchNormParams(jnp.ones(2), jnp.zeros(2))
    st = fnnet.BatchNormState(jnp.zeros(2), jnp.ones(2))
    x = random((4, 2), jnp.float64, 0)
    got = _sharded(layer, p, st, x, x, shards=4)
    want = fnnet.BatchNorm().forward(p, x, state=st, train=True)
    assert_trees_close((got[0], got[4]), (want[0], want[2]), 1e-12, "one example per shard")
