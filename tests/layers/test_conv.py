"""Conv2D: hand-written backward vs jax.vjp, the NumPy loop twin and finite differences,
float64/float32, with and without jit, over strides/paddings; mid-network; bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet_reference as reference
from vision_oracles import check_mid_network, check_vjp_all, random

# (H, W, C_in, filters, kernel, stride, padding)
GEOMETRIES = {
    "3x3 valid": (5, 6, 2, 3, 3, 1, "valid"),
    "stride 2 with remainder": (7, 6, 2, 3, 3, 2, "valid"),
    "same, rectangular": (6, 5, 3, 2, (3, 2), (2, 1), "same"),
    "explicit padding 1": (5, 5, 1, 2, 3, 2, 1),
}


def case(name, dtype, jit, seed=0):
    h, w, c, f, k, s, p = GEOMETRIES[name]
    layer = fnnet.Conv2D(f, k, s, p)
    params, _ = layer.init(jax.random.key(seed), (h, w, c))
    x = random((2, h, w, c), dtype, seed)
    b = random((f,), dtype, seed + 1)
    pads = layer.forward(fnnet.ConvParams(params.w.astype(dtype), b), x)[1].pads
    stride = (s, s) if isinstance(s, int) else s

    def fwd(w, b, x):
        return layer.forward(fnnet.ConvParams(w, b), x)[0]

    def vjp(w, b, x, dy):
        g, dx = layer.backward(fnnet.ConvParams(w, b), layer.forward(fnnet.ConvParams(w, b), x)[1], dy)
        return g.w, g.b, dx

    return check_vjp_all(f"{layer}", fwd, vjp,
                         lambda w, b, x: reference.conv2d_forward(x, w, b, stride=stride, pads=pads),
                         lambda w, b, x, dy: reference.conv2d_backward(x, w, b, dy, stride=stride, pads=pads),
                         (params.w, b, x), dtype, jit, seed)


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_conv_against_all_oracles(name, dtype):
    case(name, dtype, jit=False)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_conv_under_jit(dtype):
    case("stride 2 with remainder", dtype, jit=True, seed=3)


def test_same_padding_keeps_the_size_and_init_fans_in_over_the_window():
    layer = fnnet.Conv2D(16, 3, 1, "same")
    params, out = layer.init(jax.random.key(0), (8, 8, 4))
    assert out == (8, 8, 16) and params.w.shape == (3, 3, 4, 16)
    assert layer.l2_mask(params) == fnnet.ConvParams(True, False)
    std = float(jnp.std(params.w))
    assert 0.8 < std / np.sqrt(2 / 36) < 1.2                          # he_normal over kh·kw·C_in = 36


def test_padding_names_in_any_case_as_lax_and_flax_spell_them():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 5, 3)))
    for upper, lower in (("SAME", "same"), ("VALID", "valid"), ("Same", "same")):
        layer = fnnet.Conv2D(4, 3, 2, padding=upper)
        assert layer == fnnet.Conv2D(4, 3, 2, padding=lower) and layer.padding == lower
        params, out = layer.init(jax.random.key(0), (5, 5, 3))
        params = jax.tree.map(lambda a: a.astype(x.dtype), params)
        y, _ = layer.forward(params, x)
        want = jax.lax.conv_general_dilated(x, params.w, (2, 2), upper,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + params.b[None, None, None]
        assert y.shape == (2, *out)
        np.testing.assert_allclose(y, want, rtol=1e-12)


def test_conv_mid_network():
    """Under jit only: the layer-level tests above cover eager mode, and eager networks are slow."""
    net = fnnet.Network((fnnet.Conv2D(3, 3, padding="same"), fnnet.Tanh(), fnnet.Conv2D(2, 2, 2),
                         fnnet.Flatten(), fnnet.Dense(3)), "softmax_cross_entropy", (6, 6, 2), l2=0.01)
    check_mid_network(net, jnp.float64, jit=True)


def test_bad_input_names_the_layer_and_expected_vs_received():
    with pytest.raises(ValueError, match=r"stride must be an int >= 1, got 0"):
        fnnet.Conv2D(4, 3, stride=0)
    with pytest.raises(ValueError, match=r"kernel must be an int >= 1, got 2.5"):
        fnnet.Conv2D(4, 2.5)
    with pytest.raises(ValueError, match=r"filters must be an int >= 1, got 3.0"):
        fnnet.Conv2D(3.0)
    with pytest.raises(ValueError, match=r"padding must be 'valid', 'same' or an int"):
        fnnet.Conv2D(4, 3, padding="full")
    too_big = fnnet.Network((fnnet.Conv2D(4, 5), fnnet.Flatten(), fnnet.Dense(2)), "mse", (4, 6, 1))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2D\(4, kernel=5x5.*kernel 5 is larger than the padded "
                                         r"input \(4 \+ 0 padding = 4\) along height"):
        fnnet.init(too_big, jax.random.key(0))
    with pytest.raises(ValueError, match=r"padding 3 must be smaller than the kernel size 3"):
        fnnet.Conv2D(4, 3, padding=3).init(jax.random.key(0), (8, 8, 1))
    layer = fnnet.Conv2D(4, 3)
    with pytest.raises(ValueError, match=r"input must be images \[batch, height, width, channels\].*got feature shape \(64,\)"):
        layer.init(jax.random.key(0), (64,))
    params, _ = layer.init(jax.random.key(0), (8, 8, 1))
    with pytest.raises(ValueError, match=r"x must have 1 channels \(last axis\), got 3"):
        layer.forward(params, jnp.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"x must be images \[batch, height, width, channels\] \(rank 4\), got rank 2"):
        layer.forward(params, jnp.ones((2, 64)))
    net = fnnet.Network((layer, fnnet.Flatten(), fnnet.Dense(2)), "mse", (8, 8, 1))
    p = fnnet.init(net, jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2D.*x must be \[batch, 8, 8, 1\], got \(2, 8, 8, 3\)"):
        fnnet.forward(net, p, jnp.ones((2, 8, 8, 3)))
