"""fnnet.check: correct backwards pass everywhere, planted bugs are caught and named.

Every planted bug is a subclass or a monkeypatched copy of a built-in (fnnet's files are
never edited); each test asserts that the report fails, which primal it blames and, for a
single wrong entry, which index. The correct built-ins must pass in the hard places:
relu kinks (exact 0 and |x| below the FD step), saturated sigmoids, ±1000 logits, zero
cotangents, float32 and float64, batch 1 and width 1, with and without jit.
"""
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import check

DTYPES = [np.float64, np.float32]
JIT = [False, True]


def rng(seed=0):
    return np.random.default_rng(seed)


def dense_params(d_in, d_out, dtype=np.float64, seed=0):
    r = rng(seed)
    return fnnet.DenseParams(r.standard_normal((d_in, d_out)).astype(dtype),
                             r.standard_normal(d_out).astype(dtype))


def kinky(shape, seed=0, step=1e-6):
    """Normal values with exact zeros and values within the FD step of zero."""
    x = rng(seed).standard_normal(shape)
    flat = x.reshape(-1)
    flat[::4] = 0.0
    flat[1::6] = 0.3 * step * np.sign(flat[1::6] + 0.5)
    return x


def layer_fns(layer, jit=False):
    """(fun, vjp) of a layer for check_vjp, optionally jitted (the code under test)."""
    def fun(params, x):
        return layer.forward(params, x)[0]

    def vjp(params, x, ct):
        _, cache = layer.forward(params, x)
        return layer.backward(params, cache, ct)
    return (jax.jit(fun), jax.jit(vjp)) if jit else (fun, vjp)


def statuses(report, primal):
    return {r.kind: r.status for r in report.rows_for(primal)}


def assert_all_ok(report):
    assert report.ok, str(report)
    for r in report.rows:
        assert r.status in ("ok", "n/a"), str(report)


# --- correct built-ins pass -------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("jit", JIT)
def test_dense_passes_all_four_oracles(dtype, jit):
    layer = fnnet.Dense(4)
    params, x = dense_params(3, 4, dtype), rng(1).standard_normal((5, 3)).astype(dtype)
    fun, vjp = layer_fns(layer, jit)
    ref = lambda p, x, ct: (fnnet.DenseParams(x.T @ ct, ct.sum(0)), ct @ p.w.T)
    report = check.check_vjp(fun, vjp, params, x, reference=ref)
    assert_all_ok(report)
    assert [r.primal for r in report.rows] == ["params.w"] * 3 + ["params.b"] * 3 + ["x"] * 3
    assert report.max_rel_err("jax") <= (1e-10 if dtype == np.float64 else 1e-4)
    # the same through check_layer, with the reference/ twin found by type
    report = check.check_layer(layer, params, x)
    assert_all_ok(report)
    assert all(r.status == "ok" for r in report.rows_for(kind="reference"))


ACTIVATIONS = [fnnet.Identity(), fnnet.Relu(), fnnet.LeakyRelu(0.1), fnnet.Sigmoid(), fnnet.Tanh(),
               fnnet.Softmax()]


