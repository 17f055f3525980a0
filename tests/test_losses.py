"""Losses: value vs reference; hand-written grad vs jax.grad, reference and finite differences."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fnnet
import fnnet_reference as reference
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit


def targets(name, n, k, rng):
    if name == "softmax_cross_entropy":
        return rng.integers(0, k, size=n).astype(np.int32)
    if name == "sigmoid_binary_cross_entropy":
        return rng.uniform(size=(n, k))
    return rng.normal(size=(n, k))


REF = {name: (getattr(reference, name), getattr(reference, name + "_grad"))
       for name in ("mse", "half_sse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy")}


@pytest.mark.parametrize("name", list(REF))
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_loss_against_all_oracles(name, dtype, jit):
    rng = np.random.default_rng(1)
    loss = fnnet.losses.get(name)
    out = jnp.asarray(rng.normal(size=(6, 4)) * 3, dtype)
    t = targets(name, 6, 4, rng)
    t_j = jnp.asarray(t) if t.dtype.kind == "i" else jnp.asarray(t, dtype)
    rtol = RTOL[np.dtype(dtype)]
    value = maybe_jit(loss.value, jit)(out, t_j)
    grad = maybe_jit(loss.grad, jit)(out, t_j)
    assert value.shape == () and value.dtype == grad.dtype == dtype and grad.shape == out.shape
    ref_value, ref_grad = REF[name]
    out64 = np.asarray(out, np.float64)
    assert_trees_close(value, ref_value(out64, t), rtol, f"{name} value vs reference")
    assert_trees_close(grad, jax.grad(loss.value)(out, t_j), rtol, f"{name} vs jax.grad")
    assert_trees_close(grad, ref_grad(out64, t), rtol, f"{name} vs reference")
    (fd,) = fd_vjp(lambda o: loss.value(o, jnp.asarray(t)), (out64,), np.float64(1.0))
    assert_trees_close(grad, fd, max(rtol, FD_RTOL), f"{name} vs FD")


@functools.partial(jax.jit, static_argnums=0)
def _grad_and_autodiff(loss, out, t):
    """(loss.grad, jax.grad of loss.value) in one program, compiled once per loss and shape."""
    return loss.grad(out, t), jax.grad(loss.value)(out, t)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(list(REF)), n=st.integers(1, 5), k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_loss_random_shapes(name, n, k, seed):
    # jitted, both sides in one program: each new shape then costs one compile instead of one
    # per op (the eager path runs in test_loss_against_all_oracles)
    rng = np.random.default_rng(seed)
    loss = fnnet.losses.get(name)
    out = jnp.asarray(rng.normal(size=(n, k)))
    t = targets(name, n, k, rng)
    grad, autodiff = _grad_and_autodiff(loss, out, jnp.asarray(t))
    assert_trees_close(grad, REF[name][1](np.asarray(out), t), RTOL[np.dtype("float64")])
    assert_trees_close(grad, autodiff, RTOL[np.dtype("float64")])


def test_softmax_ce_integer_and_one_hot_labels_agree():
    loss = fnnet.SoftmaxCrossEntropy()
    z = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)))
    labels = jnp.array([0, 2, 1, 1, 0])
    onehot = jax.nn.one_hot(labels, 3, dtype=z.dtype)
    assert loss.value(z, labels) == loss.value(z, onehot)
    np.testing.assert_array_equal(loss.grad(z, labels), loss.grad(z, onehot))
    # the seeds' simple delta (softmax - y) / n
    np.testing.assert_allclose(loss.grad(z, labels), (jax.nn.softmax(z) - onehot) / 5, rtol=1e-14)


def test_mse_is_seed_003_and_half_sse_is_seed_000():
    out, t = jnp.array([[1.0, 2.0], [3.0, 5.0]]), jnp.zeros((2, 2))
    assert fnnet.MSE().value(out, t) == (1 + 4 + 9 + 25) / 4
    np.testing.assert_array_equal(fnnet.MSE().grad(out, t), 2 * out / 4)   # 2/n
    assert fnnet.HalfSSE().value(out, t) == 0.5 * (1 + 4 + 9 + 25)
    np.testing.assert_array_equal(fnnet.HalfSSE().grad(out, t), out)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_fused_losses_are_stable_at_huge_logits(dtype):
    z = jnp.array([[1000.0, -1000.0, 0.0]], dtype)
    ce = fnnet.SoftmaxCrossEntropy()
    assert float(ce.value(z, jnp.array([1]))) == pytest.approx(2000.0)
    np.testing.assert_allclose(ce.grad(z, jnp.array([1])), [[1, -1, 0]], atol=1e-7)
    bce = fnnet.SigmoidBinaryCrossEntropy()
    v = bce.value(z, jnp.array([[0.0, 1.0, 0.5]], dtype))
    assert float(v) == pytest.approx((1000 + 1000 + np.log(2)) / 3, rel=1e-6)
    np.testing.assert_allclose(bce.grad(z, jnp.array([[0.0, 1.0, 0.5]], dtype)), [[1 / 3, -1 / 3, 0]], atol=1e-7)


def test_zero_gradient_at_the_optimum():
    out = jnp.array([[0.3, -1.0]])
    np.testing.assert_array_equal(fnnet.MSE().grad(out, out), 0)
    np.testing.assert_array_equal(fnnet.HalfSSE().grad(out, out), 0)


@pytest.mark.parametrize("loss, out, target, exc, message", [
    (fnnet.MSE(), jnp.ones((3, 2)), jnp.ones((3,)), ValueError, r"mse: target must be \[3, 2\], got \(3,\)"),
    (fnnet.MSE(), jnp.ones((3, 2)), jnp.ones((3, 2)).at[0, 0].set(jnp.nan), ValueError, "NaN/Inf"),
    (fnnet.MSE(), jnp.ones((3,)), jnp.ones((3,)), ValueError, r"output must be \[batch, k\]"),
    (fnnet.SoftmaxCrossEntropy(), jnp.ones((3, 4)), jnp.array([0, 4, 1]), ValueError, r"labels must be in \[0, 4\)"),
    (fnnet.SoftmaxCrossEntropy(), jnp.ones((3, 4)), jnp.array([0, -1, 1]), ValueError, r"labels must be in \[0, 4\)"),
    (fnnet.SoftmaxCrossEntropy(), jnp.ones((3, 4)), jnp.array([0, 1]), ValueError, r"labels must be \[3\], got \(2,\)"),
    (fnnet.SoftmaxCrossEntropy(), jnp.ones((3, 4)), jnp.array([0.0, 1.0, 2.0]), TypeError, "must be integers"),
    (fnnet.SoftmaxCrossEntropy(), jnp.ones((3, 4)), -jnp.ones((3, 4)), ValueError, ">= 0"),
    (fnnet.SigmoidBinaryCrossEntropy(), jnp.ones((3, 1)), 2 * jnp.ones((3, 1)), ValueError, r"in \[0, 1\]"),
    (fnnet.MSE(), jnp.ones((3, 2), jnp.int32), jnp.ones((3, 2)), TypeError, "floating"),
])
def test_bad_targets(loss, out, target, exc, message):
    with pytest.raises(exc, match=message):
        loss.value(out, target)
    with pytest.raises(exc, match=message):
        loss.grad(out, target)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fnnet.mlp([2, 2], loss="hinge")
