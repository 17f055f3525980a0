"""check_transforms: a rule right alone must also be right under jit, vmap, lax.scan, remat and
vmap∘grad; each wrong rule here is written the way users wrote the ones that broke, and must
fail exactly the rows of the transforms that break it (the others pass)."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]
ALL = ("jit", "vmap", "scan", "remat", "vmap_grad")


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def statuses(rep):
    return {r.primal: r.status for r in rep.rows}


def mean_sin(kernel=None):
    """mean(sin(x)) for x [d]; bwd g·cos(x)/d, in jnp or through a NumPy kernel."""
    @jax.custom_vjp
    def f(x):
        return jnp.mean(jnp.sin(x))

    def bwd(x, g):
        if kernel is None:
            return (g * jnp.cos(x) / x.shape[0],)                     # d/dx mean(sin x) = cos(x) / d
        shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
        return (jax.pure_callback(kernel, shape, x, jnp.broadcast_to(g, x.shape), vmap_method="broadcast_all"),)
    f.defvjp(lambda x: (f.fun(x), x), bwd)
    return f


def kernel_d_from_shape(x, g):
    # a NumPy kernel written for one example: x.shape[0] is d alone, the batch under vmap
    return (g * np.cos(x) / x.shape[0]).astype(x.dtype)


def kernel_d_from_last_axis(x, g):
    return (g * np.cos(x) / x.shape[-1]).astype(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_right_rule_passes_every_transform(dtype):
    x = normal(4, dtype=dtype)
    for f in (mean_sin(), mean_sin(kernel_d_from_last_axis)):
        rep = check.check_transforms(f, x)
        assert rep.ok, str(rep)
        assert tuple(r.primal for r in rep.rows) == ALL and all(r.status == "ok" for r in rep.rows), str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_kernel_that_takes_the_batch_axis_for_its_own_fails_vmap_only(dtype):
    rep = check.check_transforms(mean_sin(kernel_d_from_shape), normal(4, dtype=dtype))
    assert statuses(rep) == dict(jit="ok", vmap="FAIL", scan="ok", remat="ok", vmap_grad="FAIL"), str(rep)
    row = rep.rows_for("vmap")[0]
    assert "leaf x" in row.note and row.worst_index is not None, str(rep)
    assert row.actual / row.expected == pytest.approx(4 / 3, rel=1e-4)   # divided by the batch (3), not d (4)
    assert "vmap: FAIL" in rep.summary()


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_kernel_that_sums_over_axis_0_fails_vmap(dtype):
    # y = x + b for x [n, d], b [d]: the bias gradient sums g over axis 0, which under vmap is the batch
    @jax.custom_vjp
    def add_bias(x, b):
        return x + b[None, :]

    def bwd(_, g):
        db = jax.pure_callback(lambda g: np.asarray(g).sum(axis=0), jax.ShapeDtypeStruct(g.shape[1:], g.dtype),
                               g, vmap_method="broadcast_all")
        return g, db                                                    # dx = g, db = Σ_rows g
    add_bias.defvjp(lambda x, b: (add_bias.fun(x, b), None), bwd)
    rep = check.check_transforms(add_bias, normal(2, 3, dtype=dtype), normal(3, seed=1, dtype=dtype))
    assert statuses(rep)["vmap"] == "FAIL" and statuses(rep)["jit"] == "ok", str(rep)
    assert "Incorrect output shape" in rep.rows_for("vmap")[0].note, str(rep)   # the kernel's error, not a traceback


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_bwd_reading_what_fwd_put_aside_fails_remat_and_scan(dtype):
    stash = {}

    @jax.custom_vjp
    def square(x):
        return x * x

    def fwd(x):
        stash["x"] = x                  # kept outside the residuals: a tracer of fwd's trace under remat
        return x * x, None
    square.defvjp(fwd, lambda _, g: (2 * stash["x"] * g,))             # d/dx x² = 2x
    rep = check.check_transforms(square, normal(3, dtype=dtype))
    st = statuses(rep)
    assert st["remat"] == "FAIL" and st["scan"] == "FAIL" and st["jit"] == "ok", str(rep)
    assert "raised under remat" in rep.rows_for("remat")[0].note, str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_plain_vjp_that_reads_a_python_number_fails_jit(dtype):
    fun = lambda x, w: jnp.tanh(x * w)

    def vjp(x, w, ct, concrete=False):
        dz = ct * (1 - jnp.tanh(x * w) ** 2)                            # dL/dz = ct ⊙ (1 - tanh² z)
        if concrete and float(jnp.max(jnp.abs(dz))) > 1e6:              # a Python branch on a traced value
            dz = dz / 2
        return dz * w, dz * x                                           # dL/dx = dz ⊙ w, dL/dw = dz ⊙ x
    x, w = normal(2, 3, dtype=dtype), normal(2, 3, seed=1, dtype=dtype)
    rep = check.check_transforms(fun, x, w, vjp=vjp)
    assert rep.ok, str(rep)
    rep = check.check_transforms(fun, x, w, vjp=partial(vjp, concrete=True), transforms=("jit",))
    assert statuses(rep) == dict(jit="FAIL"), str(rep)
    assert "raised under jit" in rep.rows_for("jit")[0].note and "Concretization" in rep.rows_for("jit")[0].note


def test_nondiff_arguments_are_held_fixed_and_the_batch_avoids_axis_lengths():
    @partial(jax.custom_vjp, nondiff_argnums=(1,))
    def power(x, k):
        return x ** k
    power.defvjp(lambda x, k: (x ** k, x), lambda k, x, g: (g * k * x ** (k - 1),))   # d/dx x^k = k x^(k-1)
    rep = check.check_transforms(power, normal(3, 4), 3)
    assert rep.ok, str(rep)
    assert rep.header.startswith("5 examples"), rep.header          # 3 and 4 are axis lengths


def test_bad_arguments_are_refused_before_anything_runs():
    f = mean_sin()
    with pytest.raises(ValueError, match="transforms must be some of"):
        check.check_transforms(f, normal(4), transforms=("jit", "pmap"))
    with pytest.raises(ValueError, match="batch must be an int >= 2"):
        check.check_transforms(f, normal(4), batch=1)

    @jax.custom_jvp
    def h(x):
        return jnp.sin(x)
    h.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]))
    with pytest.raises(TypeError, match="check_jvp"):
        check.check_transforms(h, normal(4))
    with pytest.raises(TypeError, match="custom_vjp"):
        check.check_transforms(jnp.sin, normal(4))


def test_check_custom_vjp_adds_the_rows_of_the_transforms_asked_for():
    x = normal(4)
    rep = check.check_custom_vjp(mean_sin(kernel_d_from_shape), x, transforms=("jit", "vmap"))
    assert rep.failed_primals == ("vmap",), str(rep)                # every other witness passes alone
    assert not check.check_custom_vjp(mean_sin(kernel_d_from_shape), x).rows_for(kind="transform")


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_rules_under_transformations(dtype):
    def make(kernel_axis):
        @jax.custom_vjp
        def f(z):
            return jnp.mean(jnp.exp(z))

        def bwd(z, c):                                                  # JAX's convention: c·f'(z), no conj
            kernel = lambda z, c: (c * np.exp(z) / z.shape[kernel_axis]).astype(z.dtype)
            return (jax.pure_callback(kernel, jax.ShapeDtypeStruct(z.shape, z.dtype), z,
                                      jnp.broadcast_to(c, z.shape), vmap_method="broadcast_all"),)
        f.defvjp(lambda z: (f.fun(z), z), bwd)
        return f
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(dtype)
    assert check.check_transforms(make(-1), z).ok
    assert statuses(check.check_transforms(make(0), z, transforms=("jit", "vmap"))) == dict(jit="ok", vmap="FAIL")
