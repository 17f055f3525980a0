"""Activations: forward vs reference; backward vs jax.vjp, reference and finite differences;
kinks, saturation and the full softmax Jacobian."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fnnet
import fnnet_reference as reference
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit

# (fnnet layer, reference forward, reference backward)
CASES = {
    "identity": (fnnet.Identity(), reference.identity_forward, reference.identity_backward),
    "relu": (fnnet.Relu(), reference.relu_forward, reference.relu_backward),
    "leaky_relu": (fnnet.LeakyRelu(0.1), lambda x: reference.leaky_relu_forward(x, alpha=0.1),
                   lambda x, dy: reference.leaky_relu_backward(x, dy, alpha=0.1)),
    "sigmoid": (fnnet.Sigmoid(), reference.sigmoid_forward, reference.sigmoid_backward),
    "tanh": (fnnet.Tanh(), reference.tanh_forward, reference.tanh_backward),
    "softmax": (fnnet.Softmax(), reference.softmax_forward, reference.softmax_backward),
}


def inputs(shape, dtype, seed=0, away_from_zero=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 2
    if away_from_zero:  # keep finite differences off the relu kink; kinks are tested below
        x = np.where(np.abs(x) < 1e-2, 0.5, x)
    return jnp.asarray(x, dtype), jnp.asarray(rng.normal(size=shape), dtype)


def run(layer, x, dy, jit):
    fwd = maybe_jit(lambda x: layer.forward((), x)[0], jit)
    bwd = maybe_jit(lambda x, dy: layer.backward((), layer.forward((), x)[1], dy), jit)
    return fwd(x), bwd(x, dy)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_activation_against_all_oracles(name, dtype, jit):
    layer, ref_fwd, ref_bwd = CASES[name]
    rtol = RTOL[np.dtype(dtype)]
    x, dy = inputs((4, 5), dtype)
    y, (dp, dx) = run(layer, x, dy, jit)
    assert dp == () and y.dtype == dx.dtype == dtype and dx.shape == x.shape
    x64, dy64 = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    assert_trees_close(y, ref_fwd(x64), rtol, f"{name} forward vs reference")
    _, vjp = jax.vjp(lambda x: layer.forward((), x)[0], x)
    assert_trees_close(dx, vjp(dy)[0], rtol, f"{name} vs jax.vjp")
    assert_trees_close(dx, ref_bwd(x64, dy64), rtol, f"{name} vs reference")
    (fd,) = fd_vjp(lambda x: layer.forward((), x)[0], (x64,), dy64)
    assert_trees_close(dx, fd, max(rtol, FD_RTOL), f"{name} vs FD")


@functools.partial(jax.jit, static_argnums=0)
def _backward_and_vjp(layer, x, dy):
    """(the layer's dx, jax.vjp's) in one program, compiled once per layer and shape."""
    _, vjp = jax.vjp(lambda x: layer.forward((), x)[0], x)
    return layer.backward((), layer.forward((), x)[1], dy)[1], vjp(dy)[0]


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(list(CASES)), batch=st.integers(1, 5), width=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_activation_random_shapes(name, batch, width, seed):
    # jitted, both sides in one program: each new shape costs one compile instead of one per op
    # (the eager path runs in test_activation_against_all_oracles)
    layer, _, ref_bwd = CASES[name]
    x, dy = inputs((batch, width), jnp.float64, seed)
    dx, autodiff = _backward_and_vjp(layer, x, dy)
    assert_trees_close(dx, ref_bwd(np.asarray(x), np.asarray(dy)), RTOL[np.dtype("float64")])
    assert_trees_close(dx, autodiff, RTOL[np.dtype("float64")])


def test_kinks_use_the_documented_convention_and_match_jax():
    x = jnp.array([[-1.0, 0.0, 1.0]])
    dy = jnp.ones((1, 3))
    _, (_, d_relu) = run(fnnet.Relu(), x, dy, jit=False)
    _, (_, d_leaky) = run(fnnet.LeakyRelu(0.1), x, dy, jit=False)
    np.testing.assert_array_equal(d_relu, [[0.0, 0.0, 1.0]])        # relu'(0) = 0
    np.testing.assert_allclose(d_leaky, [[0.1, 0.1, 1.0]])          # leaky'(0) = alpha
    np.testing.assert_array_equal(jax.grad(lambda x: fnnet.Relu().forward((), x)[0].sum())(x), d_relu)
    np.testing.assert_array_equal(reference.relu_backward(np.asarray(x), np.asarray(dy)), d_relu)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_saturated_sigmoid_and_tanh_stay_finite(dtype):
    x = jnp.array([[-1000.0, -40.0, 40.0, 1000.0]], dtype)
    for layer in (fnnet.Sigmoid(), fnnet.Tanh()):
        y, (_, dx) = run(layer, x, jnp.ones_like(x), jit=True)
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
        assert np.all(np.asarray(dx) >= 0) and np.all(np.asarray(dx) < 1e-15)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_softmax_large_logits(dtype):
    x = jnp.array([[1000.0, 0.0, -1000.0], [500.0, 500.0, -500.0]], dtype)
    y, (_, dx) = run(fnnet.Softmax(), x, jnp.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], dtype), jit=False)
    np.testing.assert_allclose(y, [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-7)
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx, [[0, 0, 0], [0.25, -0.25, 0]], atol=1e-7)


def test_softmax_backward_is_the_full_jacobian_not_its_diagonal():
    x, dy = inputs((3, 4), jnp.float64, seed=3)
    _, (_, dx) = run(fnnet.Softmax(), x, dy, jit=False)
    s = np.asarray(fnnet.Softmax().forward((), x)[0])
    full = np.stack([(np.diag(si) - np.outer(si, si)) @ di for si, di in zip(s, np.asarray(dy))])
    diagonal_only = s * (1 - s) * np.asarray(dy)
    np.testing.assert_allclose(dx, full, rtol=1e-12, atol=1e-15)
    assert np.abs(np.asarray(dx) - diagonal_only).max() > 1e-2


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name):
    layer = CASES[name][0]
    with pytest.raises(TypeError, match="x must be a floating array"):
        layer.forward((), jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="takes no parameters"):
        layer.forward(fnnet.DenseParams(jnp.ones((1, 1)), jnp.ones((1,))), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 3\), got \(2, 4\)"):
        layer.backward((), layer.forward((), jnp.ones((2, 3)))[1], jnp.ones((2, 4)))


def test_unknown_activation_name():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        fnnet.mlp([2, 2], activation="swish")
