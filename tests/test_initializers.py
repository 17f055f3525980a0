"""Initializers: shapes, dtypes, determinism and the variance each scheme promises."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import initializers

FAN_IN, FAN_OUT = 400, 250
# name -> (expected std, bound or None)
EXPECTED = {
    "normal": (1.0, None),
    "lecun_normal": (1 / math.sqrt(FAN_IN), None),
    "glorot_normal": (math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    "glorot_uniform": (math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "he_normal": (math.sqrt(2 / FAN_IN), None),
    "he_uniform": (math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    "truncated_normal": (0.8796, 2.0),  # std of N(0,1) cut at ±2
}


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_scheme_statistics(name, dtype):
    w = initializers.get(name)(jax.random.key(0), (FAN_IN, FAN_OUT), dtype)
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == dtype
    std, bound = EXPECTED[name]
    n = w.size
    # sample std of n=100k draws: relative standard error ~ 1/sqrt(2n) ≈ 0.0022; allow 5 SE
    assert abs(float(w.std()) / std - 1) < 5 / math.sqrt(2 * n)
    assert abs(float(w.mean())) < 5 * std / math.sqrt(n)
    if bound is not None:
        assert float(jnp.abs(w).max()) <= bound


def test_zeros_and_determinism():
    assert not jnp.any(initializers.zeros(jax.random.key(0), (3, 2), jnp.float32))
    a = initializers.get("he_normal")(jax.random.key(7), (5, 4), jnp.float32)
    b = initializers.get("he_normal")(jax.random.key(7), (5, 4), jnp.float32)
    c = initializers.get("he_normal")(jax.random.key(8), (5, 4), jnp.float32)
    assert jnp.array_equal(a, b) and not jnp.array_equal(a, c)


def test_mlp_uses_the_named_schemes():
    net = fnnet.mlp([FAN_IN, FAN_OUT], activation="relu", w_init="lecun_normal", b_init="normal")
    (p,) = fnnet.init(net, jax.random.key(0))
    assert abs(float(p.w.std()) * math.sqrt(FAN_IN) - 1) < 0.02
    assert float(jnp.abs(p.b).max()) > 0
    assert fnnet.mlp([3, 2], activation="relu").layers[0].w_init == "he_normal"
    assert fnnet.mlp([3, 2], activation="tanh").layers[0].w_init == "glorot_uniform"


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown initializer 'xavier'; known: "):
        initializers.get("xavier")


# ------------------------------------------------ item 1: draws do not depend on x64

@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_init_is_the_same_with_x64_on_and_off(dtype):
    """Before: Dense drew in the default dtype (float64 with x64 on) and cast, so the same
    key gave other float32 weights depending on a global flag."""
    net = fnnet.mlp([5, 7, 3], activation="sigmoid", w_init="normal", b_init="normal")
    on = fnnet.init(net, jax.random.key(0), dtype)
    jax.config.update("jax_enable_x64", False)
    try:
        off = fnnet.init(net, jax.random.key(0), dtype)
    finally:
        jax.config.update("jax_enable_x64", True)
    for a, b in zip(jax.tree.leaves(on), jax.tree.leaves(off)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_float64_init_is_the_float32_draw_widened():
    net = fnnet.mlp([5, 7, 3], w_init="glorot_uniform")
    p32, p64 = fnnet.init(net, jax.random.key(3)), fnnet.init(net, jax.random.key(3), jnp.float64)
    for a, b in zip(jax.tree.leaves(p32), jax.tree.leaves(p64)):
        assert b.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(a, np.float64), b)
