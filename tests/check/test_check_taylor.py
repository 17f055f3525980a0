"""taylor_test: the first-order Taylor remainder of fun with the rule's gradient falls as h²
(slope 2) when the gradient is right and as h (slope 1) when it is wrong, with an automatic h
range, in float64 and float32; a function linear along v passes as "linear"."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def dense_tanh(x, w):
    return jnp.tanh(x @ w)                                              # x [n, d], w [d, k]


def dense_tanh_vjp(x, w, ct, bug=None):
    dz = ct * (1 - jnp.tanh(x @ w) ** 2)                                # dL/dz = ct ⊙ (1 - y²)
    dx = dz @ (w if bug == "transpose" else w.T)                        # dL/dx = dL/dz · Wᵀ
    dw = x.T @ dz * (1 + 1e-4 if bug == "scale" else 1.0)               # dL/dW = xᵀ · dL/dz
    return dx, dw


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_right_gradient_has_slope_two_and_a_wrong_one_slope_one(dtype):
    x, w = normal(2, 3, dtype=dtype), normal(3, 3, seed=1, dtype=dtype)
    rep = check.taylor_test(dense_tanh, dense_tanh_vjp, x, w)
    assert rep.ok, str(rep)
    for row in rep.rows:
        assert row.actual == pytest.approx(2.0, abs=0.1) and "slope 2.0" in row.note and "h in [" in row.note
    for curve in rep.curves:
        assert curve["used"].sum() >= 2 and (np.diff(curve["r"][curve["used"]]) < 0).all()
    for bug in ("transpose", "scale"):                                  # O(1), and 1e-4 of one leaf
        rep = check.taylor_test(dense_tanh, lambda x, w, ct, bug=bug: dense_tanh_vjp(x, w, ct, bug), x, w)
        assert not rep.ok and all(r.status == "FAIL" for r in rep.rows), str(rep)
        assert all(r.actual == pytest.approx(1.0, abs=0.1) for r in rep.rows), str(rep)
        assert "not the derivative along v" in rep.failures[0].note


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_units_with_a_right_gradient_pass(dtype):
    # pre-activations in the tens: 1 - tanh² is 0 in float32, tiny in float64; the rule's mathematics is
    # judged (rerun in float64), not float32's rounding, which would read as slope 1
    x, w = normal(2, 3, dtype=dtype, scale=30.0), normal(3, 3, seed=1, dtype=dtype)
    assert check.taylor_test(dense_tanh, dense_tanh_vjp, x, w).ok


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_custom_vjp_is_read_from_the_function(dtype):
    def make(factor):
        @jax.custom_vjp
        def f(x):
            return jnp.sum(jnp.exp(x) * jnp.sin(x))
        f.defvjp(lambda x: (f.fun(x), x),
                 lambda x, g: (g * factor * jnp.exp(x) * (jnp.sin(x) + jnp.cos(x)),))   # eˣ(sin x + cos x)
        return f
    x = normal(5, dtype=dtype)
    assert check.taylor_test(make(1.0), None, x).ok
    assert not check.taylor_test(make(0.9), None, x).ok


def test_a_linear_function_passes_as_linear_and_a_wrong_slope_of_it_fails():
    x = normal(4)
    rep = check.taylor_test(lambda x: 3 * x[::-1], lambda x, ct: (3 * ct[::-1],), x)
    assert rep.ok and all(r.note.startswith("linear, passes") for r in rep.rows), str(rep)
    rep = check.taylor_test(lambda x: 3 * x[::-1], lambda x, ct: (3 * ct,), x)        # forgot the reversal
    assert not rep.ok, str(rep)


def test_a_kink_at_the_point_reads_as_slope_one():
    # relu at exactly 0: no derivative there; the witness says so (check_vjp's kink rules accept it)
    rep = check.taylor_test(jax.nn.relu, lambda x, ct: (ct * (x > 0),), np.array([-1.0, 0.0, 2.0, -0.3]))
    assert not rep.ok, str(rep)
    rep = check.taylor_test(jax.nn.relu, lambda x, ct: (ct * (x > 0),), np.array([-1.0, 0.4, 2.0, -0.3]))
    assert rep.ok, str(rep)


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps must be an int >= 4"):
        check.taylor_test(jnp.sin, lambda x, ct: (ct * jnp.cos(x),), normal(3), steps=3)
    with pytest.raises(TypeError, match="give vjp="):
        check.taylor_test(jnp.sin, None, normal(3))
    with pytest.raises(ValueError, match="shape"):
        check.taylor_test(jnp.sin, lambda x, ct: (ct[:2],), normal(3))


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_rules_in_jaxs_convention(dtype):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(dtype)
    f = lambda z: jnp.abs(z) ** 2 * z                                   # not holomorphic
    right = lambda z, c: (2 * jnp.abs(z) ** 2 * c + jnp.conj(c * z ** 2),)
    rep = check.taylor_test(f, right, z)
    assert rep.ok and all(r.actual == pytest.approx(2.0, abs=0.1) for r in rep.rows), str(rep)
    assert not check.taylor_test(f, lambda z, c: (2 * jnp.abs(z) ** 2 * c + c * z ** 2,), z).ok   # a conj missing
    assert not check.taylor_test(jnp.sin, lambda z, c: (c * jnp.conj(jnp.cos(z)),), z).ok         # PyTorch's convention
