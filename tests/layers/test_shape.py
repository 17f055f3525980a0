"""Flatten / Reshape: exact inverse-reshape backward vs jax.vjp and the twin; bad input."""
import jax.numpy as jnp
import pytest

import fnnet
import fnnet_reference as reference
from vision_oracles import check_mid_network, check_vjp_all, random


@pytest.mark.parametrize("layer,shape", [(fnnet.Flatten(), (24,)), (fnnet.Reshape((4, 6)), (4, 6)),
                                         (fnnet.Reshape((2, 3, 4)), (2, 3, 4))])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_shape_layers_against_all_oracles(layer, shape, dtype, jit):
    x = random((3, 2, 3, 4), dtype, 0)
    assert layer.init(None, (2, 3, 4)) == ((), shape)
    check_vjp_all(str(layer), lambda x: layer.forward((), x)[0],
                  lambda x, dy: (layer.backward((), layer.forward((), x)[1], dy)[1],),
                  lambda x: reference.reshape_forward(x, shape=shape), lambda x, dy: (reference.reshape_backward(x, dy),),
                  (x,), dtype, jit, fd=not jit)


def test_reshape_rows_to_images_mid_network():
    net = fnnet.Network((fnnet.Dense(12), fnnet.Reshape((2, 2, 3)), fnnet.Conv2D(2, 2), fnnet.Flatten(),
                         fnnet.Dense(3)), "softmax_cross_entropy", (5,))
    check_mid_network(net, jnp.float64, jit=True)


def test_bad_input():
    with pytest.raises(ValueError, match=r"Reshape: shape\[1\] must be an int >= 1, got 2.0"):
        fnnet.Reshape((4, 2.0))
    with pytest.raises(ValueError, match=r"Reshape\(\(8, 8, 1\)\): cannot reshape feature shape \(63,\) \(63 values\) "
                                         r"to \(8, 8, 1\) \(64 values\)"):
        fnnet.Reshape((8, 8, 1)).init(None, (63,))
    with pytest.raises(ValueError, match=r"Flatten\(\): takes no parameters"):
        fnnet.Flatten().forward((1.0,), jnp.ones((2, 3)))
