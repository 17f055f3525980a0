"""check_custom_vjp's calling conventions and its determinism row: f's own keyword arguments
pass through as jax binds them, a custom_jvp is sent to check_jvp, and a rule whose two runs
on the same inputs differ in any bit fails the determinism row (float64 and float32)."""
import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def power(x, n, offset=0):
    return (x + offset) ** n


power.defvjp(lambda x, n, offset: (power.fun(x, n, offset), x),
             lambda n, offset, x, g: (g * n * (x + offset) ** (n - 1),))       # d/dx (x + o)^n


@pytest.mark.parametrize("dtype", DTYPES)
def test_keyword_arguments_of_f_pass_through(dtype):
    x = normal(5, dtype=dtype)
    rep = check.check_custom_vjp(power, x, n=3)                        # offset's default is filled in
    assert rep.ok and [r.primal for r in rep.rows if r.kind == "nondiff"] == ["n", "offset"], str(rep)
    rep = check.check_custom_vjp(power, x, offset=2, n=3, rtol=1e-3)   # a check option beside them
    assert rep.ok, str(rep)
    with pytest.raises(TypeError, match="neither an option of the check nor a parameter of power"):
        check.check_custom_vjp(power, x, m=3)
    with pytest.raises(TypeError, match="cannot take these arguments"):
        check.check_custom_vjp(power, x, 3, n=3)


def test_a_custom_jvp_is_sent_to_check_jvp():
    @jax.custom_jvp
    def f(x):
        return jnp.sin(x)
    f.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]))
    with pytest.raises(TypeError, match="use check_jvp"):
        check.check_custom_vjp(f, normal(3))


def scaled_norm(order):
    """y = x · Σx² (x [n]); bwd through a NumPy kernel that sums Σ g·x in the order `order`
    gives for call number k (a sorted order is deterministic, a fresh permutation is not)."""
    calls = itertools.count()

    def kernel(x, g):
        idx = order(x.size, next(calls))
        return np.asarray(np.sum((g * x)[idx]), dtype=x.dtype)

    @jax.custom_vjp
    def f(x):
        return x * jnp.sum(x ** 2)

    def bwd(x, g):
        gx = jax.pure_callback(kernel, jax.ShapeDtypeStruct((), x.dtype), x, g)   # Σ_i g_i x_i
        return (g * jnp.sum(x ** 2) + 2 * x * gx,)                             # dx = g·Σx² + 2x·Σ g_i x_i
    f.defvjp(lambda x: (f.fun(x), x), bwd)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_determinism_row(dtype):
    x = normal(64, dtype=dtype)
    rep = check.check_custom_vjp(scaled_norm(lambda n, k: np.arange(n)), x)
    assert rep.ok and rep.rows_for("determinism")[0].status == "ok", str(rep)
    shuffled = scaled_norm(lambda n, k: np.random.default_rng(k).permutation(n))
    rep = check.check_custom_vjp(shuffled, x)
    assert rep.failed_primals == ("determinism",), str(rep)            # every value within tolerance
    assert "not deterministic" in rep.rows_for("determinism")[0].note
    assert check.check_custom_vjp(shuffled, x, determinism=False).ok


def max_and_argmax(shift=0):
    """(max, argmax) over the last axis; fwd's argmax is off by `shift` (a wrong integer output)."""
    @jax.custom_vjp
    def f(x):
        return jnp.max(x, -1), jnp.argmax(x, -1)

    def bwd(x, cts):
        onehot = jax.nn.one_hot(jnp.argmax(x, -1), x.shape[-1], dtype=x.dtype)
        return (cts[0][..., None] * onehot,)                           # d max/dx: 1 at the argmax
    f.defvjp(lambda x: ((jnp.max(x, -1), jnp.argmax(x, -1) + shift), x), bwd)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_outputs_are_compared_exactly_and_left_out_of_the_witnesses(dtype):
    x = normal(3, 4, dtype=dtype)
    rep = check.check_custom_vjp(max_and_argmax(), x)
    assert rep.ok, str(rep)
    rep = check.check_custom_vjp(max_and_argmax(shift=1), x)
    assert rep.failed_primals == ("fwd output",) and "integer output" in rep.failures[0].note, str(rep)
    assert check.taylor_test(max_and_argmax(), None, x).ok
    assert check.check_transforms(max_and_argmax(), x, transforms=("jit", "vmap")).ok
