"""fit's optimizer state in and out, resuming bit-identically (item 6), optax transforms
that read the loss (item 7), and DivergedError's params having a finite loss (item 2)."""
import chex
import jax
import numpy as np
import optax
import pytest

import fnnet
from helpers import assert_trees_close

KEY = jax.random.key(7)
OPTIMIZERS = {"sgd": optax.sgd(0.1), "adam": optax.adam(0.05)}
# name: (optimizer, batch_size, key)
RUNS = {"sgd-full": ("sgd", None, None), "adam-full": ("adam", None, None),
        "adam-mb4-key": ("adam", 4, KEY)}


def _problem(dtype=np.float64):
    rs = np.random.RandomState(3)
    x, y = rs.normal(size=(10, 3)).astype(dtype), rs.randint(0, 3, size=10).astype(np.int32)
    net = fnnet.mlp([3, 5, 3], activation="tanh", loss="softmax_cross_entropy")
    return net, fnnet.init(net, jax.random.key(1), dtype), x, y


def _equal(a, b, what):
    chex.assert_trees_all_equal(a, b, custom_message=what)   # bit-identical, not merely close


@pytest.mark.parametrize("run", sorted(RUNS))
def test_two_halves_equal_one_run_bit_for_bit(run):
    name, batch, key = RUNS[run]
    opt = OPTIMIZERS[name]
    net, p0, x, y = _problem()
    kw = dict(optimizer=opt, batch_size=batch, key=key)
    p_all, h_all, s_all, *_ = fnnet.fit(net, p0, x, y, epochs=6, opt_state=opt.init(p0), **kw)
    p1, h1, s1, *_ = fnnet.fit(net, p0, x, y, epochs=2, opt_state=opt.init(p0), **kw)
    p2, h2, s2, *_ = fnnet.fit(net, p1, x, y, epochs=4, opt_state=s1, initial_epoch=2, **kw)
    _equal(p2, p_all, "params")
    _equal(s2, s_all, "opt_state")
    np.testing.assert_array_equal(np.concatenate([h1.loss, h2.loss]), h_all.loss)


def test_without_opt_state_adam_restarts_so_resuming_needs_it():
    """Today's bug: a second fit call restarts Adam's moments and step count."""
    opt = OPTIMIZERS["adam"]
    net, p0, x, y = _problem()
    p_all, *_ = fnnet.fit(net, p0, x, y, optimizer=opt, epochs=6)
    p1, *_ = fnnet.fit(net, p0, x, y, optimizer=opt, epochs=3)
    p2, *_ = fnnet.fit(net, p1, x, y, optimizer=opt, epochs=3)          # fresh state: differs
    assert not np.array_equal(p2[0].w, p_all[0].w)


def test_minibatch_order_continues_from_initial_epoch():
    net, p0, x, y = _problem()
    opt = OPTIMIZERS["sgd"]
    _, h_a, *_ = fnnet.fit(net, p0, x, y, optimizer=opt, epochs=1, batch_size=4, key=KEY,
                          opt_state=opt.init(p0), initial_epoch=0)
    _, h_b, *_ = fnnet.fit(net, p0, x, y, optimizer=opt, epochs=1, batch_size=4, key=KEY,
                          opt_state=opt.init(p0), initial_epoch=5)
    assert h_a.loss[0] != h_b.loss[0]          # epoch 5's permutation, not epoch 0's


def test_bad_opt_state_and_initial_epoch():
    net, p0, x, y = _problem()
    adam, sgd = OPTIMIZERS["adam"], OPTIMIZERS["sgd"]
    with pytest.raises(ValueError, match=r"opt_state does not fit this optimizer"):
        fnnet.fit(net, p0, x, y, optimizer=adam, epochs=1, opt_state=sgd.init(p0))
    wrong = jax.tree.map(lambda a: a.astype(np.float32) if a.dtype == np.float64 else a, adam.init(p0))
    with pytest.raises(ValueError, match=r"opt_state.*mu.*must be float64\[3, 5\], got float32\[3, 5\]"):
        fnnet.fit(net, p0, x, y, optimizer=adam, epochs=1, opt_state=wrong)
    with pytest.raises(ValueError, match=r"initial_epoch must be an int >= 0, got -1"):
        fnnet.fit(net, p0, x, y, optimizer=sgd, epochs=1, initial_epoch=-1)


# ------------------------------------------------------------ item 7: optax extra args

def test_reduce_on_plateau_gets_the_loss_value():
    net, p0, x, y = _problem()
    opt = optax.chain(optax.sgd(0.5), optax.contrib.reduce_on_plateau(patience=1, factor=0.5))
    p, hist, state, *_ = fnnet.fit(net, p0, x, y, optimizer=opt, epochs=5, opt_state=opt.init(p0))
    # the oracle: the same steps by hand, passing value= as optax documents
    @jax.jit
    def step(q, s):
        value, grads = fnnet.value_and_grad(net, q, x, y)
        updates, s = opt.update(grads, s, q, value=value)
        return optax.apply_updates(q, updates), s
    s, q = opt.init(p0), p0
    for _ in range(5):
        q, s = step(q, s)
    assert_trees_close(p, q, 1e-12, "params")
    assert_trees_close(state, s, 1e-12, "opt_state")


def test_lbfgs_line_search_gets_value_grad_and_value_fn():
    net, p0, x, y = _problem()
    opt = optax.lbfgs()
    p, hist, *_ = fnnet.fit(net, p0, x, y, optimizer=opt, epochs=3)
    # the oracle: optax's documented lbfgs loop, its line search on autodiff of fnnet.loss
    f = lambda q: fnnet.loss(net, q, x, y)
    @jax.jit
    def step(q, s):
        value, grads = fnnet.value_and_grad(net, q, x, y)
        updates, s = opt.update(grads, s, q, value=value, grad=grads, value_fn=f)
        return optax.apply_updates(q, updates), s
    s, q = opt.init(p0), p0
    for _ in range(3):
        q, s = step(q, s)
    assert_trees_close(p, q, 1e-10, "params")
    assert hist.loss[-1] < hist.loss[0]


# ------------------------------------------------------------ item 2: divergence

def _linear():
    rs = np.random.RandomState(0)
    x = rs.normal(size=(8, 3)).astype(np.float32)
    y = rs.normal(size=(8, 1)).astype(np.float32)
    net = fnnet.mlp([3, 1], loss="mse")
    return net, fnnet.init(net, jax.random.key(0)), x, y


def test_diverged_params_have_a_finite_training_loss():
    """sgd(1e30): epoch 0 makes finite 1e30 weights whose loss overflows to inf. Today
    DivergedError.params are those weights; they must be the last ones with a finite loss."""
    net, p0, x, y = _linear()
    with pytest.raises(fnnet.DivergedError) as info:
        fnnet.fit(net, p0, x, y, optimizer=optax.sgd(1e30), epochs=10)
    err = info.value
    assert np.isfinite(float(fnnet.loss(net, err.params, x, y)))
    assert err.epoch == len(err.history.loss) == 0 and err.finite_loss
    _equal(err.params, p0, "initial params")


def test_non_finite_validation_loss_is_divergence():
    net, p0, x, y = _linear()
    xv = x.copy()
    xv[0] = 1e30                                   # (1e30 w)^2 overflows float32
    with pytest.raises(fnnet.DivergedError, match="validation loss inf") as info:
        fnnet.fit(net, p0, x, y, optimizer=optax.sgd(0.01), epochs=3, validation=(xv, y))
    assert not info.value.finite_loss              # even the initial params fail: said so
