"""check_complex_vjp: complex primals and outputs in JAX's convention (a cotangent c pairs with a
tangent t by Re(c·t)): right rules for a holomorphic and a non-holomorphic function pass in
complex128 and complex64; a rule missing a conj (or written in PyTorch's convention) fails on
the .re/.im leaf it gets wrong."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.complex128, np.complex64]


def cnormal(*shape, seed=0, dtype=np.complex128):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def sin_times(z, w):
    return jnp.sin(z) * w                                               # holomorphic in z and w


@pytest.mark.parametrize("dtype", DTYPES)
def test_holomorphic_rule_in_jax_convention_passes_and_torch_convention_fails(dtype):
    z, w = cnormal(2, 3, dtype=dtype), cnormal(2, 3, seed=1, dtype=dtype)
    right = lambda z, w, c: (c * jnp.cos(z) * w, c * jnp.sin(z))        # c·∂f/∂z, c·∂f/∂w: no conj
    rep = check.check_complex_vjp(sin_times, right, z, w)
    assert rep.ok and {r.primal for r in rep.rows} >= {"z.re", "z.im", "w.re", "w.im"}, str(rep)
    assert rep.rows_for("z.re", "jax")[0].status == "ok" and "Re(c·t)" in rep.header
    torch_style = lambda z, w, c: (c * jnp.conj(jnp.cos(z) * w), c * jnp.sin(z))   # c·conj(f'(z)) for z
    rep = check.check_complex_vjp(sin_times, torch_style, z, w)
    assert set(rep.failed_primals) == {"z.re", "z.im"}, str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_holomorphic_rule_needs_its_conj(dtype):
    f = lambda z: jnp.abs(z) ** 2 * z                  # d = 2|z|²·dz + z²·conj(dz)
    z = cnormal(5, dtype=dtype)
    right = lambda z, c: (2 * jnp.abs(z) ** 2 * c + jnp.conj(c * z ** 2),)   # c·α + conj(c·β)
    assert check.check_complex_vjp(f, right, z).ok
    missing = lambda z, c: (2 * jnp.abs(z) ** 2 * c + c * z ** 2,)
    assert not check.check_complex_vjp(f, missing, z).ok
    # a real output: jax.grad of |z|² is 2·conj(z), not 2·z
    norm2 = lambda z: jnp.sum(jnp.abs(z) ** 2)
    assert check.check_complex_vjp(norm2, lambda z, c: (2 * c * jnp.conj(z),), z).ok
    assert not check.check_complex_vjp(norm2, lambda z, c: (2 * c * z,), z).ok


def test_a_custom_vjp_with_complex_inputs_and_a_given_cotangent():
    def make(conj):
        @jax.custom_vjp
        def f(z):
            return jnp.exp(z)
        f.defvjp(lambda z: (jnp.exp(z), z),
                 lambda z, c: (c * (jnp.conj(jnp.exp(z)) if conj else jnp.exp(z)),))   # c·exp(z)
        return f
    z = cnormal(4)
    assert check.check_custom_vjp(make(False), z).ok
    rep = check.check_custom_vjp(make(True), z)
    assert "z.im" in rep.failed_primals, str(rep)
    c = cnormal(4, seed=2)
    assert check.check_complex_vjp(jnp.exp, lambda z, c: (c * jnp.exp(z),), z, cotangent=c).ok


def test_real_primals_beside_complex_ones_and_a_reference():
    # s real, y complex: s's cotangent is Re(c·∂y/∂s), a real array
    f = lambda z, s: jnp.sin(z) * s
    z, s = cnormal(2, 3), np.random.default_rng(3).standard_normal((2, 3))
    right = lambda z, s, c: (c * jnp.cos(z) * s, jnp.real(c * jnp.sin(z)))
    ref = lambda z, s, c: (c * np.cos(z) * s, np.real(c * np.sin(z)))   # NumPy complex128 twin
    rep = check.check_complex_vjp(f, right, z, s, reference=ref)
    assert rep.ok and rep.rows_for("s", "reference")[0].status == "ok", str(rep)
    assert rep.rows_for("z.im", "reference")[0].status == "ok", str(rep)
    wrong_ref = lambda z, s, c: (np.conj(c * np.cos(z)) * s, np.real(c * np.sin(z)))
    rep = check.check_complex_vjp(f, right, z, s, reference=wrong_ref)
    assert rep.rows_for("z.im", "reference")[0].status == "FAIL", str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_vjp_routes_complex_primals_and_outputs_to_jax_convention(dtype):
    # complex primals: the same rows as check_complex_vjp, a missing conj caught on z.im
    f = lambda z, w: jnp.abs(z) ** 2 * z * w
    z, w = cnormal(3, dtype=dtype), cnormal(3, seed=1, dtype=dtype)
    right = lambda z, w, c: (2 * jnp.abs(z) ** 2 * c * w + jnp.conj(c * w * z ** 2), c * jnp.abs(z) ** 2 * z)
    rep = check.check_vjp(f, right, z, w)
    assert rep.ok and "Re(c·t)" in rep.header, str(rep)
    assert {"z.re", "z.im", "w.re", "w.im"} <= {r.primal for r in rep.rows}
    missing = lambda z, w, c: (2 * jnp.abs(z) ** 2 * c * w + c * w * z ** 2, c * jnp.abs(z) ** 2 * z)
    assert "z.im" in check.check_vjp(f, missing, z, w).failed_primals
    # real primal, complex output (seen from fun's abstract trace): s's cotangent is Re(c·∂y/∂s)
    real = np.float64 if dtype == np.complex128 else np.float32
    s = np.random.default_rng(4).standard_normal(3).astype(real)
    g = lambda s: jnp.exp(1j * s)
    rep = check.check_vjp(g, lambda s, c: (jnp.real(c * 1j * jnp.exp(1j * s)),), s)
    assert rep.ok and "Re(c·t)" in rep.header, str(rep)
    assert not check.check_vjp(g, lambda s, c: (jnp.real(jnp.conj(c) * 1j * jnp.exp(1j * s)),), s).ok