@pytest.mark.parametrize("layer", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_pass_at_kinks_and_both_dtypes(layer, dtype):
    x = kinky((5, 6)).astype(dtype)
    report = check.check_layer(layer, (), x)
    assert_all_ok(report)
    if isinstance(layer, (fnnet.Relu, fnnet.LeakyRelu)):
        # per-element FD saw the kinks (one-sided slopes differ) and accepted the rule there
        assert report.rows_for("x", "fd")[0].kinks > 0


@pytest.mark.parametrize("jit", JIT)
def test_relu_exactly_at_zero_and_inside_the_step(jit):
    x = np.array([[0.0, 3e-7, -3e-7, 1.0, -1.0, 0.0]])
    fun, vjp = layer_fns(fnnet.Relu(), jit)
    report = check.check_vjp(fun, vjp, (), x)
    assert_all_ok(report)
    assert report.kinks >= 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_sigmoid_whole_leaf(dtype):
    # every entry saturated: σ'(±40) ≈ 4e-18 while s(1 - s) rounds to 0; the resolution
    # floor (see _check_compare) must keep this from being a false alarm
    x = np.array([[40.0, -40.0, 38.0], [-41.0, 40.0, -39.0]], dtype)
    for layer in (fnnet.Sigmoid(), fnnet.Tanh()):
        assert_all_ok(check.check_layer(layer, (), x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits(dtype):
    logits = rng(2).uniform(-1000, 1000, (4, 6)).astype(dtype)
    labels = np.array([0, 3, 5, 1], np.int32)
    assert_all_ok(check.check_layer(fnnet.Softmax(), (), logits))
    assert_all_ok(check.check_loss("softmax_cross_entropy", logits, labels))
    assert_all_ok(check.check_loss("softmax_cross_entropy", logits, np.eye(6, dtype=dtype)[labels]))
    assert_all_ok(check.check_loss("sigmoid_binary_cross_entropy", logits / 25,
                                   rng(3).uniform(0, 1, (4, 6)).astype(dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_cotangent_and_zero_gradients(dtype):
    layer = fnnet.Dense(3)
    params, x = dense_params(2, 3, dtype), rng(4).standard_normal((4, 2)).astype(dtype)
    report = check.check_layer(layer, params, x, cotangent=np.zeros((4, 3), dtype))
    assert_all_ok(report)
    assert all(r.max_abs_err == 0 for r in report.rows)
    # relu with every input negative: the gradient is exactly zero everywhere
    assert_all_ok(check.check_layer(fnnet.Relu(), (), -np.abs(kinky((3, 4))) - 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_one_width_one(dtype):
    assert_all_ok(check.check_layer(fnnet.Dense(1), dense_params(1, 1, dtype), np.ones((1, 1), dtype)))
    net = fnnet.mlp([1, 1, 1], activation="sigmoid", loss="mse")
    params = (dense_params(1, 1, dtype), (), dense_params(1, 1, dtype, seed=1))
    assert_all_ok(check.check_network(net, params, np.full((1, 1), 0.5, dtype), np.zeros((1, 1), dtype)))


@pytest.mark.parametrize("name", ["mse", "half_sse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_pass(name, dtype):
    out = rng(5).standard_normal((5, 3)).astype(dtype)
    target = rng(6).uniform(0, 1, (5, 3)).astype(dtype)
    report = check.check_loss(name, out, target)
    assert_all_ok(report)
    assert report.rows_for("out", "reference")[0].status == "ok"


@pytest.mark.parametrize("dtype", DTYPES)
def test_seed_networks_pass_including_relu_kinks(dtype):
    r = rng(7)
    cases = [
        (fnnet.mlp([2, 3, 2], activation="relu", output="sigmoid", loss="half_sse"), r.uniform(0, 1, (4, 2))),
        (fnnet.mlp([2, 5, 3], activation="relu", loss="softmax_cross_entropy", l2=0.01), np.array([0, 2, 1, 2])),
        (fnnet.mlp([2, 3, 1], activation="tanh", output="tanh", loss="mse"), r.standard_normal((4, 1))),
    ]
    for net, y in cases:
        params = tuple(fnnet.DenseParams(r.standard_normal(p.w.shape), np.zeros(p.b.shape)) if p else ()
                       for p in fnnet.init(net, jax.random.key(0), np.float64))
        params = jax.tree.map(lambda a: np.asarray(a, dtype), params)
        x = r.standard_normal((4, 2)).astype(dtype)
        x[0] = 0.0   # zero row, zero biases: every hidden pre-activation of row 0 is exactly 0
        y = y if y.dtype.kind == "i" else y.astype(dtype)
        report = check.check_network(net, params, x, y)
        assert_all_ok(report)
        assert all(r.status == "ok" for r in report.rows_for(kind="reference")), str(report)


def test_saturation_corner_cases_found_by_fuzzing():
    # a loss of e^-34: its gradient p - y cancels down to rounding in every implementation
    assert_all_ok(check.check_loss("softmax_cross_entropy", np.array([[-39.5938698, -5.5548724]]),
                                   np.array([[0.0, 1.0]])))
    # tanh layers fed inputs of ±50 in float32 (1 - t² keeps 3 digits) with L2 on top
    net = fnnet.mlp([1, 2, 2], activation="tanh", loss="half_sse", l2=0.1)
    params = (fnnet.DenseParams(np.array([[-1.66507027, 0.34680086]]), np.array([-1.51238550, 0.22549291])), (),
              fnnet.DenseParams(np.array([[0.38814226, 0.55497262], [-0.14737863, -1.00016802]]),
                                np.array([-0.26383107, -0.33852489])))
    x = np.array([[52.4513028], [-18.6696675], [-7.36073512], [-59.1098716]])
    y = np.array([[0.0374065, 0.5396928], [0.4214104, 0.1099920], [0.3074517, 0.8060296], [0.3300029, 0.2783470]])
    for dtype in DTYPES:
        p = jax.tree.map(lambda a: np.asarray(a, dtype), params)
        assert_all_ok(check.check_network(net, p, x.astype(dtype), y.astype(dtype)))
    # two saturated tanh layers: the first layer's gradient is 1e-12 of the others'
    net = fnnet.mlp([4, 3, 3, 1], activation="tanh", loss="half_sse")
    r = rng(278)
    params = (fnnet.DenseParams(r.standard_normal((4, 3)), r.standard_normal(3)), (),
              fnnet.DenseParams(r.standard_normal((3, 3)), r.standard_normal(3)), (),
              fnnet.DenseParams(r.standard_normal((3, 1)), r.standard_normal(1)))
    x = 30 * r.standard_normal((3, 4))
    for dtype in DTYPES:
        p = jax.tree.map(lambda a: np.asarray(a, dtype), params)
        assert_all_ok(check.check_network(net, p, x.astype(dtype), r.uniform(0, 1, (3, 1)).astype(dtype)))


def test_x64_off_float32_user():
    """A user who never enabled x64: float32 in, finite differences still in float64."""
    with jax.enable_x64(False):
        layer = fnnet.Dense(3)
        params, x = dense_params(4, 3, np.float32), rng(8).standard_normal((2, 4)).astype(np.float32)
        report = check.check_layer(layer, params, x)
        assert_all_ok(report)
        assert "finite differences in float64" in report.header
        assert report.max_rel_err("fd") < 1e-4


def test_digits_net_speed_printed_not_asserted(capsys):
    net = fnnet.mlp([64, 128, 128, 10], activation="sigmoid", loss="softmax_cross_entropy")
    r = rng(9)
    params = tuple(fnnet.DenseParams(r.standard_normal(p.w.shape) / 8, 0.1 * r.standard_normal(p.b.shape))
                   if p else () for p in fnnet.init(net, jax.random.key(0), np.float64))
    x, y = r.uniform(0, 1, (64, 64)), r.integers(0, 10, 64).astype(np.int32)
    for dtype in DTYPES:
        p = jax.tree.map(lambda a: np.asarray(a, dtype), params)
        t = time.perf_counter()
        report = check.check_network(net, p, x.astype(dtype), y)
        secs = time.perf_counter() - t
        assert_all_ok(report)
        with capsys.disabled():
            print(f"\ncheck_network on the digits net (26k params, batch 64, {np.dtype(dtype).name}): {secs:.2f} s")


def test_pytree_primals_and_outputs_eager_and_jitted():
    def fun(inputs, scale):
        a = jnp.tanh(inputs["a"]) * scale
        return {"sum": a + inputs["b"], "prod": (inputs["b"] * scale,)}

    def vjp(inputs, scale, ct):
        a = jnp.tanh(inputs["a"])
        s, (p,) = ct["sum"], ct["prod"]
        return ({"a": s * scale * (1 - a * a), "b": s + p * scale}, jnp.sum(s * a) + jnp.sum(p * inputs["b"]))

    r = rng(28)
    primals = ({"a": r.standard_normal((2, 3)), "b": r.standard_normal((2, 3))}, np.float64(1.5))
    for jit in (True, False):
        report = check.check_vjp(fun, vjp, *primals, jit=jit)
        assert_all_ok(report)
        assert [r.primal for r in report.rows_for(kind="jax")] == ["inputs['a']", "inputs['b']", "scale"]


def test_vjp_with_value_dependent_python_runs_eagerly():
    def vjp(x, ct):
        if float(np.max(np.asarray(x))) > 100:    # concrete values only: cannot be jitted
            raise ValueError("x too large")
        return (ct * (1 - jnp.tanh(x) ** 2),)
    assert_all_ok(check.check_vjp(jnp.tanh, vjp, rng(29).standard_normal((2, 3))))


def test_deterministic_for_a_key():
    layer, x = fnnet.Tanh(), rng(10).standard_normal((3, 4))
    a = check.check_layer(layer, (), x, key=jax.random.key(3))
    b = check.check_layer(layer, (), x, key=jax.random.key(3))
    assert [r.max_abs_err for r in a.rows] == [r.max_abs_err for r in b.rows]


# --- planted bugs are caught and named --------------------------------------------------

class SigmoidWrongDerivative(fnnet.Sigmoid):
    def backward(self, params, cache, dy):
        return (), dy * cache                      # BUG: s instead of s(1 - s)


class SigmoidAtActivation(fnnet.Sigmoid):
    """Seed 000's MSE.delta bug: σ' evaluated at a = σ(z) instead of at z."""
    def backward(self, params, cache, dy):
        s = jax.nn.sigmoid(cache)                  # BUG: σ(σ(z))
        return (), dy * s * (1 - s)


class SoftmaxDiagonal(fnnet.Softmax):
    def backward(self, params, cache, dy):
        return (), dy * cache * (1 - cache)        # BUG: only the Jacobian's diagonal


class TanhSignError(fnnet.Tanh):
    def backward(self, params, cache, dy):
        return (), -dy * (1 - cache * cache)       # BUG: sign


class SigmoidSkipsDerivative(fnnet.Sigmoid):
    def backward(self, params, cache, dy):
        return (), dy                              # BUG: hidden delta skips σ'


@pytest.mark.parametrize("layer", [SigmoidWrongDerivative(), SigmoidAtActivation(), SoftmaxDiagonal(),
                                   TanhSignError()], ids=lambda l: type(l).__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_wrong_activation_backward_fails_on_x(layer, dtype):
    report = check.check_layer(layer, (), rng(11).standard_normal((4, 5)).astype(dtype))
    assert not report.ok
    assert report.failed_primals == ("x",)
    # all three oracles see it (the forward is the built-in's, so reference/ applies)
    assert statuses(report, "x") == {"jax": "FAIL", "reference": "FAIL", "fd": "FAIL"}
    with pytest.raises(AssertionError, match="hand-written vs oracle"):
        report.raise_if_failed()


class DenseBug(fnnet.Dense):
    """Dense with one planted bug, chosen by `bug` (a dataclass field, so it stays hashable)."""
    bug: str = ""

    def backward(self, params, cache, dy):
        x = cache
        dw, db, dx = x.T @ dy, dy.sum(axis=0), dy @ params.w.T
        if self.bug == "dw_transposed":
            dw = dy.T @ x                          # BUG: [d_out, d_in]
        elif self.bug == "dx_no_transpose":
            dx = dy @ params.w                     # BUG: square W hides the missing ᵀ
        elif self.bug == "db_mean":
            db = dy.mean(axis=0)                   # BUG: averaged over the batch
        elif self.bug == "db_not_summed":
            db = dy                                # BUG: one bias gradient per example
        elif self.bug == "single_entry":
            dw = dw.at[1, 2].add(0.5)              # BUG: one wrong entry
        elif self.bug == "sign":
            dw = -dw                               # BUG: sign
        return fnnet.DenseParams(dw, db), dx


DenseBug = dataclasses.dataclass(frozen=True)(DenseBug)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dw_transposed_is_a_clear_shape_failure(dtype):
    report = check.check_layer(DenseBug(4, bug="dw_transposed"), dense_params(3, 4, dtype),
                               rng(12).standard_normal((5, 3)).astype(dtype))
    assert not report.ok and report.failed_primals == ("params.w",)
    (row,) = report.rows_for("params.w")
    assert row.kind == "structure" and "(4, 3)" in row.note and "expected (3, 4)" in row.note
    assert "transposed" in row.note
    assert statuses(report, "x") == {"jax": "ok", "reference": "ok", "fd": "ok"}
    assert "transposed" in str(report)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dx_missing_transpose_with_square_w(dtype):
    report = check.check_layer(DenseBug(4, bug="dx_no_transpose"), dense_params(4, 4, dtype),
                               rng(13).standard_normal((5, 4)).astype(dtype))
    assert report.failed_primals == ("x",)
    assert statuses(report, "x") == {"jax": "FAIL", "reference": "FAIL", "fd": "FAIL"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_averaged_instead_of_summed(dtype):
    report = check.check_layer(DenseBug(4, bug="db_mean"), dense_params(3, 4, dtype),
                               rng(14).standard_normal((5, 3)).astype(dtype))
    assert report.failed_primals == ("params.b",)
    assert statuses(report, "params.b") == {"jax": "FAIL", "reference": "FAIL", "fd": "FAIL"}


def test_bias_not_summed_is_reported_not_crashed():
    report = check.check_layer(DenseBug(4, bug="db_not_summed"), dense_params(3, 4),
                               rng(15).standard_normal((5, 3)))
    assert report.failed_primals == ("params.b",)
    (row,) = report.rows_for("params.b")
    assert "shape (5, 4)" in row.note and "expected (4,)" in row.note and "batch" in row.note
    assert statuses(report, "params.w") == {"jax": "ok", "reference": "ok", "fd": "ok"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["auto", "full", "directional"])
def test_single_wrong_entry_is_named_with_its_index(dtype, mode):
    report = check.check_layer(DenseBug(4, bug="single_entry"), dense_params(3, 4, dtype),
                               rng(16).standard_normal((5, 3)).astype(dtype), mode=mode)
    assert report.failed_primals == ("params.w",)
    for row in report.rows_for("params.w"):
        assert row.status == "FAIL" and row.worst_index == (1, 2), str(report)


def test_sign_error_in_dense():
    report = check.check_layer(DenseBug(4, bug="sign"), dense_params(3, 4), rng(17).standard_normal((5, 3)))
    assert report.failed_primals == ("params.w",)


class MSENoMean(fnnet.MSE):
    def grad(self, out, target):
        return 2 * (out - target)                  # BUG: missing 1/n


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_missing_one_over_n(dtype):
    out, t = rng(18).standard_normal((6, 2)).astype(dtype), rng(19).standard_normal((6, 2)).astype(dtype)
    report = check.check_loss(MSENoMean(), out, t)
    assert report.failed_primals == ("out",)
    assert statuses(report, "out") == {"jax": "FAIL", "reference": "FAIL", "fd": "FAIL"}
    # and at network level the bug reaches every parameter
    net = fnnet.Network((fnnet.Dense(2),), MSENoMean(), (3,))
    report = check.check_network(net, (dense_params(3, 2, dtype),), rng(20).standard_normal((6, 3)).astype(dtype), t)
    assert set(report.failed_primals) == {"params[0].w", "params[0].b", "x"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_hidden_delta_skips_activation_derivative(dtype):
    net = fnnet.Network((fnnet.Dense(4), SigmoidSkipsDerivative(), fnnet.Dense(2)), "mse", (3,))
    params = (dense_params(3, 4, dtype), (), dense_params(4, 2, dtype, seed=1))
    report = check.check_network(net, params, rng(21).standard_normal((5, 3)).astype(dtype),
                                 rng(22).standard_normal((5, 2)).astype(dtype))
    # the layers above the buggy one are right; everything below it is wrong
    assert set(report.failed_primals) == {"params[0].w", "params[0].b", "x"}
    assert statuses(report, "params[2].w") == {"jax": "ok", "reference": "ok", "fd": "ok"}
    assert statuses(report, "params[0].w") == {"jax": "FAIL", "reference": "FAIL", "fd": "FAIL"}


def test_monkeypatched_builtin_backward_is_caught(monkeypatch):
    monkeypatch.setattr(fnnet.Sigmoid, "backward", SigmoidAtActivation.backward)
    net = fnnet.mlp([2, 3, 2], activation="relu", output="sigmoid", loss="half_sse")
    params = (dense_params(2, 3), (), dense_params(3, 2, seed=1), ())
    report = check.check_network(net, params, rng(23).standard_normal((4, 2)), rng(24).uniform(0, 1, (4, 2)))
    assert not report.ok
    assert "params[2].w" in report.failed_primals and "params[2].b" in report.failed_primals


# --- kinks: disagreements the interval resolves, and ones it must not -------------------

def relu_max(x):
    return jnp.maximum(x, 0.0)                     # jax.grad gives 0.5 at x == 0


def test_jax_convention_at_a_tie_is_accepted_as_kink():
    x = np.array([[0.0, 1.0, -2.0, 0.0]])
    hand = lambda x, ct: (jnp.where(x > 0, ct, 0.0),)      # relu'(0) = 0: also correct
    report = check.check_vjp(relu_max, hand, x)
    assert_all_ok(report)
    assert report.rows_for("x", "jax")[0].kinks == 2


def test_a_value_outside_the_kink_interval_still_fails():
    x = np.array([[0.0, 1.0, -2.0, 0.5]])
    hand = lambda x, ct: (jnp.where(x > 0, ct, 2.0 * ct),)  # BUG: slope 2 left of 0
    report = check.check_vjp(relu_max, hand, x, cotangent=np.ones((1, 4)))
    assert report.failed_primals == ("x",)
    assert report.rows_for("x", "jax")[0].worst_index == (0, 2)


def test_directional_kink_combinations_resolved_per_element():
    # 3000 elements (> full_max): directional mode; a third of them exactly at relu's kink,
    # so random directions cross many kinks at once and may fall outside [bwd, fwd];
    # the per-element fallback settles it
    x = kinky((30, 100), seed=25)
    report = check.check_layer(fnnet.Relu(), (), x, mode="directional")
    assert_all_ok(report)
    report = check.check_layer(fnnet.Relu(), (), x)
    assert_all_ok(report)


def test_chain_of_units_at_a_kink_is_not_a_false_alarm():
    # width-1 hidden layers, zero biases, a zero input row: both hidden units of row 0 sit
    # exactly at 0. Along params[0].b the composite is smooth there (slope 0.01·w on both
    # sides) while the chain rule's leaky'(0) = alpha twice gives 0.0001·w, in the
    # hand-written backward and in jax alike; autodiff's derivative jumps right beside the
    # point, which marks it as a kink rather than a bug
    net = fnnet.mlp([3, 1, 1, 4], activation="leaky_relu", loss="mse")
    r = rng(1)
    params = tuple(fnnet.DenseParams(r.standard_normal(q.w.shape), np.zeros(q.b.shape)) if q else ()
                   for q in fnnet.init(net, jax.random.key(0), np.float64))
    x = rng(66).standard_normal((4, 3))
    x[0] = 0.0
    report = check.check_network(net, params, x, r.uniform(0, 1, (4, 4)))
    assert_all_ok(report)
    assert report.rows_for("params[0].b", "fd")[0].kinks == 1


def test_large_leaf_bug_is_localized_after_directional_failure():
    layer = DenseBug(60, bug="single_entry")       # w: 50 x 60 = 3000 elements > full_max
    report = check.check_layer(layer, dense_params(50, 60), rng(26).standard_normal((4, 50)))
    (fd,) = report.rows_for("params.w", "fd")
    assert fd.status == "FAIL" and fd.worst_index == (1, 2) and "directions" in fd.note
    assert report.failed_primals == ("params.w",)


# --- wrong structures give clear messages ----------------------------------------------

def test_wrong_number_of_cotangents_raises_clearly():
    fun, vjp = layer_fns(fnnet.Dense(2))
    with pytest.raises(ValueError, match=r"one cotangent per primal \(2: params, x\), got tuple of length 1"):
        check.check_vjp(fun, lambda p, x, ct: (vjp(p, x, ct)[0],), dense_params(3, 2), np.ones((2, 3)))
    with pytest.raises(ValueError, match="got DenseParams of length 2"):
        check.check_vjp(lambda p: fun(p, np.ones((2, 3))), lambda p, ct: vjp(p, np.ones((2, 3)), ct)[0],
                        dense_params(3, 2))


def test_wrong_tree_is_a_failed_structure_row():
    fun, vjp = layer_fns(fnnet.Dense(2))

    def as_dict(p, x, ct):
        dp, dx = vjp(p, x, ct)
        return {"w": dp.w, "b": dp.b}, dx
    report = check.check_vjp(fun, as_dict, dense_params(3, 2), np.ones((2, 3)))
    assert report.failed_primals == ("params",)
    (row,) = report.rows_for("params")
    assert "DenseParams" in row.note and "dict" in row.note and "expected" in row.note
    assert statuses(report, "x") == {"jax": "ok", "reference": "n/a", "fd": "ok"}


def test_wrong_dtype_is_a_failed_structure_row():
    fun, vjp = layer_fns(fnnet.Relu())
    report = check.check_vjp(fun, lambda p, x, ct: ((), vjp(p, x, ct)[1].astype(jnp.float64)),
                             (), np.ones((2, 3), np.float32))
    assert report.failed_primals == ("x",)
    assert "dtype float64, expected float32" in report.rows_for("x", "structure")[0].note


def test_errors_from_the_vjp_say_where_they_came_from():
    def broken(x, ct):
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom") as info:
        check.check_vjp(jnp.tanh, broken, np.ones(3))
    assert any("hand-written vjp" in n for n in getattr(info.value, "__notes__", []))


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="cotangent must have the output's shape"):
        check.check_vjp(jnp.tanh, lambda x, ct: (ct,), np.ones(3), cotangent=np.ones(4))
    with pytest.raises(TypeError, match="must be a floating array"):
        check.check_vjp(lambda x: x * 1.0, lambda x, ct: (ct,), np.arange(3))
    with pytest.raises(ValueError, match="mode"):
        check.check_vjp(jnp.tanh, lambda x, ct: (ct,), np.ones(3), mode="fast")


# --- the report -------------------------------------------------------------------------

def test_report_table_names_the_oracle_side_leaf_and_index():
    report = check.check_layer(DenseBug(4, bug="single_entry"), dense_params(3, 4), np.ones((2, 3)))
    text = str(report)
    assert "hand-written vs oracle" in text.splitlines()[0]
    for column in ("primal", "oracle", "max abs err", "rel err", "worst index", "tol", "verdict"):
        assert column in text
    assert "jax.vjp" in text and "reference" in text and "finite diff" in text
    assert "(1, 2)" in text and "FAIL" in text
    with pytest.raises(TypeError, match="truth value"):
        bool(report)


def test_user_layer_without_twin_is_na_unless_reference_given():
    @dataclasses.dataclass(frozen=True)
    class Square:
        def init(self, key, in_shape):
            return (), tuple(in_shape)

        def forward(self, params, x):
            return x * x, x

        def backward(self, params, cache, dy):
            return (), 2 * cache * dy

    x = rng(27).standard_normal((3, 4))
    report = check.check_layer(Square(), (), x)
    assert report.ok
    (ref,) = report.rows_for("x", "reference")
    assert ref.status == "n/a" and "reference=callable" in ref.note
    report = check.check_layer(Square(), (), x, reference=lambda p, x, ct: ((), 2 * x * ct))
    assert statuses(report, "x") == {"jax": "ok", "reference": "ok", "fd": "ok"}
    report = check.check_layer(Square(), (), x, reference=lambda p, x, ct: ((), 3 * x * ct))
    assert statuses(report, "x")["reference"] == "FAIL"
    # float32 too, for a reference 1 % off: the autodiff yardstick that widens float32
    # tolerances is measured against jax.vjp in float64, never against the reference being
    # judged (which once let a wrong reference widen its own tolerance and pass in float32)
    x32 = x.astype(np.float32)
    good = check.check_layer(Square(), (), x32, reference=lambda p, x, ct: ((), 2 * x * ct))
    assert statuses(good, "x") == {"jax": "ok", "reference": "ok", "fd": "ok"}, str(good)
    bad = check.check_layer(Square(), (), x32, reference=lambda p, x, ct: ((), 2.02 * x * ct))
    assert statuses(bad, "x") == {"jax": "ok", "reference": "FAIL", "fd": "ok"}, str(bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_network_params_only_in_both_dtypes(dtype):
    """wrt_x=False holds x fixed; finite differences run the params in float64, so the held
    x must follow them (a float32 x once met float64 params there and raised TypeError)."""
    r = rng(31)
    x, y = r.standard_normal((6, 4)).astype(dtype), r.integers(0, 3, 6).astype(np.int32)
    good = fnnet.Network((fnnet.Dense(5), fnnet.Tanh(), fnnet.Dense(3)), "softmax_cross_entropy", (4,))
    params = jax.tree.map(lambda a: np.asarray(a, dtype), fnnet.init(good, jax.random.key(3), np.float64))
    report = check.check_network(good, params, x, y, wrt_x=False)
    assert_all_ok(report)
    assert {r.primal.split(".")[0].split("[")[0] for r in report.rows} == {"params"}
    bad = fnnet.Network((DenseBug(5, bug="db_mean"), fnnet.Tanh(), fnnet.Dense(3)), "softmax_cross_entropy", (4,))
    report = check.check_network(bad, params, x, y, wrt_x=False)
    assert not report.ok and report.failed_primals == ("params[0].b",), str(report)
