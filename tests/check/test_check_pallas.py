"""A Pallas kernel's custom_vjp, checked in interpret mode on CPU (the README's recipe): the
forward and backward are pl.pallas_call kernels, jax cannot differentiate a pallas_call, so
check_custom_vjp takes autodiff= (the same function in jax.numpy) for its jax.vjp witness,
while the forward kernel gives the outputs and the float64 finite differences. A right
backward kernel passes, a wrong one fails on the leaf it gets wrong, a spec of another
function is caught by its own row, in float64 and float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import pallas as pl

from fnnet import check

DTYPES = [np.float64, np.float32]


def fwd_kernel(x_ref, w_ref, y_ref):
    y_ref[...] = jnp.tanh(x_ref[...] * w_ref[...])              # y = tanh(x ⊙ w)


def make_bwd_kernel(wrong):
    def bwd_kernel(x_ref, w_ref, ct_ref, dx_ref, dw_ref):
        x, w, ct = x_ref[...], w_ref[...], ct_ref[...]
        dz = ct * (1 - jnp.tanh(x * w) ** 2)                     # dz = ct ⊙ (1 - y²)
        dx_ref[...] = dz * w                                     # dx = dz ⊙ w
        dw_ref[...] = ct * x if wrong else dz * x                # dw = dz ⊙ x (wrong: tanh' forgotten)
    return bwd_kernel


def tanh_mul(wrong=False):
    """A custom_vjp whose forward and backward are Pallas kernels, run by the interpreter."""
    def forward(x, w):
        return pl.pallas_call(fwd_kernel, out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype), interpret=True)(x, w)

    def backward(res, ct):
        x, w = res
        shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
        return pl.pallas_call(make_bwd_kernel(wrong), out_shape=(shape, shape), interpret=True)(x, w, ct)
    f = jax.custom_vjp(forward)
    f.defvjp(lambda x, w: (forward(x, w), (x, w)), backward)
    return f


def spec(x, w):
    return jnp.tanh(x * w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_pallas_kernels_custom_vjp_in_interpret_mode(dtype):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 8)).astype(dtype), rng.standard_normal((4, 8)).astype(dtype)
    rep = check.check_custom_vjp(tanh_mul(), x, w, autodiff=spec)
    assert rep.ok, str(rep)
    assert {r.primal for r in rep.rows} >= {"x", "w", "autodiff= output", "fwd output", "determinism"}
    assert rep.rows_for("w", "jax")[0].oracle == "jax.vjp of autodiff="
    rep = check.check_custom_vjp(tanh_mul(wrong=True), x, w, autodiff=spec)
    assert rep.failed_primals == ("w",), str(rep)
    assert {r.kind for r in rep.failures} == {"jax", "fd"}          # both witnesses see it
    rep = check.check_custom_vjp(tanh_mul(), x, w, autodiff=lambda x, w: jnp.sin(x * w))
    assert "autodiff= output" in rep.failed_primals, str(rep)


def test_without_autodiff_the_error_says_what_to_pass():
    x = np.linspace(-1.0, 1.0, 8).reshape(1, 8)
    with pytest.raises(TypeError, match="cannot differentiate.*pass autodiff="):
        check.check_custom_vjp(tanh_mul(), x, x)
