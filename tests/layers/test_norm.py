"""LayerNorm, RMSNorm and GroupNorm: backward vs jax.vjp, the reference (explicit Jacobians) and FD."""
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


def _ref_gn(groups):
    def ref(p, x, dy):
        dg, db, dx = R.groupnorm_backward(x, p.gamma, p.beta, dy, groups=groups)
        return fnnet.GroupNormParams(dg, db), dx
    return ref


@pytest.mark.parametrize("groups,shape", [(2, (2, 3, 4, 6)), (6, (2, 3, 4, 6)), (1, (3, 5, 4)), (2, (4, 6))],
                         ids=["images-2", "images-instance", "seq-1", "rows-2"])
@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_groupnorm_four_witnesses(groups, shape, dtype, jit):
    layer = fnnet.GroupNorm(groups)
    rng = np.random.default_rng(groups)
    params = randomize(layer.init(None, shape[1:])[0], 3, dtype)
    x = jnp.asarray(rng.normal(size=shape) * 2 + rng.normal(size=shape[-1]), dtype)   # per-channel offsets
    dy = jnp.asarray(rng.normal(size=shape), dtype)
    y, _ = layer.forward(params, x)
    want = R.groupnorm_forward(np.asarray(x, np.float64), *[np.asarray(a, np.float64) for a in params], groups=groups)
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=0, atol=1e-4 if dtype == jnp.float32 else 1e-12)
    four_way(layer, params, x, dy, _ref_gn(groups), jit)


def test_groupnorm_as_instance_and_layer_norm():
    """groups = C normalizes each channel of each image over H·W (InstanceNorm); groups = 1 over
    everything of a sample, which on rows [B, d] is LayerNorm."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 3, 4, 5)) * 3 + 1)
    p = fnnet.GroupNorm(5).init(None, (3, 4, 5))[0]
    y, _ = fnnet.GroupNorm(5).forward(p, x)
    xn = np.asarray(x)
    inst = (xn - xn.mean(axis=(1, 2), keepdims=True)) / np.sqrt(xn.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, inst, rtol=0, atol=1e-12)
    rows = jnp.asarray(rng.normal(size=(3, 6)))
    pl = randomize(fnnet.LayerNorm().init(None, (6,))[0], 1, jnp.float64)
    np.testing.assert_allclose(fnnet.GroupNorm(1).forward(fnnet.GroupNormParams(*pl), rows)[0],
                               fnnet.LayerNorm().forward(pl, rows)[0], rtol=0, atol=1e-13)


def test_groupnorm_mid_network():
    mid_network(fnnet.GroupNorm(2), (3, 4)).raise_if_failed()


def test_groupnorm_in_a_cnn():
    """Conv2D -> GroupNorm -> ReLU -> Flatten -> Dense: check_network exercises GroupNorm's dx."""
    import jax
    net = fnnet.Network((fnnet.Conv2D(4, 2), fnnet.GroupNorm(2), fnnet.Tanh(), fnnet.Flatten(), fnnet.Dense(3)),
                        "softmax_cross_entropy", (4, 4, 2))
    params = randomize(fnnet.init(net, jax.random.key(0), jnp.float64), 4, jnp.float64)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(3, 4, 4, 2)))
    y = jnp.asarray(rng.integers(0, 3, 3))
    fnnet.check.check_network(net, params, x, y, reference=None).raise_if_failed()


def test_groupnorm_bad_input():
    gn = fnnet.GroupNorm(4)
    with pytest.raises(ValueError, match=r"GroupNorm\(4\): the channel count 6 .* divisible by groups=4"):
        gn.init(None, (3, 6))
    p = gn.init(None, (8,))[0]
    with pytest.raises(ValueError, match=r"GroupNorm\(4\): params.gamma must be \[6\]"):
        gn.forward(p, jnp.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"GroupNorm\(4\): the channel count 6"):
        gn.forward(fnnet.GroupNormParams(jnp.ones(6), jnp.zeros(6)), jnp.zeros((2, 6)))
    with pytest.raises(TypeError, match=r"GroupNorm\(4\)"):
        gn.forward(p, jnp.zeros((2, 8), jnp.int32))
    with pytest.raises(ValueError, match="GroupNorm: groups must be an int >= 1"):
        fnnet.GroupNorm(0)
