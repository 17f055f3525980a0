"""check_adjoint: <u, Jᵀv> of a VJP rule equals <Ju, v> of the JVP rule of the same function,
in float64 and float32, for a custom_jvp (VJP by jax's transpose), a custom_vjp with a JVP
given, and a plain pair; a wrong rule fails the row of the leaf it is wrong on."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def affine_tanh(x, w):
    return jnp.tanh(x @ w)                                              # x [n, d], w [d, k]


def jvp_affine_tanh(p, t):
    (x, w), (dx, dw) = p, t
    y = jnp.tanh(x @ w)
    return y, (1 - y ** 2) * (dx @ w + x @ dw)                          # ẏ = (1 - y²) ⊙ (ẋ·W + x·Ẇ)


def vjp_affine_tanh(x, w, ct, bug=None):
    dz = ct * (1 - jnp.tanh(x @ w) ** 2)                                # dL/dz = ct ⊙ (1 - y²)
    dx = dz @ (w if bug == "dx" else w.T)                               # dL/dx = dL/dz · Wᵀ
    dw = x.T @ dz * (2.0 if bug == "dw" else 1.0)                       # dL/dW = xᵀ · dL/dz
    return dx, dw


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_plain_pair_passes_and_a_wrong_vjp_fails_on_its_leaf(dtype):
    x, w = normal(2, 3, dtype=dtype), normal(3, 3, seed=1, dtype=dtype)
    rep = check.check_adjoint(affine_tanh, jvp_affine_tanh, vjp_affine_tanh, x, w)
    assert rep.ok and [r.primal for r in rep.rows] == ["x", "w"], str(rep)
    assert all(r.rel_err <= r.tol for r in rep.rows), str(rep)
    for bug in ("dx", "dw"):
        rep = check.check_adjoint(affine_tanh, jvp_affine_tanh,
                                  lambda x, w, ct, bug=bug: vjp_affine_tanh(x, w, ct, bug), x, w)
        assert rep.failed_primals == (bug[1:],), str(rep)
        assert "not each other's transpose" in rep.failures[0].note


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_custom_jvp_rule_against_its_own_transpose(dtype):
    def make(extra):
        @jax.custom_jvp
        def f(x):
            return jnp.sin(x)

        @f.defjvp
        def rule(p, t):
            (x,), (u,) = p, t
            return jnp.sin(x), jnp.cos(x) * u + extra(x, u)             # ẏ = cos(x) ⊙ u (+ the bug)
        return f
    x = normal(3, 4, dtype=dtype)
    rep = check.check_adjoint(make(lambda x, u: 0.0), None, None, x)
    assert rep.ok, str(rep)
    assert "linear_transpose" in rep.header
    # an offset free of the tangent: jax's transpose drops it, the rule keeps it
    rep = check.check_adjoint(make(lambda x, u: 1e-3 * x), None, None, x)
    assert rep.failed_primals == ("x",), str(rep)
    # not linear in the tangent: jax cannot transpose it, and the row says why
    rep = check.check_adjoint(make(lambda x, u: u * u), None, None, x)
    assert not rep.ok and "linear in its tangents" in rep.failures[0].note, str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_custom_vjp_with_a_jvp_given(dtype):
    def make(factor):
        @jax.custom_vjp
        def f(x, w):
            return affine_tanh(x, w)
        f.defvjp(lambda x, w: (f.fun(x, w), (x, w)),
                 lambda res, ct: tuple(factor * g for g in vjp_affine_tanh(*res, ct)))
        return f
    x, w = normal(2, 3, dtype=dtype), normal(3, 2, seed=1, dtype=dtype)
    assert check.check_adjoint(make(1.0), jvp_affine_tanh, None, x, w).ok
    rep = check.check_adjoint(make(1.0 + 1e-3), jvp_affine_tanh, None, x, w)
    assert rep.failed_primals == ("x", "w"), str(rep)


def test_the_tolerance_is_rounding_sized_in_float64():
    # a 1e-9 relative slip, far below any finite-difference check's resolution, fails
    x, w = normal(2, 3), normal(3, 3, seed=1)
    slip = lambda x, w, ct: tuple((1 + 1e-9) * g for g in vjp_affine_tanh(x, w, ct))
    rep = check.check_adjoint(affine_tanh, jvp_affine_tanh, slip, x, w)
    assert rep.failed_primals == ("x", "w"), str(rep)
    assert max(r.tol for r in rep.rows) < 1e-12, str(rep)


def test_missing_rules_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="pairs must be an int >= 1"):
        check.check_adjoint(affine_tanh, jvp_affine_tanh, vjp_affine_tanh, normal(2, 3), normal(3, 3), pairs=0)
    with pytest.raises(TypeError, match="give jvp="):
        check.check_adjoint(jnp.sin, None, lambda x, ct: (ct * jnp.cos(x),), normal(3))
    with pytest.raises(TypeError, match="give vjp="):
        check.check_adjoint(jnp.sin, lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]), None, normal(3))


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_rules_pair_by_jaxs_convention(dtype):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(dtype)
    f = lambda z: jnp.abs(z) ** 2 * z                                   # ż = 2|z|²·u + z²·conj(u)
    jvp = lambda p, t: (f(p[0]), 2 * jnp.abs(p[0]) ** 2 * t[0] + p[0] ** 2 * jnp.conj(t[0]))
    right = lambda z, c: (2 * jnp.abs(z) ** 2 * c + jnp.conj(c * z ** 2),)   # c·α + conj(c·β)
    rep = check.check_adjoint(f, jvp, right, z)
    assert rep.ok, str(rep)
    missing = lambda z, c: (2 * jnp.abs(z) ** 2 * c + c * z ** 2,)
    assert check.check_adjoint(f, jvp, missing, z).failed_primals == ("z",)

    @jax.custom_jvp
    def s(z):
        return jnp.sin(z)
    s.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]))
    assert check.check_adjoint(s, None, None, z).ok                     # vs jax's transpose of the rule
    torch_style = lambda z, c: (c * jnp.conj(jnp.cos(z)),)
    assert not check.check_adjoint(s, None, torch_style, z).ok
