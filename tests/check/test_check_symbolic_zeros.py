"""check_symbolic_zeros (and check_custom_vjp for symbolic_zeros=True rules): bwd handed a
SymbolicZero cotangent for one output must give what it gives for a dense zero there, fed
directly and through jax.vjp under jit; a rule that crashes on it or reads it as something
else fails, in float64 and float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.custom_derivatives import SymbolicZero

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def sincos(handling):
    """(sin(x)·w, cos(x)) with a symbolic_zeros=True rule; handling says what bwd does with
    a SymbolicZero cotangent: "skip" its term (right), "raw" arithmetic on it (crashes),
    "ones" (reads it as a cotangent of ones: wrong)."""
    @jax.custom_vjp
    def f(x, w):
        return jnp.sin(x) * w, jnp.cos(x)

    def fwd(x, w):
        return f.fun(x.value, w.value), (x.value, w.value)

    def bwd(res, cts):
        x, w = res
        a, b = cts
        if handling == "ones":
            a, b = (jnp.ones(c.shape, c.dtype) if isinstance(c, SymbolicZero) else c for c in (a, b))
        dx = jnp.zeros_like(x)
        dw = jnp.zeros_like(w)
        if handling == "raw" or not isinstance(a, SymbolicZero):
            dx = dx + a * jnp.cos(x) * w                             # d(sin x · w)/dx = cos(x)·w
            dw = dw + a * jnp.sin(x)                                 # d(sin x · w)/dw = sin(x)
        if handling == "raw" or not isinstance(b, SymbolicZero):
            dx = dx - b * jnp.sin(x)                                 # d(cos x)/dx = -sin(x)
        return dx, dw
    f.defvjp(fwd, bwd, symbolic_zeros=True)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_rule_that_skips_symbolic_zeros_passes(dtype):
    x, w = normal(3, 4, dtype=dtype), normal(3, 4, seed=1, dtype=dtype)
    rep = check.check_symbolic_zeros(sincos("skip"), x, w)
    assert rep.ok and len(rep.rows) == 4 and all(r.status == "ok" for r in rep.rows), str(rep)
    rep = check.check_custom_vjp(sincos("skip"), x, w)                # the same rows, inside the whole check
    assert rep.ok and len(rep.rows_for(kind="symbolic_zero")) == 4, str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_rule_that_crashes_or_misreads_a_symbolic_zero_fails(dtype):
    x, w = normal(3, 4, dtype=dtype), normal(3, 4, seed=1, dtype=dtype)
    rep = check.check_symbolic_zeros(sincos("raw"), x, w)
    assert not rep.ok and all(r.status == "FAIL" for r in rep.rows), str(rep)
    assert "bwd raised TypeError" in rep.rows[0].note and "SymbolicZero" in rep.rows[0].note, str(rep)
    rep = check.check_symbolic_zeros(sincos("ones"), x, w)
    assert not rep.ok and all(r.status == "FAIL" for r in rep.rows), str(rep)
    assert "not treated as 0" in rep.rows[0].note, str(rep)
    # check_custom_vjp with dense cotangents sees nothing wrong with "ones"; its symbolic rows do
    rep = check.check_custom_vjp(sincos("ones"), x, w)
    assert {r.kind for r in rep.failures} == {"symbolic_zero"}, str(rep)


def test_single_outputs_and_rules_without_symbolic_zeros():
    @jax.custom_vjp
    def g(x):
        return jnp.sin(x)
    g.defvjp(lambda x: (g.fun(x.value), x.value), lambda x, ct: (ct * jnp.cos(x),), symbolic_zeros=True)
    rep = check.check_symbolic_zeros(g, normal(3))
    assert rep.ok and rep.rows[0].status == "n/a", str(rep)

    @jax.custom_vjp
    def h(x):
        return jnp.sin(x), jnp.cos(x)
    h.defvjp(lambda x: (h.fun(x), x), lambda x, cts: (cts[0] * jnp.cos(x) - cts[1] * jnp.sin(x),))
    with pytest.raises(ValueError, match="without symbolic_zeros=True"):
        check.check_symbolic_zeros(h, normal(3))


def test_complex_outputs():
    rng = np.random.default_rng(0)
    z, w = (rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3)) for _ in range(2))
    assert check.check_symbolic_zeros(sincos("skip"), z, w).ok          # holomorphic: c·f'(z), JAX's convention
    assert check.check_custom_vjp(sincos("skip"), z, w).ok
    rep = check.check_symbolic_zeros(sincos("ones"), z, w)
    assert not rep.ok and all(r.status == "FAIL" for r in rep.rows), str(rep)
