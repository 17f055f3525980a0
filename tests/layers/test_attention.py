"""CausalSelfAttention: backward (both cache strategies) vs jax.vjp, the per-head reference
with the full softmax Jacobian, and FD; causality; mid-network; bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from helpers import RTOL, assert_trees_close
from fnnet_reference.layers import attention as R
from seq_helpers import DTYPE_JIT, four_way, mid_network, randomize


def _ref(heads):
    def backward(p, x, dy):
        *g, dx = R.attention_backward(x, *p, dy, heads=heads)
        return fnnet.AttentionParams(*g), dx
    return backward


@pytest.mark.parametrize("recompute", [True, False])
@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_attention_four_witnesses(recompute, dtype, jit):
    layer = fnnet.CausalSelfAttention(2, 6, recompute=recompute)
    params = randomize(layer.init(jax.random.key(0), (4, 6))[0], 0, dtype)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 4, 6)), dtype)
    dy = jnp.asarray(rng.normal(size=(2, 4, 6)), dtype)
    y, _ = layer.forward(params, x)
    assert_trees_close(y, R.attention_forward(np.asarray(x, np.float64), *[np.asarray(a, np.float64) for a in params], heads=2),
                       RTOL[np.dtype(dtype)], "forward vs reference")
    four_way(layer, params, x, dy, _ref(2), jit)


def test_attention_is_causal():
    layer = fnnet.CausalSelfAttention(3, 6)
    params = randomize(layer.init(jax.random.key(0), (5, 6))[0], 0, jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, 6)))
    y1 = layer.forward(params, x)[0]
    y2 = layer.forward(params, x.at[0, 3:].set(7.0))[0]                 # change the future only
    np.testing.assert_array_equal(y1[0, :3], y2[0, :3])
    assert not np.allclose(y1[0, 3:], y2[0, 3:])


def test_attention_mid_network():
    mid_network(fnnet.CausalSelfAttention(2, 4), (3, 4)).raise_if_failed()


def test_attention_bad_input():
    with pytest.raises(ValueError, match="heads must divide dim, got dim=6, heads=4"):
        fnnet.CausalSelfAttention(4, 6)
    layer = fnnet.CausalSelfAttention(2, 4)
    params = layer.init(jax.random.key(0), (3, 4))[0]
    with pytest.raises(ValueError, match=r"x must be \[batch, T, 4\], got \(2, 3, 5\)"):
        layer.forward(params, jnp.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"params.w_o must be \[4, 4\], got \(4, 3\)"):
        layer.forward(params._replace(w_o=jnp.zeros((4, 3))), jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"input must be \[batch, T, 4\]"):
        layer.init(jax.random.key(0), (3, 5))
