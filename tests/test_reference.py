"""The NumPy float64 oracle proven right on its own: no jax, no fnnet.

Every backward and every loss gradient is compared with central finite differences
in float64; softmax's backward also with its explicit Jacobian. Then stability at
huge logits, kink conventions, label forms, error messages, training, and imports.
"""
import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnnet_reference as R

EPS = 1e-5    # see numeric_grad
RTOL = 1e-7
FLOOR = 1e-2  # see assert_close
ROOT = Path(__file__).resolve().parents[1]
fuzz = settings(max_examples=30, deadline=None)


def numeric_grad(f, x, eps=EPS):
    """Central differences of the scalar f at x (float64), one element at a time.

    Fourth-order stencil (8(f(h) - f(-h)) - (f(2h) - f(-2h))) / 12h with h = 1e-5: its
    truncation error (~h⁴) is negligible, and its rounding error (~1e-16·|terms|/h) is
    10x below that of the plain two-point rule at h = 1e-6, which measured up to 1.2e-7
    relative error on a correct softmax cross-entropy gradient.
    """
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        vals = []
        for step in (-2, -1, 1, 2):
            x[i] = old + step * eps
            vals.append(f(x))
        x[i] = old
        g[i] = (8 * (vals[2] - vals[1]) - (vals[3] - vals[0])) / (12 * eps)
    return g


def assert_close(analytic, numeric, what=""):
    """max |a - n| <= RTOL · max(max|a|, max|n|, FLOOR): relative to the array's scale.

    FLOOR is the finite differences' own noise: a rounding error δ ~ 1e-15 in f's
    intermediates (|z| ~ 10) becomes ~1.5·δ/h ~ 1e-10..1e-9 in the estimate, so
    arrays whose every entry is below 1e-2 (saturated units) are held to 1e-9 absolute.
    """
    a, n = np.asarray(analytic), np.asarray(numeric)
    assert a.shape == n.shape, f"{what}: shapes {a.shape} vs {n.shape}"
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(n), initial=0.0))
    err = np.max(np.abs(a - n), initial=0.0)
    assert err <= RTOL * max(scale, FLOOR), (
        f"{what}: max abs error {err:.3g}, scale {scale:.3g}, relative {err / max(scale, 1e-300):.3g}")


def away_from_zero(rng, shape, margin=1e-3):
    """Normal samples pushed off the relu kink at 0 by at least `margin`."""
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-300) * margin * 10, x)


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4))
seeds = st.integers(0, 2**32 - 1)


# --- dense ------------------------------------------------------------------------------

@fuzz
@given(shape=shapes, d_out=st.integers(1, 4), seed=seeds)
def test_dense_backward_matches_finite_differences(shape, d_out, seed):
    rng = np.random.default_rng(seed)
    (batch, d_in) = shape
    w, b = rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
    x, dy = rng.normal(size=(batch, d_in)), rng.normal(size=(batch, d_out))
    dw, db, dx = R.dense_backward(x, w, b, dy)
    vjp = lambda w_, b_, x_: float(np.sum(R.dense_forward(x_, w_, b_) * dy))
    assert_close(dw, numeric_grad(lambda v: vjp(v, b, x), w), "dw")
    assert_close(db, numeric_grad(lambda v: vjp(w, v, x), b), "db")
    assert_close(dx, numeric_grad(lambda v: vjp(w, b, v), x), "dx")


def test_dense_forward_is_x_at_w_plus_b():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]])
    np.testing.assert_array_equal(R.dense_forward(x, w, [1, 1, 1]), [[2.0, 3.0, 9.0]])


# --- activations ------------------------------------------------------------------------

