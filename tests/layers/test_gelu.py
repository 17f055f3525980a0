"""GELU (tanh approximation and exact erf): backward vs jax.vjp, reference and FD, mid-network."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet_reference.layers import activations as R
from seq_helpers import DTYPE_JIT, four_way, mid_network


@pytest.mark.parametrize("approximate", [True, False])
@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_gelu_four_witnesses(approximate, dtype, jit):
    layer = fnnet.GELU(approximate)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(3, 4, 5)) * 2, dtype)
    dy = jnp.asarray(rng.normal(size=(3, 4, 5)), dtype)
    y, _ = layer.forward((), x)
    np.testing.assert_allclose(np.asarray(y, np.float64), R.gelu_forward(np.asarray(x, np.float64), approximate=approximate),
                               atol=1e-6 if dtype == jnp.float32 else 1e-14)
    four_way(layer, (), x, dy, lambda p, x, dy: ((), R.gelu_backward(x, dy, approximate=approximate)), jit)


def test_gelu_matches_jax_nn():
    x = jnp.linspace(-6, 6, 101)
    for approximate in (True, False):
        np.testing.assert_allclose(fnnet.GELU(approximate).forward((), x)[0],
                                   jax.nn.gelu(x, approximate=approximate), atol=1e-14)


def test_gelu_mid_network():
    mid_network(fnnet.GELU(), (3, 4)).raise_if_failed()


def test_gelu_bad_input():
    with pytest.raises(TypeError, match="GELU: approximate must be True or False"):
        fnnet.GELU("tanh")
    with pytest.raises(TypeError, match="GELU"):
        fnnet.GELU().forward((), jnp.zeros((2, 3), jnp.int32))
    assert fnnet.layers.activations.get("gelu") == fnnet.GELU()
