"""LayerNorm and RMSNorm: backward vs jax.vjp, the reference (explicit Jacobians) and FD."""
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet_reference.layers import norm as R
from seq_helpers import DTYPE_JIT, four_way, mid_network, randomize


def _ref_ln(p, x, dy):
    dg, db, dx = R.layernorm_backward(x, p.gamma, p.beta, dy)
    return fnnet.layers.LayerNormParams(dg, db), dx


def _ref_rms(p, x, dy):
    dg, dx = R.rmsnorm_backward(x, p.gamma, dy)
    return fnnet.layers.RMSNormParams(dg), dx


CASES = {"layernorm": (fnnet.LayerNorm(), _ref_ln, R.layernorm_forward), "rmsnorm": (fnnet.RMSNorm(), _ref_rms, R.rmsnorm_forward)}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_norm_four_witnesses(name, dtype, jit):
    layer, ref_backward, ref_forward = CASES[name]
    rng = np.random.default_rng(1)
    params = randomize(layer.init(None, (4, 6))[0], 2, dtype)
    x = jnp.asarray(rng.normal(size=(2, 4, 6)) * 3 + 1, dtype)      # off-centre, unit-less scale
    dy = jnp.asarray(rng.normal(size=(2, 4, 6)), dtype)
    y, _ = layer.forward(params, x)
    want = ref_forward(np.asarray(x, np.float64), *[np.asarray(a, np.float64) for a in params])
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=0, atol=1e-4 if dtype == jnp.float32 else 1e-12)
    four_way(layer, params, x, dy, ref_backward, jit)


@pytest.mark.parametrize("layer", [fnnet.LayerNorm(), fnnet.RMSNorm()], ids=str)
def test_norm_mid_network(layer):
    mid_network(layer, (3, 4)).raise_if_failed()


def test_norm_on_2d_input():
    p = randomize(fnnet.LayerNorm().init(None, (5,))[0], 0, jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)))
    y, _ = fnnet.LayerNorm().forward(p, x)
    np.testing.assert_allclose(y, R.layernorm_forward(np.asarray(x), np.asarray(p.gamma), np.asarray(p.beta)), atol=1e-12)


def test_norm_bad_input():
    ln = fnnet.LayerNorm()
    p = ln.init(None, (4,))[0]
    with pytest.raises(ValueError, match=r"LayerNorm\(\): params.gamma must be \[5\].*got \(4,\)"):
        ln.forward(p, jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"LayerNorm\(\): x must be \[batch, \.\.\., d\], got shape \(4,\)"):
        ln.forward(p, jnp.zeros((4,)))
    with pytest.raises(TypeError, match="LayerNorm"):
        ln.forward(p, jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="RMSNorm: eps must be"):
        fnnet.RMSNorm(eps=0.0)
