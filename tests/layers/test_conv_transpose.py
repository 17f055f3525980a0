"""ConvTranspose2D: backward vs jax.vjp, the scatter-loop NumPy twin and FD; the adjoint of Conv2D;
mid-network; bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet_reference.layers import conv_transpose as R
from seq_helpers import DTYPE_JIT, f64, four_way, randomize

# (kernel, stride, padding): stride 1 and 2, 'same' with k > s and k < s, PyTorch's k=4 s=2 p=1,
# a non-square kernel and stride, an int padding pair
GEOMETRIES = [(3, 1, "valid"), (3, 2, "same"), (4, 2, 1), (2, 3, "same"), ((3, 2), (2, 1), (1, 0))]


def _crops(layer, hw):
    _, s, crops, _ = layer._geometry(hw)
    return s, crops


def _ref(layer, hw):
    s, crops = _crops(layer, hw)

    def ref(p, x, dy):
        dw, db, dx = R.conv_transpose2d_backward(x, p.w, p.b, dy, stride=s, crops=crops)
        return fnnet.ConvTransposeParams(dw, db), dx
    return ref


@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES, ids=str)
@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_conv_transpose_four_witnesses(kernel, stride, padding, dtype, jit):
    layer = fnnet.ConvTranspose2D(3, kernel, stride, padding)
    rng = np.random.default_rng(0)
    params = randomize(layer.init(jax.random.key(0), (3, 4, 2))[0], 1, dtype)
    x = jnp.asarray(rng.normal(size=(2, 3, 4, 2)), dtype)
    y, _ = layer.forward(params, x)
    assert y.shape[1:] == layer.init(jax.random.key(0), (3, 4, 2))[1]
    s, crops = _crops(layer, (3, 4))
    want = R.conv_transpose2d_forward(f64(x), f64(params.w), f64(params.b), stride=s, crops=crops)
    np.testing.assert_allclose(f64(y), want, rtol=0, atol=1e-4 if dtype == jnp.float32 else 1e-12)
    dy = jnp.asarray(rng.normal(size=y.shape), dtype)
    four_way(layer, params, x, dy, _ref(layer, (3, 4)), jit)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, "same"), (4, 2, 1), (3, 2, "valid")], ids=str)
def test_conv_transpose_is_the_adjoint_of_conv2d(kernel, stride, padding):
    """<ConvT(x), z> = <x, Conv2D(z)> with the kernel's C_in and filters swapped, biases zero."""
    rng = np.random.default_rng(2)
    ct = fnnet.ConvTranspose2D(3, kernel, stride, padding)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 2, 3)))
    x = jnp.asarray(rng.normal(size=(2, 4, 5, 2)))
    y, _ = ct.forward(fnnet.ConvTransposeParams(w, jnp.zeros(3)), x)
    z = jnp.asarray(rng.normal(size=y.shape))
    conv = fnnet.Conv2D(2, kernel, stride, padding)
    cz, _ = conv.forward(fnnet.ConvParams(jnp.swapaxes(w, 2, 3), jnp.zeros(2)), z)
    assert cz.shape == x.shape
    np.testing.assert_allclose(float(jnp.vdot(y, z)), float(jnp.vdot(x, cz)), rtol=1e-12)


def test_conv_transpose_mid_network():
    """Conv2D -> ConvTranspose2D (upsampling) -> Tanh -> Flatten -> Dense: dx flows through it."""
    net = fnnet.Network((fnnet.Conv2D(3, 2, 2), fnnet.ConvTranspose2D(2, 3, 2, "same"), fnnet.Tanh(),
                         fnnet.Flatten(), fnnet.Dense(3)), "softmax_cross_entropy", (4, 4, 1))
    params = randomize(fnnet.init(net, jax.random.key(0), jnp.float64), 2, jnp.float64)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(3, 4, 4, 1)))
    y = jnp.asarray(rng.integers(0, 3, 3))
    fnnet.check.check_network(net, params, x, y, reference=None).raise_if_failed()


def test_conv_transpose_check_layer():
    """The case `fnnet check` runs: check_layer with the twin as the reference witness."""
    layer = fnnet.ConvTranspose2D(3, 3, 2, "same")
    params = randomize(layer.init(jax.random.key(0), (3, 4, 2))[0], 4, jnp.float64)
    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 3, 4, 2)))
    fnnet.check.check_layer(layer, params, x, reference=_ref(layer, (3, 4))).raise_if_failed()


def test_conv_transpose_bad_input():
    ct = fnnet.ConvTranspose2D(4, 3, 2)
    p = jax.tree.map(lambda a: a.astype(jnp.float64), ct.init(jax.random.key(0), (3, 3, 2))[0])
    with pytest.raises(TypeError, match=r"ConvTranspose2D\(4.*x has dtype float32 but the params are float64"):
        ct.forward(p, jnp.zeros((1, 3, 3, 2), jnp.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4, kernel=3x3.*x must have 2 channels"):
        ct.forward(p, jnp.zeros((1, 3, 3, 5)))
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4.*x must be images .* got rank 3"):
        ct.forward(p, jnp.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4.*params.w must be \[3, 3, C_in, 4\]"):
        ct.forward(p._replace(w=jnp.zeros((2, 2, 2, 4))), jnp.zeros((1, 3, 3, 2)))
    y, cache = ct.forward(p, jnp.zeros((1, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4.*dy must have the output's shape \(1, 7, 7, 4\)"):
        ct.backward(p, cache, jnp.zeros((1, 6, 6, 4)))
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4, kernel=3\): padding 3 must be smaller than"):
        fnnet.ConvTranspose2D(4, 3, 1, 3)
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4, kernel=3\): padding must be 'valid', 'same'"):
        fnnet.ConvTranspose2D(4, 3, 1, "full")
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4.*crops the whole output along height"):
        fnnet.ConvTranspose2D(4, 3, 1, 2).init(jax.random.key(0), (1, 3, 2))   # 0·1 + 3 − 2·2 = −1 rows
    with pytest.raises(ValueError, match=r"ConvTranspose2D\(4.*input must be images"):
        ct.init(jax.random.key(0), (9,))
