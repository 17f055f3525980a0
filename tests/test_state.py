"""The key/state protocol (fnnet/state.py, threaded by fnnet/network.py): plain nets unchanged,
keys split per layer by fold_in, state threaded and returned, errors that name the layer.

The two toy layers here use only the protocol, so these tests do not depend on Dropout or
BatchNorm (whose own tests live in tests/layers/)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from helpers import RTOL, assert_trees_close, maybe_jit


@dataclasses.dataclass(frozen=True)
class Noise:
    """Stochastic toy: y = x ⊙ m, m ~ N(0, 1) drawn from the key; identity in eval mode."""
    stochastic = True

    def init(self, key, in_shape):
        return (), tuple(in_shape)

    def forward(self, params, x, *, key, train):
        if not train:
            return x, None
        m = jax.random.normal(key, x.shape, x.dtype)
        return x * m, m

    def backward(self, params, cache, dy):
        return (), dy if cache is None else dy * cache       # dL/dx = dL/dy ⊙ m


@dataclasses.dataclass(frozen=True)
class Center:
    """Stateful toy: train: y = x - ½·mean_batch(x), state ← 0.9·state + 0.1·mean_batch(x);
    eval: y = x - state (the running mean as a constant)."""

    def init(self, key, in_shape):
        return (), tuple(in_shape)

    def init_state(self, in_shape, dtype):
        return jnp.full(in_shape, 0.5, dtype)

    def forward(self, params, x, *, state, train):
        if not train:
            return x - state[None, :], train, state
        mu = x.mean(axis=0)
        return x - 0.5 * mu[None, :], train, 0.9 * state + 0.1 * mu

    def backward(self, params, cache, dy):
        if not cache:
            return (), dy                                    # dL/dx = dL/dy
        return (), dy - 0.5 * dy.mean(axis=0, keepdims=True)  # dL/dx = dy - ½·mean_batch(dy)


def data(dtype=jnp.float64, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, 4)), dtype), jnp.asarray(rng.integers(0, 3, n))


def make(*middle):
    return fnnet.Network((fnnet.Dense(5), *middle, fnnet.Tanh(), fnnet.Dense(3)), "softmax_cross_entropy", (4,))


def test_plain_net_is_unchanged_and_gains_state_only_when_asked():
    net = make()
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = data()
    out = fnnet.forward(net, params, x)
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(fnnet.forward(net, params, x, key=jax.random.key(3), train=True), out)
    value, grads, dx = fnnet.backprop(net, params, x, y)
    assert fnnet.init_state(net) == ((),) * 3
    s = fnnet.init_state(net)
    out2, s2 = fnnet.forward(net, params, x, state=s)
    v2, g2, dx2, s3 = fnnet.backprop(net, params, x, y, state=s)
    v3, g3, s4 = fnnet.value_and_grad(net, params, x, y, state=s)
    g4, s5 = fnnet.backward(net, params, x, y, state=s)
    l5, s6 = fnnet.loss(net, params, x, y, state=s)
    p6, s7 = fnnet.predict(net, params, x, state=s)
    assert s2 == s3 == s4 == s5 == s6 == s7 == s
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(dx2, dx)
    for g in (g2, g3, g4):
        assert_trees_close(g, grads, 0.0)
    assert float(v2) == float(v3) == float(l5) == float(value)
    np.testing.assert_array_equal(p6, fnnet.predict(net, params, x))


def test_missing_state_or_key_names_the_layer_and_the_fix():
    x, y = data()
    net = make(Center())
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    for call in (lambda: fnnet.forward(net, params, x), lambda: fnnet.backprop(net, params, x, y),
                 lambda: fnnet.loss(net, params, x, y, train=False)):
        with pytest.raises(ValueError, match=r"layer 1 \(Center\(\)\).*state=fnnet.init_state\(net\)"):
            call()
    net = make(Noise())
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    with pytest.raises(ValueError, match=r"layer 1 \(Noise\(\)\) is stochastic.*key=jax.random.key"):
        fnnet.value_and_grad(net, params, x, y)
    with pytest.raises(ValueError, match=r"layer 1 \(Noise\(\)\)"):
        fnnet.forward(net, params, x, train=True)
    # eval mode needs no key and is deterministic: Noise is the identity there
    np.testing.assert_array_equal(fnnet.forward(net, params, x), fnnet.forward(make(), params[:1] + params[2:], x))


def test_bad_train_key_and_state_are_type_and_value_errors():
    x, y = data()
    net = make(Center())
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    s = fnnet.init_state(net, jnp.float64)
    with pytest.raises(TypeError, match="train must be True or False"):
        fnnet.forward(net, params, x, state=s, train=1)
    with pytest.raises(TypeError, match="key must be one PRNG key"):
        fnnet.forward(net, params, x, state=s, key=3)
    with pytest.raises(TypeError, match="key must be one PRNG key"):
        fnnet.forward(net, params, x, state=s, key=jax.random.split(jax.random.key(0)))
    with pytest.raises(ValueError, match="one entry per layer"):
        fnnet.forward(net, params, x, state=s[:2])
    with pytest.raises(ValueError, match=r"layer 1 \(Center\(\)\): state must have shape \(5,\), got \(4,\)"):
        fnnet.forward(net, params, x, state=((), jnp.zeros(4), (), ()))
    with pytest.raises(TypeError, match=r"layer 1 \(Center\(\)\): state has dtype float32.*float64"):
        fnnet.forward(net, params, x, state=fnnet.init_state(net))
    with pytest.raises(ValueError, match=r"state contains 1 NaN"):
        fnnet.forward(net, params, x, state=((), s[1].at[2].set(jnp.nan), (), ()))
    with pytest.raises(ValueError, match=r"layer 1 \(Center\(\)\): state tree"):
        fnnet.forward(net, params, x, state=((), (s[1],), (), ()))


@pytest.mark.parametrize("jit", [False, True])
def test_keys_are_split_per_layer_by_fold_in(jit):
    net = make(Noise(), Noise())
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, _ = data()
    key = jax.random.key(7)
    fwd = maybe_jit(lambda p, x, k: fnnet.forward(net, p, x, key=k, train=True), jit)
    out = fwd(params, x, key)
    h = x @ params[0].w + params[0].b[None, :]
    h = h * jax.random.normal(jax.random.fold_in(key, 1), h.shape, h.dtype)   # layer 1's mask
    h = h * jax.random.normal(jax.random.fold_in(key, 2), h.shape, h.dtype)   # layer 2's: another one
    expected = jnp.tanh(h) @ params[4].w + params[4].b[None, :]
    assert_trees_close(out, expected, RTOL[np.dtype("float64")])
    np.testing.assert_array_equal(fwd(params, x, key), out)                   # same key, same masks
    assert not np.allclose(fwd(params, x, jax.random.key(8)), out)             # new key, new masks
    np.testing.assert_array_equal(fwd(params, x, jax.random.PRNGKey(7)),       # raw uint32 keys work too
                                  fnnet.forward(net, params, x, key=jax.random.PRNGKey(7), train=True))


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_hand_written_grads_with_key_and_state_match_jax_grad(dtype, jit):
    net = make(Center(), Noise())
    params = fnnet.init(net, jax.random.key(1), dtype)
    s = fnnet.init_state(net, dtype)
    x, y = data(dtype)
    key = jax.random.key(2)
    vg = maybe_jit(lambda p, s, x, k: fnnet.value_and_grad(net, p, x, y, state=s, key=k), jit)
    value, grads, new_s = vg(params, s, x, key)
    auto = jax.grad(lambda p: fnnet.loss(net, p, x, y, state=s, key=key)[0])(params)
    assert_trees_close(grads, auto, RTOL[np.dtype(dtype)], "hand-written vs jax.grad")
    h = x @ params[0].w + params[0].b[None, :]
    assert_trees_close(new_s[1], 0.9 * s[1] + 0.1 * h.mean(axis=0), RTOL[np.dtype(dtype)], "updated state")
    assert new_s[0] == new_s[2] == new_s[3] == new_s[4] == ()
    assert new_s[1].dtype == dtype
    # eval mode: the running mean is a constant, returned unchanged; no key needed
    out, s_eval = fnnet.forward(net, params, x, state=new_s)
    assert s_eval[1] is new_s[1]
    expected = jnp.tanh(h - new_s[1][None, :]) @ params[4].w + params[4].b[None, :]
    assert_trees_close(out, expected, RTOL[np.dtype(dtype)], "eval forward")
    g_eval, _ = fnnet.backward(net, params, x, y, state=new_s, train=False)
    auto_eval = jax.grad(lambda p: fnnet.loss(net, p, x, y, state=new_s, train=False)[0])(params)
    assert_trees_close(g_eval, auto_eval, RTOL[np.dtype(dtype)], "eval grads vs jax.grad")


def test_check_layer_and_check_network_hold_the_key_fixed_and_cover_both_modes():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 3, 3, 2)))
    drop = fnnet.check.check_layer(fnnet.Dropout(0.4), (), x, forward_key=jax.random.key(1))
    assert drop.ok and drop.max_rel_err("fd") < 1e-6
    bn = fnnet.BatchNorm()
    params = fnnet.BatchNormParams(jnp.array([1.3, 0.7]), jnp.array([0.2, -0.1]))
    st = fnnet.BatchNormState(jnp.array([0.1, -0.2]), jnp.array([1.5, 0.8]))
    for train in (True, False):
        r = fnnet.check.check_layer(bn, params, x, state=st, train=train)
        assert r.ok and r.max_rel_err("reference") < 1e-10 and r.max_rel_err("fd") < 1e-6, r
    net = fnnet.Network((fnnet.Conv2D(2, 2), fnnet.Tanh(), fnnet.BatchNorm(), fnnet.Flatten(), fnnet.Dropout(0.3),
                         fnnet.Dense(3)), "softmax_cross_entropy", (3, 3, 2))
    p = fnnet.init(net, jax.random.key(0), jnp.float64)
    y = jnp.array([0, 2, 1, 1])
    for train in (True, False):
        r = fnnet.check.check_network(net, p, x, y, state=fnnet.init_state(net, jnp.float64),
                                      forward_key=jax.random.key(2), train=train)
        assert r.ok and r.max_rel_err("fd") < 1e-6, r
    with pytest.raises(ValueError, match=r"check_layer: layer 0 \(Dropout\(0.4\)\) is stochastic"):
        fnnet.check.check_layer(fnnet.Dropout(0.4), (), x)
    with pytest.raises(ValueError, match=r"check_network: layer 2 \(BatchNorm.*init_state\(net, dtype\)"):
        fnnet.check.check_network(net, p, x, y, forward_key=jax.random.key(2))


def test_a_planted_batchnorm_bug_is_caught_in_train_mode():
    """Treating the batch statistics as constants (the eval backward in train mode) is wrong."""
    class Frozen(fnnet.BatchNorm):
        def backward(self, params, cache, dy):
            (dp, _), (_, inv) = super().backward(params, cache, dy), cache
            return dp, dy * params.gamma.reshape(inv.shape) * inv        # forgets dμ and dσ²
    x = jnp.asarray(np.random.default_rng(4).normal(size=(6, 3)))
    params = fnnet.BatchNormParams(jnp.array([1.3, 0.7, 1.1]), jnp.array([0.2, -0.1, 0.0]))
    st = fnnet.BatchNormState(jnp.zeros(3), jnp.ones(3))
    r = fnnet.check.check_layer(Frozen(), params, x, state=st, train=True)
    assert not r.ok
    assert fnnet.check.check_layer(Frozen(), params, x, state=st, train=False).ok   # right in eval mode


def _bn_dropout_net():
    # Relu before BatchNorm: a bias feeding BatchNorm directly has gradient exactly 0
    return fnnet.Network((fnnet.Conv2D(3, 2), fnnet.Relu(), fnnet.BatchNorm(), fnnet.Flatten(), fnnet.Dropout(0.3),
                          fnnet.Dense(3)), "softmax_cross_entropy", (4, 4, 1))


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, 4, 4, 1)), jnp.float32), jnp.asarray(rng.integers(0, 3, n))


def test_fit_threads_state_and_per_step_keys_and_matches_autodiff_step_for_step():
    import optax
    net, (x, y) = _bn_dropout_net(), _images()
    params = fnnet.init(net, jax.random.key(0))
    s0 = fnnet.init_state(net)
    opt = optax.sgd(0.1)
    run = lambda grad, **kw: fnnet.fit(net, params, x, y, optimizer=opt, epochs=2, batch_size=8,
                                       key=jax.random.key(5), grad=grad, state=s0, **kw)
    p1, hist, _, s1, _ = run("manual", validation=(x, y))
    assert len(hist.loss) == 2 and np.isfinite(hist.val_loss).all()
    assert not np.allclose(s1[2].mean, s0[2].mean) and s1[0] == ()
    p_auto, _, _, s_auto, _ = run("autodiff")                        # same batches, same masks per step
    assert_trees_close(p1, p_auto, RTOL[np.dtype("float32")], "fit manual vs autodiff")
    assert_trees_close(s1, s_auto, RTOL[np.dtype("float32")], "layer state manual vs autodiff")
    p_again, _, _, s_again, _ = run("manual")
    assert_trees_close((p_again, s_again), (p1, s1), 0.0, "same key, same run")
    # one epoch, then one more resumed from opt_state/state/initial_epoch: the same two epochs
    pa, _, oa, sa, _ = fnnet.fit(net, params, x, y, optimizer=opt, epochs=1, batch_size=8, key=jax.random.key(5),
                              opt_state=opt.init(params), state=s0)
    pb, _, _, sb, _ = fnnet.fit(net, pa, x, y, optimizer=opt, epochs=1, batch_size=8, key=jax.random.key(5),
                             opt_state=oa, state=sa, initial_epoch=1)
    assert_trees_close((pb, sb), (p1, s1), 0.0, "resumed")


def test_fit_refuses_a_stateful_net_without_state_and_a_stochastic_one_without_key(tmp_path):
    import optax
    net, (x, y) = _bn_dropout_net(), _images()
    params = fnnet.init(net, jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer 2 \(BatchNorm.*fit\(\.\.\., state=fnnet.init_state"):
        fnnet.fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer 4 \(Dropout\(0.3\)\) is stochastic.*fit\(\.\.\., key="):
        fnnet.fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=1, state=fnnet.init_state(net))
    # and the trained layer state survives a checkpoint
    p, _, _, s, _ = fnnet.fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=1, key=jax.random.key(0),
                        state=fnnet.init_state(net))
    fnnet.save(tmp_path / "bn.npz", net, p, state=s)
    ck = fnnet.restore(tmp_path / "bn.npz")
    assert ck.net == net
    assert_trees_close((ck.params, ck.state), (p, s), 0.0, "restored")
