"""The checker's mechanisms, one test each: a wrong rule that must fail and a right rule that
must pass, in float64 and float32 where meaningful. Each named mechanism failed before the
checker handled it; the rules are written as a user would write them (plain jnp)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# 1. check_jvp: the rule's primal output is compared with f(x); jax.jvp can be outvoted ------

def _custom_jvp(fun, rule):
    f = jax.custom_jvp(fun)
    f.defjvp(rule)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
def test_jvp_rule_with_a_wrong_primal_output_fails(dtype):
    def bad(p, t):
        (x,), (u,) = p, t
        return jnp.sin(x) * jnp.inf, jnp.cos(x) * u
    rep = check.check_jvp(_custom_jvp(jnp.sin, bad), normal(3, 4, dtype=dtype))
    assert not rep.ok, str(rep)
    assert any(r.kind == "forward" and r.status == "FAIL" for r in rep.rows), str(rep)

    def good(p, t):
        (x,), (u,) = p, t
        return jnp.sin(x), jnp.cos(x) * u
    rep = check.check_jvp(_custom_jvp(jnp.sin, good), normal(3, 4, dtype=dtype))
    assert rep.ok, str(rep)
    assert any(r.kind == "forward" and r.status == "ok" for r in rep.rows), str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jvp_autodiff_outvoted_by_finite_differences(dtype):
    # |x|·sign(x) is x, but jax.jvp says 0 at x = 0 (sign'(0) = 0, |0| = 0)
    fun = lambda x: jnp.abs(x) * jnp.sign(x) + 0.5 * x ** 3
    x = normal(3, 4, dtype=dtype)
    x[0, 1] = x[2, 2] = 0.0
    good = lambda p, t: (fun(p[0]), (1.0 + 1.5 * p[0] ** 2) * t[0])
    rep = check.check_jvp(_custom_jvp(fun, good), x)
    assert rep.ok, str(rep)
    assert rep.rows_for(kind="jax")[0].status == "warn", str(rep)
    wrong = lambda p, t: (fun(p[0]), (1.5 * p[0] ** 2 + jnp.where(p[0] == 0, 0.0, 1.0)) * t[0])
    rep = check.check_jvp(_custom_jvp(fun, wrong), x)
    assert not rep.ok, str(rep)


# 1b. check_jvp judges each output element at the size of the sum behind it, not the leaf's largest

@pytest.mark.parametrize("dtype", DTYPES)
def test_jvp_small_output_element_beside_a_huge_one_is_judged_at_its_own_scale(dtype):
    scales = np.array([[1e4, 3e3, 1e-2, 2e-3]])
    fun = lambda x: jnp.sin(x) * jnp.asarray(scales, x.dtype)

    def rule(off):
        def jvp(p, t):
            (x,), (u,) = p, t
            s = jnp.asarray(scales, x.dtype)
            return jnp.sin(x) * s, jnp.cos(x) * u * s * jnp.asarray(off, x.dtype)
        return jvp
    x = normal(5, 4, seed=3, dtype=dtype)
    rep = check.check_jvp(_custom_jvp(fun, rule([[1.0, 1.0, 1.0, 1.0]])), x)
    assert rep.ok, str(rep)
    # 30% off on the 1e-2 column only: 3e-3 absolute, far below float32's 1e-4 × 1e4 of the
    # leaf's largest element, the tolerance a leaf-wide scale gave it
    rep = check.check_jvp(_custom_jvp(fun, rule([[1.0, 1.0, 1.3, 1.0]])), x)
    assert not rep.ok, str(rep)
    assert {r.worst_index[1] for r in rep.failures if r.kind in ("jax", "fd")} == {2}, str(rep)


# 1c. check_jvp goes through the same leaf rules: a stop_gradient surrogate is a warning ---------

@pytest.mark.parametrize("dtype", DTYPES)
def test_jvp_rule_matching_a_stop_gradient_surrogate_is_a_warning(dtype):
    fun = lambda x: x * jax.lax.stop_gradient(x)
    surrogate = lambda p, t: (fun(p[0]), t[0] * p[0])          # the stopped factor held constant
    rep = check.check_jvp(_custom_jvp(fun, surrogate), normal(3, 4, dtype=dtype))
    assert rep.ok and rep.rows_for("y_dot", "fd")[0].status == "warn", str(rep)
    assert "stop_gradient" in rep.rows_for("y_dot", "fd")[0].note
    wrong = lambda p, t: (fun(p[0]), 3 * t[0] * p[0])           # agrees with neither
    assert not check.check_jvp(_custom_jvp(fun, wrong), normal(3, 4, dtype=dtype)).ok


# 2. kink acceptances hold jointly across primals ------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_tied_maximum_cannot_give_both_primals_the_full_cotangent(dtype):
    a = normal(4, 5, dtype=dtype)
    b = normal(4, 5, seed=1, dtype=dtype)
    b[::2] = a[::2]                                   # ties on every other row
    both = lambda a, b, ct: (ct * (a >= b), ct * (b >= a))          # full ct to each at a tie
    rep = check.check_vjp(jnp.maximum, both, a, b)
    assert not rep.ok, str(rep)
    halves = lambda a, b, ct: (ct * jnp.where(a == b, 0.5, a > b), ct * jnp.where(a == b, 0.5, b > a))
    assert check.check_vjp(jnp.maximum, halves, a, b).ok
    first = lambda a, b, ct: (ct * (a >= b), ct * (b > a))          # the whole tie to a
    assert check.check_vjp(jnp.maximum, first, a, b).ok


# 3. several kinks crossed by one coordinate: judged jointly along directions -----------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_three_way_tie_in_sort_with_equal_shares(dtype):
    x = normal(7, dtype=dtype)
    x[[1, 3, 5]] = x[1]                               # a 3-way tie

    def shares(x, ct):                                # each tied input gets the mean of its group's ct
        order = jnp.argsort(x, stable=True)
        ct_in = jnp.zeros_like(ct).at[order].set(ct)  # the permutation's own vjp
        xs = x[order]
        same = (x[:, None] == xs[None, :])            # [input, output position] with equal value
        return (jnp.sum(same * ct[None, :], 1) / jnp.sum(same, 1) + 0.0 * ct_in,)
    assert check.check_vjp(jnp.sort, shares, x).ok

    def each_full(x, ct):                             # every tied input gets the group's whole ct
        xs = jnp.sort(x)
        same = (x[:, None] == xs[None, :])
        return (jnp.sum(same * ct[None, :], 1),)
    assert not check.check_vjp(jnp.sort, each_full, x).ok


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_rows_sharing_a_weight(dtype):
    # y_i = max(w·x_i, c_i) with every row exactly at its tie: nudging w crosses them all
    x = normal(6, dtype=dtype)
    c = jnp.asarray(x)                                 # w = 1: w·x_i == c_i exactly
    fun = lambda w, x: jnp.maximum(w[0] * x, c)
    w = np.ones(1, dtype)
    first = lambda w, x, ct: (jnp.sum(ct * x)[None], ct * w[0])    # the w·x piece everywhere
    rep = check.check_vjp(fun, first, w, x)
    assert rep.ok, str(rep)
    double = lambda w, x, ct: (2 * jnp.sum(ct * x)[None], ct * w[0])
    assert not check.check_vjp(fun, double, w, x).ok


# 4. a NaN from jax.vjp is outvoted like a finite-but-wrong one ------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_autodiff_at_a_guarded_point_is_outvoted(dtype):
    fun = lambda x: x ** 2 * jnp.log(jnp.abs(x))
    guarded = lambda x: jnp.where(x == 0, 0.0, fun(x))          # jax.vjp: NaN at 0
    x = normal(3, 4, dtype=dtype)
    x[1, 2] = 0.0
    good = lambda x, ct: (ct * jnp.where(x == 0, 0.0, 2 * x * jnp.log(jnp.abs(jnp.where(x == 0, 1.0, x))) + x),)
    rep = check.check_vjp(guarded, good, x)
    assert rep.ok, str(rep)
    assert rep.rows_for("x", "jax")[0].status == "warn", str(rep)
    bad = lambda x, ct: (ct * jnp.where(x == 0, 1.0, 2 * x * jnp.log(jnp.abs(jnp.where(x == 0, 1.0, x))) + x),)
    assert not check.check_vjp(guarded, bad, x).ok


# 5. low-precision internals: say what can and cannot be judged --------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_bfloat16_inside_fun(dtype):
    fun = lambda x: jnp.tanh(x.astype(jnp.bfloat16)).astype(x.dtype) * 2.0
    x = normal(4, 6, dtype=dtype)

    def good(x, ct):
        t = jnp.tanh(x.astype(jnp.bfloat16))
        return (((2.0 * ct).astype(jnp.bfloat16) * (1 - t * t)).astype(x.dtype),)
    rep = check.check_vjp(fun, good, x)
    assert rep.ok, str(rep)
    assert "bfloat16" in rep.header, rep.header
    wrong = lambda x, ct: (good(x, ct)[0] * 1.5,)
    assert not check.check_vjp(fun, wrong, x).ok


def test_low_precision_values_not_computed_from_x_leave_finite_differences_on():
    # a float32 mask drawn from a key (dropout) quantizes nothing of a float64 x: finite
    # differences still judge, and a wrong rule is still caught by them
    key = jax.random.key(7)
    fun = lambda x: x * jax.random.bernoulli(key, 0.6, x.shape).astype(x.dtype) / 0.6
    x = normal(4, 6, dtype=jnp.float64)
    good = lambda x, ct: (ct * jax.random.bernoulli(key, 0.6, x.shape).astype(x.dtype) / 0.6,)
    rep = check.check_vjp(fun, good, x)
    assert rep.ok and rep.max_rel_err("fd") is not None and rep.max_rel_err("fd") < 1e-6, str(rep)
    assert "float32" not in rep.header, rep.header
    bad = lambda x, ct: (ct / 0.6,)                     # forgets the mask
    rep = check.check_vjp(fun, bad, x)
    assert not rep.ok and any(r.kind == "fd" and r.status == "FAIL" for r in rep.rows), str(rep)


def test_bfloat16_inside_a_scan_body_is_found():
    def fun(x):                                         # the cast happens in the loop's body
        step = lambda c, xi: (c + jnp.tanh(xi.astype(jnp.bfloat16)).astype(c.dtype), None)
        return jax.lax.scan(step, jnp.zeros(x.shape[1:], x.dtype), x)[0]
    x = normal(4, 6, dtype=jnp.float64)

    def good(x, ct):
        t = jnp.tanh(x.astype(jnp.bfloat16))
        return ((ct[None, :].astype(jnp.bfloat16) * (1 - t * t)).astype(x.dtype),)
    rep = check.check_vjp(fun, good, x)
    assert rep.ok and "bfloat16" in rep.header, str(rep)


# 6. an integer output leaf is non-differentiable, as an integer input is --------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_output_leaf(dtype):
    fun = lambda x: (jnp.max(x, -1), jnp.argmax(x, -1))
    x = normal(4, 5, dtype=dtype)

    def good(x, ct):
        onehot = jax.nn.one_hot(jnp.argmax(x, -1), x.shape[-1], dtype=x.dtype)
        return (onehot * ct[0][:, None],)
    rep = check.check_vjp(fun, good, x)
    assert rep.ok, str(rep)
    wrong = lambda x, ct: (good(x, ct)[0] * 2.0,)
    assert not check.check_vjp(fun, wrong, x).ok


# 7. a verdict never contradicts its explanation ------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_outvoted_autodiff_on_small_cotangents(dtype):
    # |x|·sign(x) == x: jax.vjp says 0 wherever x == 0; cotangents there span 1e-9 .. 1
    fun = lambda x: 2.0 * jnp.abs(x) * jnp.sign(x) + 0.1 * x
    x = normal(4, 8, dtype=dtype)
    x[:, ::2] = 0.0
    ct = normal(4, 8, seed=3, dtype=dtype) * np.logspace(-9, 0, 8, dtype=dtype)[None, :]
    good = lambda x, ct: (2.1 * ct,)
    rep = check.check_vjp(fun, good, x, cotangent=ct)
    assert rep.ok, str(rep)
    (jax_row,) = rep.rows_for("x", "jax")
    assert jax_row.status == "warn", str(rep)
    wrong = lambda x, ct: (2.1 * ct * jnp.where(jnp.abs(ct) < 1e-6, 3.0, 1.0),)
    rep = check.check_vjp(fun, wrong, x, cotangent=ct)
    assert not rep.ok, str(rep)
    for r in rep.rows:       # no failed row says that the rule passes
        assert not (r.status == "FAIL" and "rule passes" in r.note), str(rep)


# 8. the default cotangent is drawn from its own stream ------------------------------------------

def test_default_cotangent_does_not_collide_with_the_users_draws():
    seen = {}

    def vjp(x, ct):
        seen["ct"] = np.asarray(ct)
        return (ct,)
    check.check_vjp(lambda x: x, vjp, normal(5, 7), jit=False)
    assert not np.allclose(seen["ct"], np.random.default_rng(0).standard_normal((5, 7)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_on_inputs_from_seed_zero(dtype):
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(dtype)

    def fun(x):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)

    def good(x, ct):
        mu = x.mean(-1, keepdims=True)
        s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
        y = (x - mu) / s
        return ((ct - ct.mean(-1, keepdims=True) - y * (ct * y).mean(-1, keepdims=True)) / s,)
    rep = check.check_vjp(fun, good, x)
    assert rep.ok, str(rep)
    assert rep.rows_for("x", "jax")[0].tol < 1e-2, str(rep)
    half = lambda x, ct: (good(x, ct)[0] * 1.01,)
    assert not check.check_vjp(fun, half, x).ok


# 9. a wrong row of a large weight is localized quickly ----------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_wrong_row_of_a_large_weight_is_localized_quickly(dtype):
    rng = np.random.default_rng(5)
    w, x = (rng.standard_normal((300, 300)) / 17).astype(dtype), rng.standard_normal((4, 300)).astype(dtype)
    fun = lambda w, x: jnp.tanh(x @ w)

    def vjp(w, x, ct):
        dz = ct * (1 - jnp.tanh(x @ w) ** 2)
        return x.T @ dz, dz @ w.T
    check.check_vjp(fun, vjp, w, x)                 # compile once
    wrong = lambda w, x, ct: (vjp(w, x, ct)[0].at[17].multiply(1.5), vjp(w, x, ct)[1])
    rep = check.check_vjp(fun, wrong, w, x)
    assert not rep.ok
    fd = rep.rows_for("w", "fd")[0]
    assert fd.status == "FAIL" and fd.worst_index[0] == 17, str(rep)
    localized = int(fd.note.split(" differences)")[0].rsplit("(", 1)[1])
    assert localized < 2000, fd.note             # bisected, not 2 × 90,000 differences
    assert rep.rows_for("w", "jax")[0].worst_index[0] == 17, str(rep)
    # its time is measured by scripts/check_localization_time.py, never asserted here
    assert check.check_vjp(fun, vjp, w, x).ok      # the right rule passes at the same sizes


# reports: a float32 failure says whether float64 passes (precision) or fails too (math) ---------

def test_float32_only_failures_are_called_precision_problems():
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    fun = lambda x: x ** 2
    # right math, cancelling in float32: (x + 1e4) - 1e4 keeps ~3 digits of x in float32, all in float64
    cancel = lambda x, ct: (ct * 2 * ((x + 1e4) - 1e4),)
    rep = check.check_vjp(fun, cancel, x, jit=False)      # eager: XLA would fold the cancellation away
    assert not rep.ok, str(rep)
    assert all("float32-only" in r.note for r in rep.failures), str(rep)
    assert check.check_vjp(fun, cancel, x.astype(np.float64), jit=False).ok
    wrong = lambda x, ct: (ct * 2.01 * x,)
    rep = check.check_vjp(fun, wrong, x)
    assert not rep.ok and all("math bug" in r.note for r in rep.failures), str(rep)


def test_a_coarse_step_on_a_smooth_function_is_not_called_a_kink():
    x = np.linspace(-1.0, 1.0, 6)
    fun = lambda x: jnp.exp(3.0 * x)
    good = lambda x, ct: (3.0 * jnp.exp(3.0 * x) * ct,)
    rep = check.check_vjp(fun, good, x, step=1e-3, mode="full")
    assert rep.ok, str(rep)
    (fd,) = rep.rows_for("x", "fd")
    assert fd.kinks == 0 and "kink" not in str(rep).split("result:")[0].split("\n[")[0], str(rep)
    relu = lambda x: jnp.maximum(x, 0.0)
    x0 = np.array([0.0, 0.5, -0.5, 0.0])
    rep = check.check_vjp(relu, lambda x, ct: ((x > 0) * ct,), x0, step=1e-3, mode="full")
    assert rep.ok and rep.rows_for("x", "fd")[0].kinks == 2, str(rep)


# 10. an entry whose true gradient is exactly 0 (a bias before batch norm) is pure rounding ------

def _bias_before_norm(dtype, wrong=0.0):
    """A conv's bias (positions x channels, flattened) before batch norm: db = Σ_n dh_n cancels
    to 0 exactly, and the rule sums it with a matmul, in another order than autodiff."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal((1, 4)) * 3
    b, z = rng.standard_normal(4).astype(dtype), (0.01 * rng.standard_normal((1000, 4))).astype(dtype)

    def norm(h):
        c = h - h.mean(0, keepdims=True)
        return c, jnp.sqrt((c * c).mean(0, keepdims=True) + 1e-5)

    def fun(b, z):
        c, s = norm(z + b[None, :])
        return jnp.mean(jnp.tanh(c / s) * jnp.asarray(v, z.dtype))

    def rule(b, z, ct):
        c, s = norm(z + b[None, :])
        xh = c / s
        dy = ct * (1 - jnp.tanh(xh) ** 2) * jnp.asarray(v, z.dtype) / z.size
        dh = (dy - dy.mean(0, keepdims=True) - xh * (dy * xh).mean(0, keepdims=True)) / s
        return jnp.ones(z.shape[0], z.dtype) @ dh + wrong * dy.sum(0), dh    # wrong: BN's centring dropped
    return fun, rule, b, z


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_exactly_zero_gradient_is_judged_by_the_rounding_of_its_sums(dtype):
    fun, rule, b, z = _bias_before_norm(dtype)
    rep = check.check_vjp(fun, rule, b, z)
    assert rep.ok, str(rep)
    fun, rule, b, z = _bias_before_norm(dtype, wrong=1e-3)
    rep = check.check_vjp(fun, rule, b, z)
    assert not rep.ok and any(r.primal == "b" for r in rep.failures), str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_bias_before_batchnorm_in_a_network(dtype):
    import fnnet
    net = fnnet.Network((fnnet.Conv2D(3, 3), fnnet.BatchNorm(), fnnet.Relu(), fnnet.Flatten(), fnnet.Dense(3)),
                        "softmax_cross_entropy", (8, 8, 2))
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: (np.asarray(a) + 0.1 * rng.standard_normal(a.shape)).astype(dtype),
                              fnnet.init(net, jax.random.key(1), np.float64))
        state = fnnet.init_state(net, dtype)
    x = (3 * rng.standard_normal((6, 8, 8, 2))).astype(dtype)
    y = rng.integers(0, 3, 6).astype(np.int32)
    rep = check.check_network(net, params, x, y, state=state, wrt_x=False)
    assert rep.ok, str(rep)
    assert np.abs(rep.rows_for("params[0].b", "jax")[0].expected) < 1e-6    # the true gradient is 0

    st = lambda x: jax.tree.map(lambda a: jnp.asarray(a, x.dtype), state)

    def loss(params, x):
        return fnnet.loss(net, params, x, y, state=st(x))[0]

    def wrong(params, x, ct):    # a non-zero conv bias gradient, as if no batch norm followed
        _, grads, dx, *_ = fnnet.backprop(net, params, x, y, state=st(x))
        g0 = grads[0]._replace(b=grads[0].b + 1e-3 * jnp.arange(1, 4, dtype=grads[0].b.dtype))
        return jax.tree.map(lambda g: ct * g, (g0,) + tuple(grads[1:])), ct * dx
    rep = check.check_vjp(loss, wrong, params, x)
    assert not rep.ok and {r.primal for r in rep.failures} == {"params[0].b"}, str(rep)
