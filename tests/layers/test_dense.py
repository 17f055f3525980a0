"""Dense layer: forward vs reference; backward vs jax.vjp, reference and finite differences."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fnnet
import fnnet_reference as reference
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit


def make(batch, d_in, d_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = fnnet.DenseParams(jnp.asarray(rng.normal(size=(d_in, d_out)), dtype),
                          jnp.asarray(rng.normal(size=(d_out,)), dtype))
    x = jnp.asarray(rng.normal(size=(batch, d_in)), dtype)
    dy = jnp.asarray(rng.normal(size=(batch, d_out)), dtype)
    return fnnet.Dense(d_out), p, x, dy


def f64(a):
    return np.asarray(a, np.float64)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_dense_against_all_oracles(dtype, jit):
    layer, p, x, dy = make(5, 4, 3, dtype)
    rtol = RTOL[np.dtype(dtype)]
    fwd = maybe_jit(lambda p, x: layer.forward(p, x)[0], jit)
    bwd = maybe_jit(lambda p, x, dy: layer.backward(p, layer.forward(p, x)[1], dy), jit)
    y = fwd(p, x)
    dp, dx = bwd(p, x, dy)
    assert y.dtype == dx.dtype == dp.w.dtype == dtype
    # forward: reference twin
    assert_trees_close(y, reference.dense_forward(f64(x), f64(p.w), f64(p.b)), rtol, "y")
    # backward: autodiff of the same forward
    _, vjp = jax.vjp(lambda p, x: layer.forward(p, x)[0], p, x)
    assert_trees_close((dp, dx), vjp(dy), rtol, "vs jax.vjp")
    # backward: reference twin (float64, independent NumPy code)
    rw, rb, rx = reference.dense_backward(f64(x), f64(p.w), f64(p.b), f64(dy))
    assert_trees_close((dp, dx), (fnnet.DenseParams(rw, rb), rx), rtol, "vs reference")
    # backward: finite differences in float64
    fw, fb, fx = fd_vjp(lambda w, b, x: layer.forward(fnnet.DenseParams(w, b), x)[0],
                        (f64(p.w), f64(p.b), f64(x)), f64(dy))
    assert_trees_close((dp, dx), (fnnet.DenseParams(fw, fb), fx), max(rtol, FD_RTOL), "vs FD")


@functools.partial(jax.jit, static_argnums=0)
def _backward_and_vjp(layer, p, x, dy):
    """(the layer's (dp, dx), jax.vjp's) in one program, compiled once per layer and shape."""
    _, vjp = jax.vjp(lambda p, x: layer.forward(p, x)[0], p, x)
    return layer.backward(p, layer.forward(p, x)[1], dy), vjp(dy)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 6), d_in=st.integers(1, 5), d_out=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_dense_random_shapes(batch, d_in, d_out, seed):
    # jitted, both sides in one program: each new shape costs one compile instead of one per op
    # (the eager path runs in the fixed-shape tests above)
    layer, p, x, dy = make(batch, d_in, d_out, jnp.float64, seed)
    (dp, dx), autodiff = _backward_and_vjp(layer, p, x, dy)
    rw, rb, rx = reference.dense_backward(f64(x), f64(p.w), f64(p.b), f64(dy))
    assert_trees_close((dp, dx), (fnnet.DenseParams(rw, rb), rx), RTOL[np.dtype("float64")])
    assert_trees_close((dp, dx), autodiff, RTOL[np.dtype("float64")])


def test_bias_gradient_is_summed_over_batch_not_averaged():
    layer, p, x, _ = make(7, 3, 2, jnp.float64)
    dp, _ = layer.backward(p, x, jnp.ones((7, 2)))
    np.testing.assert_array_equal(dp.b, [7.0, 7.0])


def test_init_shapes_and_schemes():
    layer = fnnet.Dense(4, w_init="lecun_normal")
    p, out = layer.init(jax.random.key(0), (3,))
    assert out == (4,) and p.w.shape == (3, 4) and p.b.shape == (4,)
    np.testing.assert_array_equal(p.b, 0)


@pytest.mark.parametrize("bad, message", [
    (lambda l, p, x: l.forward(p, x[:, :3]), r"Dense\(3\): x must be \[batch, 4\], got \(5, 3\)"),
    (lambda l, p, x: l.forward(p, x[0]), r"x must be \[batch, 4\], got \(4,\)"),
    (lambda l, p, x: l.forward(p._replace(b=p.b[:2]), x), r"params.b must be \[3\], got \(2,\)"),
    (lambda l, p, x: l.forward(p, x.astype(jnp.int32)), r"x must be a floating array"),
    (lambda l, p, x: l.backward(p, x, jnp.ones((5, 4))), r"dy must be \[5, 3\], got \(5, 4\)"),
])
def test_bad_input_names_layer_and_shapes(bad, message):
    layer, p, x, _ = make(5, 4, 3, jnp.float64)
    with pytest.raises((ValueError, TypeError), match=message):
        bad(layer, p, x)


def test_bad_units():
    with pytest.raises(ValueError, match="units must be an int >= 1"):
        fnnet.Dense(0)
    with pytest.raises(ValueError, match="unknown initializer"):
        fnnet.Dense(3, w_init="xavier")
