"""check_custom_vjp, check_jvp, check_second_order, check_per_example, rtol/atol overrides,
and ACTUAL/EXPECTED values in the report."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def custom_mul(bug=None):
    @jax.custom_vjp
    def f(x, w):
        return jnp.sin(x) * w

    def bwd(res, g):
        x, w = res
        dx = g * (jnp.sin(x) if bug == "dx" else jnp.cos(x)) * w          # d/dx sin(x)·w = cos(x)·w
        return dx, (None if bug == "dw" else g * jnp.sin(x))             # d/dw = sin(x)
    f.defvjp(lambda x, w: (jnp.sin(x) * w, (x, w)), bwd)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_custom_vjp_reads_the_rule_from_the_function(dtype):
    x, w = normal(3, 4, dtype=dtype), normal(3, 4, seed=1, dtype=dtype)
    rep = check.check_custom_vjp(custom_mul(), x, w)
    assert rep.ok, str(rep)
    assert rep.rows_for("x", "jax")[0].status == "ok"             # autodiff of f.fun: independent
    assert rep.rows_for("fwd output")[0].status == "ok"
    assert check.check_custom_vjp(custom_mul("dx"), x, w).failed_primals == ("x",)
    assert check.check_custom_vjp(custom_mul("dw"), x, w).failed_primals == ("w",)


def test_check_custom_vjp_nondiff_argnums_and_wrong_fwd():
    from functools import partial

    @partial(jax.custom_vjp, nondiff_argnums=(1,))
    def power(x, k):
        return x ** k
    power.defvjp(lambda x, k: (x ** k, x), lambda k, x, g: (g * k * x ** (k - 1),))
    assert check.check_custom_vjp(power, normal(5), 3).ok

    @jax.custom_vjp
    def g(x):
        return jnp.tanh(x)
    g.defvjp(lambda x: (jnp.sin(x), x), lambda x, ct: (ct * (1 - jnp.tanh(x) ** 2),))   # fwd computes sin
    rep = check.check_custom_vjp(g, normal(5))
    assert rep.failed_primals == ("fwd output",), str(rep)
    with pytest.raises(TypeError, match="jax.custom_vjp"):
        check.check_custom_vjp(jnp.sin, normal(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_jvp_custom_and_plain_rules(dtype):
    @jax.custom_jvp
    def h(x):
        return jnp.tanh(x)
    h.defjvp(lambda p, t: (jnp.tanh(p[0]), (1 - jnp.tanh(p[0]) ** 2) * t[0]))
    x = normal(3, 4, dtype=dtype)
    assert check.check_jvp(h, x).ok
    wrong = lambda p, t: (jnp.tanh(p[0]), (1 - jnp.tanh(p[0])) * t[0])
    rep = check.check_jvp(jnp.tanh, x, jvp=wrong)
    assert not rep.ok and {r.kind for r in rep.failures} == {"jax", "fd"}, str(rep)
    # a kink: relu's rule with relu'(0) = 0 is inside the one-sided interval at 0
    z = normal(3, 4, dtype=dtype)
    z[0] = 0.0
    relu_rule = lambda p, t: (jnp.maximum(p[0], 0), jnp.where(p[0] > 0, t[0], 0.0))
    assert check.check_jvp(lambda a: jnp.maximum(a, 0), z, jvp=relu_rule).ok


def test_check_second_order_catches_a_backward_that_is_not_differentiable():
    x = normal(3, 4)
    good = lambda x, ct: (ct * (1 - jnp.tanh(x) ** 2),)
    assert check.check_second_order(jnp.tanh, good, x).ok
    cut = lambda x, ct: (ct * (1 - jax.lax.stop_gradient(jnp.tanh(x)) ** 2),)   # right value, wrong derivative
    assert check.check_vjp(jnp.tanh, cut, x).ok
    rep = check.check_second_order(jnp.tanh, cut, x)
    assert rep.failed_primals == ("x",) and "jax HVP" in str(rep), str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_per_example(dtype):
    w = {"w": normal(4, 2, seed=1, dtype=dtype)}
    x = normal(5, 4, dtype=dtype)
    fun = lambda p, x: jnp.tanh(x @ p["w"])

    def vjp(p, x, ct, mean=False):
        dz = ct * (1 - jnp.tanh(x @ p["w"]) ** 2)                      # dL/dz = dL/dy ⊙ (1 - y²)
        dw = x.T @ dz                                                   # dL/dW = xᵀ · dL/dz
        return {"w": dw / x.shape[0] if mean else dw}, dz @ p["w"].T    # dL/dx = dL/dz · Wᵀ
    assert check.check_per_example(fun, vjp, w, x).ok
    rep = check.check_per_example(fun, lambda p, x, ct: vjp(p, x, ct, mean=True), w, x)
    assert [r.oracle for r in rep.failures] == ["Σ per-example vs batch"], str(rep)


def test_user_rtol_atol_and_actual_expected_in_the_report():
    x = normal(3, 4)
    off = lambda x, ct: (2 * x * ct * (1 + 1e-7),)                    # 1e-7 relative: fails the default
    rep = check.check_vjp(lambda x: x * x, off, x)
    assert not rep.ok
    row = rep.rows_for("x", "jax")[0]
    assert row.actual is not None and row.expected is not None
    i = row.worst_index
    assert abs(row.actual - row.expected * (1 + 1e-7)) < 1e-12
    assert "actual" in str(rep) and "expected" in str(rep)
    assert check.check_vjp(lambda x: x * x, off, x, rtol=1e-5).ok
    assert not check.check_vjp(lambda x: x * x, lambda x, ct: (2 * x * ct + 1e-3,), x, rtol=1e-5).ok
    assert check.check_vjp(lambda x: x * x, lambda x, ct: (2 * x * ct + 1e-3,), x, rtol=1e-5, atol=1e-2).ok
    assert i is not None


def test_check_custom_vjp_takes_symbolic_zeros_rules():
    # symbolic_zeros=True: fwd gets CustomVJPPrimal wrappers (fnnet.loss_with_manual_grad is one).
    def make(factor):
        @jax.custom_vjp
        def f(x, n):
            return jnp.sin(x) * n

        def fwd(x, n):
            assert isinstance(x, jax.custom_derivatives.CustomVJPPrimal) and x.perturbed
            assert not n.perturbed                       # integer: not differentiated
            return f.fun(x.value, n.value), (x.value, n.value)

        def bwd(res, g):
            x, n = res
            return (g * factor * jnp.cos(x) * n, None)   # d/dx sin(x)·n = cos(x)·n

        f.defvjp(fwd, bwd, symbolic_zeros=True)
        return f

    x = np.linspace(-2, 2, 6).reshape(2, 3)
    n = np.array([[1, 2, 3], [3, 2, 1]])
    assert check.check_custom_vjp(make(1.0), x, n).ok
    assert not check.check_custom_vjp(make(1.1), x, n).ok


def test_check_layer_messages_name_the_layers_backward_not_a_vjp():
    @dataclasses.dataclass(frozen=True)
    class OnlyDx:                                       # forgets the () for its params
        def init(self, key, in_shape): return (), tuple(in_shape)
        def forward(self, params, x): return 2 * x, None
        def backward(self, params, cache, dy): return 2 * dy

    with pytest.raises(ValueError, match=r"layer\.backward must return a tuple with one cotangent per primal"):
        check.check_layer(OnlyDx(), (), np.ones((2, 3)))
