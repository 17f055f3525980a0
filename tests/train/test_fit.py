"""fnnet.fit and fnnet.accuracy: oracles (autodiff, a hand-rolled SGD loop), convergence,
history, batching, bad input, divergence and progress.

Small nets and few epochs: each distinct fit configuration compiles once, so the
optimizers are module-level objects (jit caches on their identity).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
import fnnet.datasets
from helpers import RTOL, assert_trees_close

F64, F32 = RTOL[np.dtype("float64")], RTOL[np.dtype("float32")]
SGD = optax.sgd(0.1)
KEY = jax.random.key(42)
EPOCHS = 3
# One standard problem, so that tests share compiled loops: fit's jit cache is keyed on
# (net, optimizer object, batching, epochs per chunk) and the data's shapes and dtypes.
BATCHINGS = {"full": (None, None), "mb4-rem2": (4, KEY), "per-sample": (1, None),
             "per-sample-shuffled": (1, KEY)}


def _data(n=10, d=3, k=3, dtype=np.float64, seed=0):
    rs = np.random.RandomState(seed)
    return rs.normal(size=(n, d)).astype(dtype), rs.randint(0, k, size=n).astype(np.int32)


def _classifier(dtype=np.float64):
    """3-4-3 tanh net, softmax cross-entropy with an L2 term, integer labels."""
    net = fnnet.mlp([3, 4, 3], activation="tanh", loss="softmax_cross_entropy", l2=0.01)
    return net, fnnet.init(net, jax.random.key(0), dtype)


def _fit(batching="full", dtype=np.float64, **kw):
    net, p0 = _classifier(dtype)
    x, y = _data(dtype=dtype)
    batch_size, key = BATCHINGS[batching]
    kw = dict(dict(optimizer=SGD, epochs=EPOCHS, batch_size=batch_size, key=key), **kw)
    return fnnet.fit(net, p0, x, y, **kw)


@functools.partial(jax.jit, static_argnums=0)
def _hand_step(net, params, xb, yb, lr):
    """(params - lr * fnnet.backward, fnnet.loss before the step); jitted only for speed."""
    grads = fnnet.backward(net, params, xb, yb)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads), fnnet.loss(net, params, xb, yb)


def hand_sgd(net, params, x, y, lr, epochs, batch=None, key=None):
    """The oracle: a Python loop of SGD steps; epoch e's order is permutation(fold_in(key, e), n)
    as fit documents, and the last batch of an epoch may be smaller."""
    n = len(x)
    k = batch or n
    losses = []
    for e in range(epochs):
        shuffle = key is not None and k < n
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), n)) if shuffle else np.arange(n)
        step_losses = []
        for s in range(0, n, k):
            idx = order[s:s + k]
            params, value = _hand_step(net, params, x[idx], y[idx], lr)
            step_losses.append(float(value))
        losses.append(np.mean(step_losses))
    return params, np.array(losses)


# ------------------------------------------------------------------ oracles

@pytest.mark.parametrize("batching", ["full", "mb4-rem2", "per-sample"])
def test_manual_equals_autodiff_float64(batching):
    pm, hm, *_ = _fit(batching, grad="manual")
    pa, ha, *_ = _fit(batching, grad="autodiff")
    assert_trees_close(pm, pa, F64, "params")
    assert_trees_close(hm.loss, ha.loss, F64, "history.loss")
    assert not np.allclose(pm[0].w, _classifier()[1][0].w)       # it did train


@pytest.mark.parametrize("batching", ["per-sample"])
def test_manual_equals_autodiff_float32(batching):
    pm, *_ = _fit(batching, np.float32, grad="manual")
    pa, *_ = _fit(batching, np.float32, grad="autodiff")
    assert pm[0].w.dtype == np.float32
    assert_trees_close(pm, pa, F32, "params")


@pytest.mark.parametrize("batching", list(BATCHINGS))
def test_optax_sgd_equals_hand_rolled_loop(batching):
    params, hist, *_ = _fit(batching)
    net, p0 = _classifier()
    x, y = _data()
    want, want_losses = hand_sgd(net, p0, x, y, 0.1, EPOCHS, *BATCHINGS[batching])
    assert_trees_close(params, want, F64, "params")
    assert_trees_close(hist.loss, want_losses, F64, "history.loss")


def test_xor_converges_per_sample_sgd():
    x, y, _, _ = fnnet.datasets.xor()
    net = fnnet.mlp([2, 3, 1], activation="tanh", output="tanh", loss="mse")
    params = fnnet.init(net, jax.random.key(1))
    params, hist, *_ = fnnet.fit(net, params, x, y, optimizer=SGD, epochs=1000, batch_size=1)
    np.testing.assert_array_equal(np.round(fnnet.predict(net, params, x)), y)
    assert fnnet.accuracy(net, params, x, y) == 1.0
    assert hist.loss.dtype == np.float32 and hist.loss[-1] < 1e-2 < hist.loss[0]


# ------------------------------------------------------------------ history

loss = jax.jit(fnnet.loss, static_argnums=0)     # oracle, jitted for speed only


def test_history_full_batch_matches_loss_and_validation():
    net, p0 = _classifier()
    x, y = _data()
    xv, yv = _data(seed=1)
    params, hist, *_ = _fit(validation=(xv, yv))
    assert [len(h) for h in hist] == [EPOCHS] * 3 and hist.loss.dtype == np.float64
    p1, _ = hand_sgd(net, p0, x, y, 0.1, 1)
    np.testing.assert_allclose(hist.loss[:2], [loss(net, p0, x, y), loss(net, p1, x, y)], rtol=F64)
    np.testing.assert_allclose(hist.val_loss[0], loss(net, p1, xv, yv), rtol=F64)
    np.testing.assert_allclose(hist.val_loss[-1], loss(net, params, xv, yv), rtol=F64)
    assert hist.val_accuracy[-1] == fnnet.accuracy(net, params, xv, yv)
    assert np.all((0 <= hist.val_accuracy) & (hist.val_accuracy <= 1))


def test_history_without_validation_has_none():
    _, hist, *_ = _fit()
    assert isinstance(hist, fnnet.History)
    assert hist.loss.shape == (EPOCHS,) and hist.val_loss is None and hist.val_accuracy is None


def test_integer_and_one_hot_labels_train_identically():
    net, p0 = _classifier()
    x, y = _data()
    xv, yv = _data(seed=1)
    pi, hi, *_ = _fit(validation=(xv, yv))
    oh = lambda labels: fnnet.datasets.one_hot(labels, 3, np.float64)
    po, ho, *_ = fnnet.fit(net, p0, x, oh(y), optimizer=SGD, epochs=EPOCHS, validation=(xv, oh(yv)))
    assert_trees_close(pi, po, F64, "params")
    for a, b in zip(hi, ho):
        np.testing.assert_allclose(a, b, rtol=F64)


def test_caller_params_survive_donation():
    net, p0 = _classifier()
    x, y = _data()
    before = jax.tree.map(np.array, p0)
    fnnet.fit(net, p0, x, y, optimizer=SGD, epochs=EPOCHS)
    assert_trees_close(p0, before, 0.0, "caller's params")


# ------------------------------------------------------------------ batching

def test_shuffling_is_deterministic_per_key():
    a, b = _fit("mb4-rem2")[0], _fit("mb4-rem2")[0]
    c = _fit("mb4-rem2", key=jax.random.key(7))[0]
    assert_trees_close(a, b, 0.0, "same key")
    assert not np.allclose(a[0].w, c[0].w)
    assert not np.allclose(_fit("per-sample")[0][0].w, _fit("per-sample-shuffled")[0][0].w)


def test_remainder_batch_is_trained_on():
    """n=5, batch 2: only example 4 has a nonzero gradient; it lands in some step each epoch."""
    net = fnnet.Network((fnnet.Dense(1),), "mse", (1,))
    params = (fnnet.DenseParams(jnp.zeros((1, 1)), jnp.zeros(1)),)
    x = np.ones((5, 1))
    y = np.array([[0.0], [0.0], [0.0], [0.0], [1.0]])
    for key in (jax.random.key(0), jax.random.key(1), jax.random.key(2)):
        p, hist, *_ = fnnet.fit(net, params, x, y, optimizer=SGD, epochs=1, batch_size=2, key=key)
        assert float(p[0].b[0]) != 0.0
        assert hist.loss[0] > 0


# ------------------------------------------------------------------ progress and chunks

def test_progress_callable_between_chunks_and_chunking_changes_nothing():
    xv, yv = _data(seed=1)
    calls = []
    p, hist, *_ = _fit(epochs=5, validation=(xv, yv), chunk_epochs=2, progress=lambda e, h: calls.append((e, h)))
    assert [e for e, _ in calls] == [2, 4, 5]
    for e, h in calls:
        assert len(h.loss) == len(h.val_loss) == len(h.val_accuracy) == e
        np.testing.assert_array_equal(h.loss, hist.loss[:e])
    p1, hist1, *_ = _fit(epochs=5, validation=(xv, yv))
    assert_trees_close(p, p1, F64, "chunked vs single scan")
    for a, b in zip(hist, hist1):
        np.testing.assert_allclose(a, b, rtol=F64)


def test_default_progress_chunks_adapt_without_changing_results():
    calls = []
    p, hist, *_ = _fit("per-sample", epochs=EPOCHS, progress=lambda e, h: calls.append((e, len(h.loss))))
    assert calls[-1] == (EPOCHS, EPOCHS) and all(e == n for e, n in calls)
    assert [e for e, _ in calls] == sorted({e for e, _ in calls})          # strictly increasing
    p1, hist1, *_ = _fit("per-sample")
    assert_trees_close(p, p1, 0.0, "same executable, other chunking")
    np.testing.assert_array_equal(hist.loss, hist1.loss)


def test_progress_true_off_a_terminal_writes_plain_lines(capsys):
    """stderr is not a TTY under capsys: whole lines, never a '\\r' redraw (item 11)."""
    xv, yv = _data(seed=1)
    _fit(epochs=5, validation=(xv, yv), chunk_epochs=2, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "\r" not in captured.err
    lines = captured.err.splitlines()
    assert lines[0] == "epoch 0/5: starting (compiling)"
    assert [line.split(" ")[1] for line in lines[1:]] == ["2/5", "4/5", "5/5"]
    assert "(100%)" in lines[-1] and "val_loss" in lines[-1] and "ETA" in lines[-1]


class _Terminal:
    """A stream that says it is a terminal, recording what is written."""
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_bar_on_a_terminal_fits_its_width_and_labels_the_split():
    from fnnet.train.progress import ProgressBar
    xv, yv = _data(seed=1)
    term = _Terminal()
    bar = ProgressBar(6, label="test", stream=term, width=80)
    _fit(epochs=6, validation=(xv, yv), chunk_epochs=2, progress=bar)
    frames = [f for f in term.text.replace("\n", "\r").split("\r") if f.strip()]
    assert frames and all(len(f) <= 80 for f in frames)                 # no wrapping at 80 columns
    last_bar = [f for f in frames if "6/6" in f][-1]
    assert "test_loss" in frames[-1] and "val_loss" not in term.text      # the metrics, below the bar
    assert "epoch/s" in last_bar or "s/epoch" in last_bar                # tqdm's rate


# ------------------------------------------------------------------ bad input

def _bad_cases():
    x, y = _data()
    nan_x = x.copy(); nan_x[2, 1] = np.nan
    big_label = y.copy(); big_label[0] = 3
    neg_label = y.copy(); neg_label[1] = -1
    ok = dict(x=x, y=y, epochs=1)
    return [
        (dict(ok, x=nan_x), r"training data.*NaN/Inf.*\(2, 1\)"),
        (dict(ok, y=y[:-1]), r"x has 10 examples but y has shape \(9,\)"),
        (dict(ok, y=big_label), r"labels must be in \[0, 3\), got values from 0 to 3"),
        (dict(ok, y=neg_label), r"labels must be in \[0, 3\), got values from -1"),
        (dict(ok, x=x[:0], y=y[:0]), r"x is empty"),
        (dict(ok, epochs=0), r"epochs must be an int >= 1, got 0"),
        (dict(ok, epochs=2.5), r"epochs must be an int >= 1, got 2.5"),
        (dict(ok, batch_size=0), r"batch_size must be an int in \[1, 10\], got 0"),
        (dict(ok, batch_size=11), r"batch_size must be an int in \[1, 10\], got 11"),
        (dict(ok, batch_size=4), r"batch_size=4 < n=10 .* needs an explicit key"),
        (dict(ok, grad="jax"), r"grad must be one of \('manual', 'autodiff'\), got 'jax'"),
        (dict(ok, validation=(nan_x, y)), r"validation data.*NaN/Inf"),
        (dict(ok, validation=(x, big_label)), r"validation data.*labels must be in \[0, 3\)"),
        (dict(ok, validation=(x, y[:3])), r"validation data: x has 10 examples but y has shape \(3,\)"),
        (dict(ok, validation=x), r"validation must be a pair"),
        (dict(ok, chunk_epochs=0, progress=True), r"chunk_epochs must be an int >= 1"),
    ]


@pytest.mark.parametrize("kwargs,message", _bad_cases())
def test_bad_input_raises_value_error(kwargs, message):
    net, p0 = _classifier()
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=message):
        fnnet.fit(net, p0, kwargs.pop("x"), kwargs.pop("y"), optimizer=SGD, **kwargs)


def test_bad_targets_nonfinite_and_wrong_types():
    net = fnnet.mlp([3, 2], loss="mse")
    x, _ = _data()
    y = np.zeros((10, 2)); y[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"fit: training data: mse: target contains 1 NaN/Inf"):
        fnnet.fit(net, fnnet.init(net, KEY, np.float64), x, y, optimizer=SGD, epochs=1)
    net, p0 = _classifier()
    x, y = _data()
    for kw, exc, msg in [(dict(optimizer="sgd"), TypeError, "optax GradientTransformation"),
                         (dict(optimizer=SGD, progress="yes"), TypeError, "progress must be"),
                         (dict(optimizer=SGD, batch_size=4, key=3), TypeError, "key must be a jax PRNG key"),
                         (dict(optimizer=SGD, x=x.astype(np.float32)), TypeError, "dtype float32 but the params are float64")]:
        with pytest.raises(exc, match=msg):
            fnnet.fit(net, p0, kw.pop("x", x), y, epochs=1, **kw)
    bad = jax.tree.map(lambda a: a, p0)
    bad = (fnnet.DenseParams(bad[0].w.at[0, 0].set(jnp.nan), bad[0].b),) + bad[1:]
    with pytest.raises(ValueError, match=r"fit: params\[0\]\.w contains 1 NaN/Inf"):
        fnnet.fit(net, bad, x, y, optimizer=SGD, epochs=1)


# ------------------------------------------------------------------ divergence

LINEAR = fnnet.Network((fnnet.Dense(1),), "mse", (2,))
HUGE_LR = optax.sgd(30.0)


def _linear_problem(dtype):
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0], [2.0, 1.0]], dtype)
    return x, (x @ np.array([[1.0], [-1.0]])).astype(dtype), fnnet.init(LINEAR, jax.random.key(0), dtype)


@pytest.mark.parametrize("dtype,chunk", [(np.float64, None), (np.float32, 7)])
def test_divergence_raises_with_last_finite_params(dtype, chunk):
    x, y, p0 = _linear_problem(dtype)
    seen = []
    with pytest.raises(fnnet.DivergedError) as info:
        fnnet.fit(LINEAR, p0, x, y, optimizer=HUGE_LR, epochs=1000, chunk_epochs=chunk,
                  progress=(lambda e, h: seen.append(e)) if chunk else None)
    err = info.value
    assert isinstance(err, FloatingPointError) and isinstance(err.epoch, int)
    assert 5 < err.epoch < 1000 and f"epoch {err.epoch} (0-based)" in str(err)
    assert len(err.history.loss) == err.epoch and np.all(np.isfinite(err.history.loss))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(err.params))
    want, hist, *_ = fnnet.fit(LINEAR, p0, x, y, optimizer=HUGE_LR, epochs=err.epoch, chunk_epochs=chunk or 1000)
    assert_trees_close(err.params, want, RTOL[np.dtype(dtype)], "params before the bad epoch")
    np.testing.assert_array_equal(err.history.loss, hist.loss)
    if chunk:
        assert seen == list(range(chunk, err.epoch // chunk * chunk + 1, chunk))


def test_divergence_at_epoch_zero_keeps_initial_params():
    x, y, p0 = _linear_problem(np.float64)
    with pytest.raises(fnnet.DivergedError) as info:
        fnnet.fit(LINEAR, p0, x * 1e200, y, optimizer=HUGE_LR, epochs=1000)
    assert info.value.epoch == 0 and len(info.value.history.loss) == 0
    assert_trees_close(info.value.params, p0, 0.0, "initial params")


# ------------------------------------------------------------------ accuracy

def test_accuracy_rules():
    net, p0 = _classifier()
    x, y = _data()
    pred = np.argmax(np.asarray(fnnet.predict(net, p0, x)), axis=1)
    assert fnnet.accuracy(net, p0, x, y) == np.mean(pred == y)
    assert fnnet.accuracy(net, p0, x, fnnet.datasets.one_hot(y, 3, np.float64)) == np.mean(pred == y)
    assert fnnet.accuracy(net, p0, x, pred.astype(np.int32)) == 1.0

    bce = fnnet.mlp([3, 1], loss="sigmoid_binary_cross_entropy")
    pb = (fnnet.DenseParams(jnp.array([[1.0], [0.0], [0.0]]), jnp.zeros(1)),)
    t = (x[:, :1] > 0).astype(np.float64)                    # sigmoid(x0) > 0.5 exactly when x0 > 0
    assert fnnet.accuracy(net=bce, params=pb, x=x, y=t) == 1.0
    assert fnnet.accuracy(bce, pb, x, 1 - t) == 0.0
    assert fnnet.accuracy(bce, pb, x, t[:, 0].astype(np.int32)) == 1.0

    tanh, pt, x3 = fnnet.mlp([3, 1], output="tanh"), pb + ((),), 3 * x
    out = np.asarray(fnnet.predict(tanh, pt, x3))[:, 0]        # tanh(3 x0) in (-1, 1)
    assert fnnet.accuracy(tanh, pt, x3, np.round(out)[:, None]) == 1.0
    want = np.mean(np.round(out) == (out > 0.5))             # < 1: some outputs are < -0.5
    assert 0 < want < 1
    assert fnnet.accuracy(tanh, pt, x3, (out > 0.5).astype(np.float64)[:, None]) == want

    multi = fnnet.mlp([3, 2], loss="sigmoid_binary_cross_entropy")
    pm = (fnnet.DenseParams(jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), jnp.zeros(2)),)
    tm = (x[:, :2] > 0).astype(np.float64)
    tm[0] = 1 - tm[0]                                        # two wrong elements out of 20
    assert fnnet.accuracy(multi, pm, x, tm) == pytest.approx(0.9)


def test_accuracy_bad_input():
    net, p0 = _classifier()
    x, y = _data()
    with pytest.raises(ValueError, match=r"accuracy: y must have x's batch size 10"):
        fnnet.accuracy(net, p0, x, y[:4])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        fnnet.accuracy(net, p0, x, y + 1)
    with pytest.raises(ValueError, match=r"\[batch, 3\] targets, got \(10, 2\)"):
        fnnet.accuracy(net, p0, x, np.zeros((10, 2)))
    with pytest.raises(TypeError, match="must be integer class labels"):
        fnnet.accuracy(net, p0, x, y.astype(np.float64))
    with pytest.raises(ValueError, match="NaN/Inf"):
        fnnet.accuracy(net, p0, x + np.nan, y)


def test_accuracy_of_a_net_with_batchnorm_reads_the_running_statistics():
    r = np.random.default_rng(7)
    net = fnnet.Network((fnnet.Dense(6), fnnet.BatchNorm(), fnnet.Relu(), fnnet.Dense(3)),
                        "softmax_cross_entropy", (4,))
    x, y = r.standard_normal((30, 4)).astype(np.float32), r.integers(0, 3, 30).astype(np.int32)
    params, state = fnnet.init(net, jax.random.key(0)), fnnet.init_state(net, jnp.float32)
    params, _, _, state, _ = fnnet.fit(net, params, x, y, optimizer=optax.adam(1e-2), epochs=30, state=state)
    acc = fnnet.accuracy(net, params, x, y, state=state)
    pred = np.asarray(fnnet.predict(net, params, x, state=state)[0]).argmax(-1)   # eval mode
    assert acc == float(np.mean(pred == y)) and acc > 0.5
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm.*accuracy\(\.\.\., state="):
        fnnet.accuracy(net, params, x, y)
    with pytest.raises(ValueError, match="state must be a tuple with one entry per layer"):
        fnnet.accuracy(net, params, x, y, state=state[:2])


def test_divergence_of_a_batchnorm_net_keeps_the_state_that_goes_with_its_params():
    r = np.random.default_rng(8)
    net = fnnet.Network((fnnet.Dense(6), fnnet.BatchNorm(), fnnet.Relu(), fnnet.Dense(3)),
                        "softmax_cross_entropy", (4,))
    x, y = r.standard_normal((30, 4)).astype(np.float32), r.integers(0, 3, 30).astype(np.int32)
    params, state = fnnet.init(net, jax.random.key(0)), fnnet.init_state(net, jnp.float32)
    with pytest.raises(fnnet.DivergedError) as info:
        fnnet.fit(net, params, x, y, optimizer=optax.sgd(1e30), epochs=20, state=state)
    e = info.value
    assert e.state is not None and len(e.state) == len(net.layers)
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(e.state))
    loss = fnnet.loss(net, e.params, x, y, state=e.state, train=False)[0]
    assert np.isfinite(float(loss))
    # a stateless net's error has no state
    plain = fnnet.Network((fnnet.Dense(3),), "softmax_cross_entropy", (4,))
    with pytest.raises(fnnet.DivergedError) as info:
        fnnet.fit(plain, fnnet.init(plain, jax.random.key(0)), x * 1e20, y, optimizer=optax.sgd(1e30), epochs=5)
    assert info.value.state is None


# ------------------------------------------------------------------ the result, checkpoints, Ctrl-C

ADAM = optax.adam(1e-2)


def test_the_result_is_one_named_tuple_however_the_run_was_started():
    """FitResult(params, history, opt_state, state, epoch): the same five fields with or
    without opt_state=, and epoch is absolute (initial_epoch + epochs run)."""
    fresh = _fit(epochs=2)
    given = _fit(epochs=2, opt_state=SGD.init(_classifier()[1]), initial_epoch=5)
    assert isinstance(fresh, fnnet.FitResult) and fresh._fields == ("params", "history", "opt_state", "state",
                                                                    "epoch")
    assert fresh.epoch == 2 and given.epoch == 7 and fresh.state is None
    assert jax.tree.structure(fresh.opt_state) == jax.tree.structure(SGD.init(fresh.params))
    assert_trees_close(fresh.params, given.params, 0.0, "full batch: initial_epoch changes nothing")
    # resuming needs nothing but the result, however its run was started
    net, p0 = _classifier()
    x, y = _data()
    kw = dict(optimizer=ADAM, batch_size=4, key=KEY)
    one = fnnet.fit(net, p0, x, y, epochs=1, **kw)
    two = fnnet.fit(net, one.params, x, y, epochs=2, opt_state=one.opt_state, initial_epoch=one.epoch, **kw)
    three = fnnet.fit(net, p0, x, y, epochs=3, **kw)
    assert two.epoch == 3
    assert_trees_close((two.params, two.opt_state), (three.params, three.opt_state), 0.0, "resumed")


def test_checkpoint_every_n_epochs_calls_the_hook_with_the_state_at_that_epoch(tmp_path):
    net, p0 = _classifier()
    x, y = _data()
    kw = dict(optimizer=ADAM, batch_size=4, key=KEY)
    seen = []
    r = fnnet.fit(net, p0, x, y, epochs=7, checkpoint=seen.append, checkpoint_every=3, **kw)
    assert [s.epoch for s in seen] == [3, 6]
    three = fnnet.fit(net, p0, x, y, epochs=3, **kw)
    assert_trees_close((seen[0].params, seen[0].opt_state), (three.params, three.opt_state), 0.0, "epoch 3")
    np.testing.assert_array_equal(seen[1].history.loss, r.history.loss[:6])
    # a path: fnnet.save of everything, and a resume from it equals the straight run
    fnnet.fit(net, p0, x, y, epochs=4, checkpoint=tmp_path / "c.npz", checkpoint_every=2, initial_epoch=0, **kw)
    ck = fnnet.restore(tmp_path / "c.npz", optimizer=ADAM)
    assert ck.epoch == 4
    rest = fnnet.fit(ck.net, ck.params, x, y, epochs=3, opt_state=ck.opt_state, initial_epoch=ck.epoch, **kw)
    assert_trees_close((rest.params, rest.opt_state), (r.params, r.opt_state), 0.0, "resumed from the file")
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint="):
        fnnet.fit(net, p0, x, y, epochs=1, checkpoint_every=2, **kw)
    with pytest.raises(ValueError, match=r"checkpoint= needs checkpoint_every=N"):
        fnnet.fit(net, p0, x, y, epochs=1, checkpoint=seen.append, **kw)
    with pytest.raises(ValueError, match="checkpoint_every must be an int >= 1, got 0"):
        fnnet.fit(net, p0, x, y, epochs=1, checkpoint=seen.append, checkpoint_every=0, **kw)


@pytest.fixture
def python_sigint():
    """SIGINT as a fresh interpreter has it (KeyboardInterrupt), whatever an earlier test in
    this worker process left behind; restored afterwards."""
    import signal
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_at_a_chunk_boundary_with_the_last_complete_epoch(tmp_path, python_sigint):
    """A real SIGINT during fit: the chunk in flight finishes, TrainingInterrupted (a
    KeyboardInterrupt) carries the FitResult after it, the checkpoint gets it too, and
    resuming from it is bit-identical to never stopping."""
    import os
    import signal
    net, p0 = _classifier()
    x, y = _data()
    kw = dict(optimizer=ADAM, batch_size=4, key=KEY, chunk_epochs=2)

    def ctrl_c(epochs_done, history):      # after chunk 1 is read, chunk 2 is already in flight
        if epochs_done == 2:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(fnnet.TrainingInterrupted) as info:
        fnnet.fit(net, p0, x, y, epochs=50, progress=ctrl_c, checkpoint=tmp_path / "c.npz", checkpoint_every=10,
                  **kw)
    assert isinstance(info.value, KeyboardInterrupt)
    r = info.value.result
    assert r.epoch == 4 and len(r.history.loss) == 4 and "after epoch 4" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler          # handler restored
    assert fnnet.restore(tmp_path / "c.npz").epoch == 4                            # saved on Ctrl-C
    straight = fnnet.fit(net, p0, x, y, epochs=7, **kw)
    rest = fnnet.fit(net, r.params, x, y, epochs=3, opt_state=r.opt_state, initial_epoch=r.epoch, **kw)
    assert_trees_close((rest.params, rest.opt_state), (straight.params, straight.opt_state), 0.0, "resumed")


@pytest.mark.parametrize("width", [60, 100])
def test_the_terminal_bar_keeps_its_width_and_puts_the_metrics_on_their_own_line(width):
    from fnnet.train.progress import ProgressBar
    xv, yv = _data(seed=1)
    term = _Terminal()
    bar = ProgressBar(6, label="test", stream=term, width=width)
    _fit(epochs=6, validation=(xv, yv), chunk_epochs=2, progress=bar)
    frames = [f for f in term.text.replace("\n", "\r").split("\r") if f.strip()]
    bars = [f for f in frames if "6/6" in f]
    cells = max(len(f.split("|")[1]) for f in bars)
    assert cells >= width // 5, bars                       # was 1 cell wide at 100 columns
    final = [f for f in frames if "test_acc" in f][-1]
    assert final.lstrip().startswith("loss ") and final.rstrip().endswith(tuple("0123456789"))  # not cut
