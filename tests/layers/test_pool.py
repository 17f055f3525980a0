"""MaxPool2D / AvgPool2D: backward vs jax.vjp, the loop twin and finite differences; the tie
convention (one element per window, as jax.grad); mid-network; bad input."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
import fnnet_reference as reference
from fnnet.layers.pool import _offsets, _scatter, _window_slice
from vision_oracles import check_mid_network, check_vjp_all, random

LAYERS = {
    "max 2x2": (fnnet.MaxPool2D(2), reference.maxpool2d_forward, reference.maxpool2d_backward),
    "max 3x3 stride 2 (overlapping)": (fnnet.MaxPool2D(3, 2), reference.maxpool2d_forward,
                                       reference.maxpool2d_backward),
    "avg 2x3 stride (1, 2)": (fnnet.AvgPool2D((2, 3), (1, 2)), reference.avgpool2d_forward,
                              reference.avgpool2d_backward),
    "avg 2x2": (fnnet.AvgPool2D(2), reference.avgpool2d_forward, reference.avgpool2d_backward),
}


def sizes(layer):
    return layer._sizes()


def run_case(name, dtype, jit, x=None, fd=True):
    layer, ref_f, ref_b = LAYERS[name]
    k, s = sizes(layer)
    x = random((2, 7, 6, 3), dtype, 0) if x is None else x
    return check_vjp_all(name, lambda x: layer.forward((), x)[0],
                         lambda x, dy: (layer.backward((), layer.forward((), x)[1], dy)[1],),
                         lambda x: ref_f(x, window=k, stride=s), lambda x, dy: (ref_b(x, dy, window=k, stride=s),), (x,), dtype, jit, fd=fd)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_pool_against_all_oracles(name, dtype):
    run_case(name, dtype, jit=False)


@pytest.mark.parametrize("name", ["max 3x3 stride 2 (overlapping)", "avg 2x2"])
def test_pool_under_jit(name):
    run_case(name, jnp.float32, jit=True)


@pytest.mark.parametrize("jit", [False, True])
def test_max_ties_send_the_gradient_to_the_first_maximum_like_jax_grad(jit):
    # integer-valued inputs: most windows hold ties; FD is meaningless at ties, so it is off
    x = jnp.asarray(np.random.default_rng(4).integers(-1, 2, size=(2, 7, 6, 3)), jnp.float64)
    (dx,) = run_case("max 3x3 stride 2 (overlapping)", jnp.float64, jit, x=x, fd=False)
    layer = fnnet.MaxPool2D(2)
    x = jnp.array([[[[1.0], [1.0]], [[0.0], [1.0]]]])            # one 2x2 window, a three-way tie
    _, dx = layer.backward((), layer.forward((), x)[1], jnp.array([[[[5.0]]]]))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[5.0, 0.0], [0.0, 0.0]])   # all of it to the first
    np.testing.assert_array_equal(jax.grad(lambda x: 5 * layer.forward((), x)[0].sum())(x), dx)
    assert float(dx.sum()) == 5.0                                 # not 15: one element, not every tie


@dataclasses.dataclass(frozen=True)
class AllTies(fnnet.MaxPool2D):
    """Planted bug: the full cotangent to EVERY tied maximum of a window (not a subgradient)."""

    def forward(self, params, x):
        y, cache = super().forward(params, x)
        return y, (x, y)

    def backward(self, params, cache, dy):
        x, y = cache
        k, s, out = self._out(x.shape[1:3])
        dx = jnp.zeros(x.shape, dy.dtype)
        for p, q in _offsets(k):
            dx = dx + _scatter(jnp.where(_window_slice(x, p, q, s, out) == y, dy, 0), p, q, s, x.shape)
        return (), dx


def test_the_checker_rejects_the_full_cotangent_to_every_tied_element():
    x = np.random.default_rng(4).integers(-1, 2, size=(2, 6, 6, 2)).astype(np.float64)
    assert fnnet.check.check_layer(fnnet.MaxPool2D(2), (), x).ok
    assert not fnnet.check.check_layer(AllTies(2), (), x, reference=None).ok


def test_pool_mid_network():
    net = fnnet.Network((fnnet.Conv2D(3, 2), fnnet.Relu(), fnnet.MaxPool2D(2), fnnet.Conv2D(2, 2),
                         fnnet.AvgPool2D(2, 1), fnnet.Flatten(), fnnet.Dense(3)),
                        "softmax_cross_entropy", (7, 7, 2))
    check_mid_network(net, jnp.float64, jit=True)


def test_bad_input():
    with pytest.raises(ValueError, match=r"MaxPool2D.*stride must be an int >= 1, got 0"):
        fnnet.MaxPool2D(2, 0)
    with pytest.raises(ValueError, match=r"AvgPool2D.*window\[1\] must be an int >= 1, got 1.5"):
        fnnet.AvgPool2D((2, 1.5))
    with pytest.raises(ValueError, match=r"MaxPool2D\(3x3, stride=3x3\): kernel 3 is larger than the padded input "
                                         r"\(2 \+ 0 padding = 2\) along width"):
        fnnet.MaxPool2D(3).init(None, (4, 2, 1))
    with pytest.raises(ValueError, match=r"MaxPool2D.*rank 4\), got rank 3"):
        fnnet.MaxPool2D().forward((), jnp.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r"AvgPool2D.*input must be images"):
        fnnet.AvgPool2D().init(None, (16,))