ELEMENTWISE = {
    "identity": (R.identity_forward, R.identity_backward),
    "relu": (R.relu_forward, R.relu_backward),
    "leaky_relu": (R.leaky_relu_forward, R.leaky_relu_backward),
    "leaky_relu_0.2": (lambda x: R.leaky_relu_forward(x, alpha=0.2),
                       lambda x, dy: R.leaky_relu_backward(x, dy, alpha=0.2)),
    "sigmoid": (R.sigmoid_forward, R.sigmoid_backward),
    "tanh": (R.tanh_forward, R.tanh_backward),
    "softmax": (R.softmax_forward, R.softmax_backward),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@fuzz
@given(shape=shapes, seed=seeds)
def test_activation_backward_matches_finite_differences(name, shape, seed):
    fwd, bwd = ELEMENTWISE[name]
    rng = np.random.default_rng(seed)
    x, dy = 2 * away_from_zero(rng, shape), rng.normal(size=shape)
    numeric = numeric_grad(lambda v: float(np.sum(fwd(v) * dy)), x)
    assert_close(bwd(x, dy), numeric, name)


@fuzz
@given(shape=shapes, seed=seeds)
def test_softmax_backward_is_the_full_jacobian_product(shape, seed):
    rng = np.random.default_rng(seed)
    x, dy = 3 * rng.normal(size=shape), rng.normal(size=shape)
    dx = R.softmax_backward(x, dy)
    for n in range(shape[0]):
        s = R.softmax_forward(x[n])
        jac = np.diag(s) - np.outer(s, s)  # ds_i/dx_j
        np.testing.assert_allclose(dx[n], jac.T @ dy[n], rtol=1e-12, atol=1e-15)


def test_activation_values():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(R.relu_forward(x), [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(R.leaky_relu_forward(x, alpha=0.1), [[-0.2, 0.0, 3.0]])
    np.testing.assert_allclose(R.sigmoid_forward(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(R.softmax_forward(x).sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(R.softmax_forward(x), R.softmax_forward(x + 100.0), rtol=1e-13)


def test_relu_and_leaky_derivatives_at_exactly_zero():
    x = np.zeros((2, 3))
    dy = np.full((2, 3), 5.0)
    np.testing.assert_array_equal(R.relu_backward(x, dy), 0.0)
    np.testing.assert_array_equal(R.leaky_relu_backward(x, dy), 0.05)
    np.testing.assert_array_equal(R.leaky_relu_backward(x, dy, alpha=0.3), 1.5)


# --- stability --------------------------------------------------------------------------

BIG = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [1e4, -1e4, 5.0]])


def test_sigmoid_and_softmax_are_stable_at_huge_inputs():
    dy = np.ones_like(BIG)
    with np.errstate(all="raise"):
        s = R.sigmoid_forward(BIG)
        outs = [s, R.sigmoid_backward(BIG, dy), R.softmax_forward(BIG), R.softmax_backward(BIG, dy),
                R.tanh_forward(BIG), R.tanh_backward(BIG, dy)]
    for out in outs:
        assert np.all(np.isfinite(out))
    assert s[0, 0] == 1.0 and s[0, 1] == 0.0 and s[0, 2] == 0.5
    np.testing.assert_allclose(R.softmax_forward(BIG)[1], [0.0, 1 / (1 + np.exp(-1.0)),
                                                   1 / (1 + np.exp(1.0))], rtol=1e-14)


def test_cross_entropies_are_stable_at_huge_logits():
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    labels = np.array([0, 0])
    with np.errstate(all="raise"):
        ce = R.softmax_cross_entropy(z, labels)
        ce_grad = R.softmax_cross_entropy_grad(z, labels)
        bce = R.sigmoid_binary_cross_entropy(z, 1 - np.eye(2))  # every sign wrong
        bce_grad = R.sigmoid_binary_cross_entropy_grad(z, 1 - np.eye(2))
    assert ce == pytest.approx(1000.0, rel=1e-15)  # (0 + 2000) / 2
    np.testing.assert_allclose(ce_grad, [[0.0, 0.0], [-0.5, 0.5]], atol=1e-300)
    assert bce == pytest.approx(1000.0, rel=1e-15)  # off-diagonals cost 1000 each, /4
    np.testing.assert_allclose(bce_grad, [[0.25, -0.25], [-0.25, 0.25]], atol=1e-300)
    assert np.all(np.isfinite(ce_grad)) and np.all(np.isfinite(bce_grad))


# --- losses -----------------------------------------------------------------------------

def _ce_target(rng, shape, form):
    n, k = shape
    if form == "labels":
        return rng.integers(0, k, size=n)
    if form == "onehot":
        return np.eye(k)[rng.integers(0, k, size=n)]
    if form == "probs":
        return R.softmax_forward(rng.normal(size=shape))
    return rng.uniform(0, 2, size=shape)  # "unnormalised": rows not summing to 1


LOSS_CASES = {
    "mse": (R.mse, R.mse_grad, lambda rng, s: rng.normal(size=s)),
    "half_sse": (R.half_sse, R.half_sse_grad, lambda rng, s: rng.normal(size=s)),
    "bce": (R.sigmoid_binary_cross_entropy, R.sigmoid_binary_cross_entropy_grad,
            lambda rng, s: rng.uniform(0, 1, size=s)),
    **{f"ce_{form}": (R.softmax_cross_entropy, R.softmax_cross_entropy_grad,
                      lambda rng, s, form=form: _ce_target(rng, s, form))
       for form in ("labels", "onehot", "probs", "unnormalised")},
}


@pytest.mark.parametrize("name", LOSS_CASES)
@fuzz
@given(shape=shapes, seed=seeds)
def test_loss_grad_matches_finite_differences(name, shape, seed):
    value, grad, make_target = LOSS_CASES[name]
    rng = np.random.default_rng(seed)
    out, target = 3 * rng.normal(size=shape), make_target(rng, shape)
    g = grad(out, target)
    assert g.shape == out.shape and g.dtype == np.float64
    assert isinstance(value(out, target), float)
    assert_close(g, numeric_grad(lambda v: value(v, target), out), name)


def test_loss_values_match_textbook_formulas():
    rng = np.random.default_rng(0)
    out, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    assert R.mse(out, t) == pytest.approx(np.mean((out - t) ** 2), rel=1e-15)
    assert R.half_sse(out, t) == pytest.approx(0.5 * np.sum((out - t) ** 2), rel=1e-15)
    labels = np.array([0, 2, 1, 2])
    p = np.exp(out) / np.exp(out).sum(axis=1, keepdims=True)
    assert R.softmax_cross_entropy(out, labels) == pytest.approx(
        -np.mean(np.log(p[np.arange(4), labels])), rel=1e-13)
    y = rng.uniform(size=(4, 3))
    s = 1 / (1 + np.exp(-out))
    assert R.sigmoid_binary_cross_entropy(out, y) == pytest.approx(
        np.mean(-y * np.log(s) - (1 - y) * np.log(1 - s)), rel=1e-13)
    np.testing.assert_allclose(R.softmax_cross_entropy_grad(out, labels),
                               (p - np.eye(3)[labels]) / 4, rtol=1e-13)


def test_integer_labels_and_one_hot_agree_exactly():
    rng = np.random.default_rng(1)
    z, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    onehot = np.eye(4)[labels]
    assert R.softmax_cross_entropy(z, labels) == R.softmax_cross_entropy(z, onehot)
    np.testing.assert_array_equal(R.softmax_cross_entropy_grad(z, labels),
                                  R.softmax_cross_entropy_grad(z, onehot))
    np.testing.assert_array_equal(R.softmax_cross_entropy_grad(z, labels.astype(np.int32)),
                                  R.softmax_cross_entropy_grad(z, onehot.astype(np.int64)))


def test_l2_penalty_and_grad():
    rng = np.random.default_rng(2)
    ws = [rng.normal(size=(3, 2)), rng.normal(size=(2, 1))]
    assert R.l2_penalty(ws, 0.3) == pytest.approx(0.15 * sum(np.sum(w**2) for w in ws))
    assert R.l2_penalty([], 0.3) == 0.0
    for w in ws:
        assert_close(R.l2_grad(w, 0.3), numeric_grad(lambda v: R.l2_penalty([v], 0.3), w))


# --- networks ---------------------------------------------------------------------------

def make_net(rng, sizes, hidden="tanh", last=None):
    """Dense layers of the given widths with `hidden` between them, `last` at the end."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append({"kind": "dense", "w": rng.normal(size=(a, b)), "b": rng.normal(size=b)})
        if i < len(sizes) - 2:
            layers.append({"kind": hidden, "alpha": 0.1} if hidden == "leaky_relu"
                          else {"kind": hidden})
    if last:
        layers.append({"kind": last})
    return layers


def make_target(rng, loss_name, batch, k):
    if loss_name == "softmax_cross_entropy":
        return rng.integers(0, k, size=batch)
    if loss_name == "sigmoid_binary_cross_entropy":
        return rng.integers(0, 2, size=(batch, k)).astype(float)
    return rng.normal(size=(batch, k))


def check_network_grads(layers, loss_name, x, target, l2):
    grads = R.backward(layers, loss_name, x, target, l2=l2)
    assert len(grads) == len(layers)
    for i, (layer, g) in enumerate(zip(layers, grads)):
        if layer["kind"] != "dense":
            assert g == {}
            continue
        for key in ("w", "b"):
            def f(v, i=i, key=key):
                changed = [dict(l) for l in layers]
                changed[i][key] = v
                return R.loss(changed, loss_name, x, target, l2=l2)
            assert_close(g[key], numeric_grad(f, layer[key]), f"layer {i} d{key}")


NET_CASES = [  # (loss, sizes, hidden, last layer, batch, l2)
    ("mse", [3, 4, 5, 2], "tanh", None, 5, 0.0),
    ("mse", [3, 4, 5, 2], "sigmoid", "softmax", 4, 0.1),
    ("half_sse", [2, 3, 1], "relu", "sigmoid", 3, 0.05),
    ("half_sse", [1, 1, 1, 1], "leaky_relu", "tanh", 1, 0.2),
    ("softmax_cross_entropy", [4, 6, 5, 3], "sigmoid", None, 6, 0.01),
    ("softmax_cross_entropy", [2, 5, 3], "relu", None, 1, 0.0),
    ("sigmoid_binary_cross_entropy", [3, 4, 4, 2], "tanh", "identity", 5, 0.3),
    ("sigmoid_binary_cross_entropy", [1, 1, 1], "leaky_relu", None, 1, 0.0),
]


@pytest.mark.parametrize("case", NET_CASES, ids=lambda c: f"{c[0]}-{c[2]}-b{c[4]}-l2={c[5]}")
def test_network_backward_matches_finite_differences(case):
    loss_name, sizes, hidden, last, batch, l2 = case
    rng = np.random.default_rng(len(sizes) * 100 + batch)
    layers = make_net(rng, sizes, hidden, last)
    x = rng.normal(size=(batch, sizes[0]))
    check_network_grads(layers, loss_name, x, make_target(rng, loss_name, batch, sizes[-1]), l2)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 4), width=st.integers(1, 4), seed=seeds,
       loss_name=st.sampled_from(["mse", "half_sse", "softmax_cross_entropy",
                                  "sigmoid_binary_cross_entropy"]),
       hidden=st.sampled_from(["sigmoid", "tanh", "identity"]),
       l2=st.sampled_from([0.0, 0.1]))
def test_network_backward_fuzzed(batch, width, seed, loss_name, hidden, l2):
    rng = np.random.default_rng(seed)
    sizes = [width, width + 1, 2]
    layers = make_net(rng, sizes, hidden)
    x = rng.normal(size=(batch, width))
    check_network_grads(layers, loss_name, x, make_target(rng, loss_name, batch, 2), l2)


def test_backward_equals_seed_002_hand_derivation():
    """Seed 002's two-layer relu/softmax/L2 backprop, written out by hand."""
    rng = np.random.default_rng(3)
    w1, b1, w2, b2 = (rng.normal(size=(2, 5)), rng.normal(size=5),
                      rng.normal(size=(5, 3)), rng.normal(size=3))
    x, labels, lam = rng.normal(size=(7, 2)), rng.integers(0, 3, size=7), 0.01
    hidden = np.maximum(x @ w1 + b1, 0)
    scores = hidden @ w2 + b2
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    err_out = (probs - np.eye(3)[labels]) / 7
    err_hidden = err_out @ w2.T
    err_hidden[hidden <= 0] = 0
    expected = [x.T @ err_hidden + lam * w1, err_hidden.sum(0),
                hidden.T @ err_out + lam * w2, err_out.sum(0)]
    layers = [{"kind": "dense", "w": w1, "b": b1}, {"kind": "relu"},
              {"kind": "dense", "w": w2, "b": b2}]
    g = R.backward(layers, "softmax_cross_entropy", x, labels, l2=lam)
    for got, want in zip([g[0]["w"], g[0]["b"], g[2]["w"], g[2]["b"]], expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    data_loss = -np.mean(np.log(probs[np.arange(7), labels]))
    assert R.loss(layers, "softmax_cross_entropy", x, labels, l2=lam) == pytest.approx(
        data_loss + 0.5 * lam * (np.sum(w1**2) + np.sum(w2**2)), rel=1e-13)


# --- training ---------------------------------------------------------------------------

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def test_train_sgd_learns_xor_like_seed_003_without_mutating_inputs():
    layers = make_net(np.random.default_rng(4), [2, 3, 1], "tanh", "tanh")
    before = copy.deepcopy(layers)
    x, y = XOR_X.copy(), XOR_Y.copy()
    trained, losses = R.train_sgd(layers, "mse", x, y, lr=0.1, epochs=1000, batch_size=1)
    assert len(losses) == 1000 and all(isinstance(v, float) for v in losses)
    assert losses[-1] < 0.1 * losses[0]
    assert R.accuracy(trained, "mse", XOR_X, XOR_Y) == 1.0
    for a, b in zip(layers, before):  # inputs untouched
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(x, XOR_X)
    np.testing.assert_array_equal(y, XOR_Y)
    assert trained[0] is not layers[0] and trained[0]["w"] is not layers[0]["w"]


@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_train_sgd_steps_are_the_documented_ones(batch_size):
    rng = np.random.default_rng(5)
    layers = make_net(rng, [3, 4, 3], "sigmoid")
    x, labels = rng.normal(size=(7, 3)), rng.integers(0, 3, size=7)
    trained, losses = R.train_sgd(layers, "softmax_cross_entropy", x, labels, lr=0.3,
                                  epochs=2, l2=0.01, batch_size=batch_size)
    size = 7 if batch_size is None else batch_size
    manual, want = layers, []
    for _ in range(2):
        step = []
        for s in range(0, 7, size):  # consecutive slices, in order, last one shorter
            xb, yb = x[s:s + size], labels[s:s + size]
            step.append(R.loss(manual, "softmax_cross_entropy", xb, yb, l2=0.01))
            grads = R.backward(manual, "softmax_cross_entropy", xb, yb, l2=0.01)
            manual = R.sgd_step(manual, grads, 0.3)
        want.append(np.mean(step))
    np.testing.assert_allclose(losses, want, rtol=1e-14)
    for a, b in zip(trained, manual):
        assert a["kind"] == b["kind"]
        for k in set(a) & {"w", "b"}:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-14)


def test_full_batch_training_decreases_softmax_loss():
    rng = np.random.default_rng(6)
    centers = np.array([[0.0, 0.0], [3.0, 3.0], [0.0, 4.0]])
    labels = np.repeat(np.arange(3), 20)
    x = centers[labels] + 0.5 * rng.normal(size=(60, 2))
    layers = make_net(rng, [2, 5, 3], "relu")
    trained, losses = R.train_sgd(layers, "softmax_cross_entropy", x, labels,
                                  lr=0.1, epochs=300, l2=0.001)
    assert losses[-1] < losses[0] and np.all(np.isfinite(losses))
    assert R.accuracy(trained, "softmax_cross_entropy", x, labels) > 0.9
    assert R.accuracy(trained, "softmax_cross_entropy", x, np.eye(3)[labels]) > 0.9
    np.testing.assert_allclose(R.predict(trained, "softmax_cross_entropy", x).sum(1), 1.0)


def test_sgd_step_does_not_mutate():
    layers = [{"kind": "dense", "w": np.ones((2, 2)), "b": np.zeros(2)}, {"kind": "relu"}]
    grads = [{"w": np.ones((2, 2)), "b": np.ones(2)}, {}]
    new = R.sgd_step(layers, grads, 0.5)
    np.testing.assert_array_equal(layers[0]["w"], 1.0)
    np.testing.assert_array_equal(new[0]["w"], 0.5)
    np.testing.assert_array_equal(new[0]["b"], -0.5)
    assert new[1] == {"kind": "relu"} and new[1] is not layers[1]


def test_predict_and_accuracy_for_sigmoid_bce():
    layers = [{"kind": "dense", "w": np.array([[1.0]]), "b": np.array([0.0])}]
    x = np.array([[-2.0], [1.0], [3.0]])
    p = R.predict(layers, "sigmoid_binary_cross_entropy", x)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-x)))
    assert R.accuracy(layers, "sigmoid_binary_cross_entropy", x, [[0.0], [1.0], [0.0]]) \
        == pytest.approx(2 / 3)
    np.testing.assert_array_equal(R.predict(layers, "mse", x), x)


# --- errors -----------------------------------------------------------------------------

W, B, X = np.ones((3, 2)), np.zeros(2), np.ones((4, 3))
NET = [{"kind": "dense", "w": W, "b": B}]
BAD_CALLS = [
    ("dense_forward", lambda: R.dense_forward(np.ones((4, 5)), W, B), r"\[batch, 3\], got \(4, 5\)"),
    ("dense_forward", lambda: R.dense_forward(X, W, np.zeros((1, 2))), r"b must be \[2\]"),
    ("dense_forward", lambda: R.dense_forward(X, np.ones(3), B), "w must be"),
    ("dense_forward", lambda: R.dense_forward(np.ones(3), W, B), "x must be"),
    ("dense_backward", lambda: R.dense_backward(X, W, B, np.ones((4, 1))), "dy must be"),
    ("dense_backward", lambda: R.dense_backward(X, W, B, np.ones(2)), "dy must be"),
    ("relu_backward", lambda: R.relu_backward(np.ones((2, 3)), np.ones(3)), "dy must"),
    ("softmax_backward", lambda: R.softmax_backward(np.ones((2, 3)), np.ones((3, 2))), "dy"),
    ("sigmoid_backward", lambda: R.sigmoid_backward(np.ones(2), np.ones((1, 2))), "dy"),
    ("mse", lambda: R.mse(np.ones((2, 3)), np.ones(3)), "target"),
    ("half_sse_grad", lambda: R.half_sse_grad(np.ones((2, 1)), np.ones(2)), "target"),
    ("softmax_cross_entropy", lambda: R.softmax_cross_entropy(np.ones((2, 3)), [0, 3]), r"\[0, 3\)"),
    ("softmax_cross_entropy", lambda: R.softmax_cross_entropy(np.ones((2, 3)), [0, -1]), "labels"),
    ("softmax_cross_entropy_grad", lambda: R.softmax_cross_entropy_grad(np.ones((2, 3)), [0.0, 1.5]), "integer"),
    ("softmax_cross_entropy_grad", lambda: R.softmax_cross_entropy_grad(np.ones((2, 3)), [0, 1, 2]), "target"),
    ("softmax_cross_entropy", lambda: R.softmax_cross_entropy(np.ones(3), [0]), "logits"),
    ("softmax_cross_entropy", lambda: R.softmax_cross_entropy(np.ones((2, 3)), np.ones((2, 2))), "target"),
    ("sigmoid_binary_cross_entropy", lambda: R.sigmoid_binary_cross_entropy(np.ones((2, 1)), [[0.0], [2.0]]), r"\[0, 1\]"),
    ("sigmoid_binary_cross_entropy_grad", lambda: R.sigmoid_binary_cross_entropy_grad(np.ones((2, 2)), np.ones((2, 1))), "target"),
    ("forward", lambda: R.forward([{"kind": "conv"}], X), "known kinds: dense, identity, relu"),
    ("forward", lambda: R.forward(NET, np.ones((4, 5))), r"dense_forward: x must be \[batch, 3\]"),
    ("loss", lambda: R.loss(NET, "hinge", X, np.ones((4, 2))), "known losses"),
    ("backward", lambda: R.backward(NET, "mse", X, np.ones((4, 3))), "target"),
    ("backward", lambda: R.backward([{"kind": "dense", "w": W}], "mse", X, np.ones((4, 2))), "'b'"),
    ("sgd_step", lambda: R.sgd_step(NET, [], 0.1), "one entry per layer"),
    ("sgd_step", lambda: R.sgd_step(NET, [{"w": np.ones((2, 3)), "b": B}], 0.1), "grad 'w'"),
    ("train_sgd", lambda: R.train_sgd(NET, "mse", X, np.ones((3, 2)), lr=0.1, epochs=1), "batch"),
    ("train_sgd", lambda: R.train_sgd(NET, "mse", X, np.ones((4, 2)), lr=0.1, epochs=1, batch_size=0), "batch_size"),
    ("accuracy", lambda: R.accuracy(NET, "softmax_cross_entropy", X, [0, 1]), "target"),
]


@pytest.mark.parametrize("fn, call, detail", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_value_error_naming_the_function(fn, call, detail):
    with pytest.raises(ValueError, match=rf"^reference\.{fn}: ") as info:
        call()
    assert re.search(detail, str(info.value)), str(info.value)


# --- the package itself -----------------------------------------------------------------

def test_reference_imports_neither_jax_nor_fnnet():
    code = ("import fnnet_reference as reference, sys; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'fnnet')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_sources_name_no_forbidden_imports():
    # numpy, the standard library's math, and the twin itself by relative imports (it installs as
    # fnnet_reference; relative imports work under any name and never name fnnet)
    paths = sorted((ROOT / "reference").rglob("*.py"))
    assert len(paths) > 10, paths
    for path in paths:
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] in ("numpy", "", "__future__", "math"), \
                    f"{path.relative_to(ROOT)}: {line}"


def test_public_api_is_exported_and_float64():
    for name in R.__all__:
        assert callable(getattr(R, name)), name
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert R.sigmoid_forward(x).dtype == np.float64
    assert R.dense_forward(x, np.ones((3, 2), np.float32), np.zeros(2, np.int32)).dtype == np.float64
