"""Opt-in bfloat16 matmuls in Dense: float32 params, cache and results, bf16 operands.

The exact oracle of the bf16 rule is the float64 reference twin applied to operands
rounded to bfloat16: a product of two bf16 numbers is exact in float32, so the rule
differs from it only by float32 accumulation (float32 tolerance). jax.vjp of the same
bf16 forward rounds elsewhere (it casts its dx to bf16), so it agrees only to bf16
precision. Finite differences are not used: a bf16-rounded forward is piecewise
constant at the scale FD would probe.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet_reference as reference
from fnnet.layers.dense import with_matmul_dtype
from helpers import RTOL, assert_trees_close, maybe_jit

BF16_RTOL = 3e-2     # bf16 keeps 8 significant bits (2^-8 ≈ 0.4% per rounding) + sums


def bf16(a):
    """Round to bfloat16 and back, as float64 NumPy."""
    return np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32), np.float64)


def make(batch, d_in, d_out, seed=0):
    rng = np.random.default_rng(seed)
    p = fnnet.DenseParams(jnp.asarray(rng.normal(size=(d_in, d_out)), jnp.float32),
                          jnp.asarray(rng.normal(size=(d_out,)), jnp.float32))
    x = jnp.asarray(rng.normal(size=(batch, d_in)), jnp.float32)
    dy = jnp.asarray(rng.normal(size=(batch, d_out)), jnp.float32)
    return fnnet.Dense(d_out, matmul_dtype="bfloat16"), p, x, dy


@pytest.mark.parametrize("jit", [False, True])
def test_bf16_dense_is_the_reference_on_rounded_operands(jit):
    layer, p, x, dy = make(37, 19, 11)
    y = maybe_jit(lambda p, x: layer.forward(p, x)[0], jit)(p, x)
    dp, dx = maybe_jit(lambda p, x, dy: layer.backward(p, layer.forward(p, x)[1], dy), jit)(p, x, dy)
    assert y.dtype == dx.dtype == dp.w.dtype == dp.b.dtype == jnp.float32
    w, b = np.asarray(p.w, np.float64), np.asarray(p.b, np.float64)
    rtol = RTOL[np.dtype("float32")]
    assert_trees_close(y, reference.dense_forward(bf16(x), bf16(w), b), rtol, "y")
    rw, _, rx = reference.dense_backward(bf16(x), bf16(w), b, bf16(dy))
    _, rb, _ = reference.dense_backward(np.asarray(x, np.float64), w, b, np.asarray(dy, np.float64))
    assert_trees_close((dp, dx), (fnnet.DenseParams(rw, rb), rx), rtol, "vs reference(bf16 operands)")
    # against jax.vjp of the same bf16 forward and the exact float64 gradient: bf16 precision
    _, vjp = jax.vjp(lambda p, x: layer.forward(p, x)[0], p, x)
    assert_trees_close((dp, dx), vjp(dy), BF16_RTOL, "vs jax.vjp (bf16 forward)")
    ew, eb, ex = reference.dense_backward(np.asarray(x, np.float64), w, b, np.asarray(dy, np.float64))
    assert_trees_close((dp, dx), (fnnet.DenseParams(ew, eb), ex), BF16_RTOL, "vs exact float64")


def test_bf16_net_mid_network_against_float32_and_jax_grad():
    """A 3-layer bf16 net: dL/dx of the inner layers flows through bf16 products."""
    rng = np.random.default_rng(3)
    net = fnnet.mlp([12, 16, 16, 5], activation="tanh", loss="softmax_cross_entropy")
    low = with_matmul_dtype(net, "bfloat16")
    params = fnnet.init(net, jax.random.key(0), jnp.float32)
    x = jnp.asarray(rng.normal(size=(24, 12)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, size=24))
    for jit in (False, True):
        _, g, dx = maybe_jit(lambda p, x: fnnet.backprop(low, p, x, y), jit)(params, x)
        _, g32, dx32 = fnnet.backprop(net, params, x, y)
        assert jax.tree.structure(g) == jax.tree.structure(params)
        assert all(a.dtype == jnp.float32 for a in jax.tree.leaves((g, dx)))
        assert_trees_close((g, dx), (g32, dx32), BF16_RTOL * 3, "bf16 vs float32 rule")
        want = jax.grad(lambda p, x: fnnet.loss(low, p, x, y), argnums=(0, 1))(params, x)
        assert_trees_close((g, dx), want, BF16_RTOL * 3, "vs jax.grad of the bf16 forward")
    # bf16 really changes the numbers (the option is not silently ignored)
    assert float(jnp.max(jnp.abs(g[0].w - g32[0].w))) > 0


def test_bf16_is_opt_in_and_validated():
    assert fnnet.Dense(4).matmul_dtype is None
    assert str(fnnet.Dense(4, matmul_dtype="bfloat16")) == "Dense(4, matmul_dtype=bfloat16)"
    with pytest.raises(ValueError, match=r"Dense: matmul_dtype must be one of \(None, 'bfloat16'\), got 'float16'"):
        fnnet.Dense(4, matmul_dtype="float16")
    net = fnnet.mlp([3, 4, 2])
    assert all(l.matmul_dtype is None for l in net.layers if isinstance(l, fnnet.Dense))
    low = with_matmul_dtype(net, "bfloat16")
    assert [l.matmul_dtype for l in low.layers if isinstance(l, fnnet.Dense)] == ["bfloat16"] * 2
    assert with_matmul_dtype(low, None) == net and hash(low) != hash(net)
    with pytest.raises(ValueError, match="with_matmul_dtype: matmul_dtype must be one of"):
        with_matmul_dtype(net, "int8")
    with pytest.raises(TypeError, match="with_matmul_dtype: net must be a fnnet.Network"):
        with_matmul_dtype([fnnet.Dense(3)], "bfloat16")


def test_precision_report_against_the_float32_rule():
    rng = np.random.default_rng(5)
    net = fnnet.mlp([20, 32, 32, 4], activation="relu", loss="softmax_cross_entropy")
    params = fnnet.init(net, jax.random.key(1), jnp.float32)
    x = jnp.asarray(rng.normal(size=(64, 20)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, size=64))
    rep = fnnet.check.precision_report(net, params, x, y, matmul_dtype="bfloat16")
    assert [r.leaf for r in rep.rows] == ["[0].w", "[0].b", "[2].w", "[2].b", "[4].w", "[4].b"]
    # the report's numbers are the differences of the two gradients it names
    _, g32 = fnnet.value_and_grad(net, params, x, y)
    _, glow = fnnet.value_and_grad(with_matmul_dtype(net, "bfloat16"), params, x, y)
    for r, a, b in zip(rep.rows, jax.tree.leaves(g32), jax.tree.leaves(glow)):
        diff = np.abs(np.asarray(b, np.float64) - np.asarray(a, np.float64))
        assert r.max_abs == pytest.approx(diff.max(), rel=1e-6)
        assert r.rel_norm == pytest.approx(np.linalg.norm(diff) / np.linalg.norm(np.asarray(a, np.float64)), rel=1e-6)
        assert 0 < r.rel < 0.5                      # bf16 error: present, and bounded
        assert r.rel_f32_vs_f64 is not None and r.rel_f32_vs_f64 < 1e-4   # x64 is on in tests
    assert rep.worst == max(r.rel for r in rep.rows) and "bfloat16" in str(rep)
    assert rep.loss == pytest.approx(float(fnnet.loss(net, params, x, y)), rel=1e-6)
    with pytest.raises(TypeError, match="precision_report: params must be float32"):
        fnnet.check.precision_report(net, jax.tree.map(lambda a: a.astype(jnp.float64), params),
                                     x.astype(jnp.float64), y)
