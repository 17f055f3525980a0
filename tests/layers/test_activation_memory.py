"""Activation caches hold the least their backward needs, and the compiled step shows it.

Relu caches its output y (y > 0 exactly where x > 0) instead of its input: the next Dense
keeps y anyway, so the cache costs nothing. LeakyRelu does the same for α ≥ 0 and keeps
a bool mask for α < 0, where y alone cannot tell x > 0 from x < 0. The memory test reads
`compiled.memory_analysis()` of a jitted step (deterministic byte counts, not timing).
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
import fnnet_reference as reference
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit


def test_relu_and_leaky_relu_cache_their_output():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)))
    for layer in (fnnet.Relu(), fnnet.LeakyRelu(0.2), fnnet.LeakyRelu(0.0)):
        y, cache = layer.forward((), x)
        assert cache is y, layer
    y, cache = fnnet.LeakyRelu(-0.5).forward((), x)
    assert cache.dtype == jnp.bool_ and cache.shape == x.shape
    np.testing.assert_array_equal(cache, np.asarray(x) > 0)


@pytest.mark.parametrize("layer", [fnnet.Relu(), fnnet.LeakyRelu(0.3), fnnet.LeakyRelu(-0.4)])
def test_kinks_and_signed_zeros_keep_the_left_derivative(layer):
    x = jnp.asarray([[0.0, -0.0, 1e-30, -1e-30, 2.0, -3.0]])
    dy = jnp.asarray([[1.5, -2.0, 0.7, -0.3, 1.1, 0.9]])
    _, dx = layer.backward((), layer.forward((), x)[1], dy)
    alpha = getattr(layer, "alpha", 0.0)
    want = np.where(np.asarray(x) > 0, dy, alpha * np.asarray(dy))   # relu'(0) = 0, leaky'(0) = α
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("alpha", [-0.4, 0.0, 0.25])
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_leaky_relu_mid_network_against_all_oracles(alpha, dtype, jit):
    """Dense -> LeakyRelu(α) -> Dense: dL/dx through the activation reaches the first layer."""
    rng = np.random.default_rng(7)
    net = fnnet.Network((fnnet.Dense(5), fnnet.LeakyRelu(alpha), fnnet.Dense(3)), "mse", (4,))
    params = tuple(jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), dtype), p)
                   for p in fnnet.init(net, jax.random.key(0), dtype))
    x = jnp.asarray(rng.normal(size=(6, 4)), dtype)
    y = jnp.asarray(rng.normal(size=(6, 3)), dtype)
    rtol = RTOL[np.dtype(dtype)]
    _, grads, dx = maybe_jit(lambda p, x: fnnet.backprop(net, p, x, y), jit)(params, x)
    want = jax.grad(lambda p, x: fnnet.loss(net, p, x, y), argnums=(0, 1))(params, x)
    assert_trees_close((grads, dx), want, rtol, "vs jax.grad")
    # the reference twin of the activation, on the hidden layer's pre-activation
    h = np.asarray(x, np.float64) @ np.asarray(params[0].w, np.float64) + np.asarray(params[0].b, np.float64)
    _, cache = fnnet.LeakyRelu(alpha).forward((), jnp.asarray(h, dtype))
    dh = jnp.asarray(rng.normal(size=h.shape), dtype)
    _, dx_act = fnnet.LeakyRelu(alpha).backward((), cache, dh)
    assert_trees_close(dx_act, reference.leaky_relu_backward(h, np.asarray(dh, np.float64), alpha=alpha),
                       rtol, "vs reference")
    if dtype == jnp.float64:                        # finite differences of the whole loss
        fd = fd_vjp(lambda x: fnnet.loss(net, params, x, y), (np.asarray(x),), np.ones(()))
        assert_trees_close(dx, fd[0], FD_RTOL, "dL/dx vs FD")


def _step_temp_bytes(net, batch, kind):
    """Temporary bytes of one compiled SGD step (fnnet's backward or jax.grad of the loss)."""
    params = fnnet.init(net, jax.random.key(0), jnp.float32)
    x = jax.random.normal(jax.random.key(1), (batch, net.in_shape[0]), jnp.float32)
    y = jnp.arange(batch) % fnnet.out_shape(net)[0]
    opt = optax.sgd(0.1)

    def step(p, s):
        if kind == "fnnet":
            _, g = fnnet.value_and_grad(net, p, x, y)
        else:
            _, g = jax.value_and_grad(lambda q: fnnet.loss(net, q, x, y))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    compiled = jax.jit(step).lower(params, opt.init(params)).compile()
    return compiled.memory_analysis().temp_size_in_bytes


_DEEP_RELU = r"""
import json, sys
sys.path[:0] = sys.argv[1:]
import fnnet
from test_activation_memory import _step_temp_bytes
net = fnnet.mlp([256] * 13 + [10], activation="relu", loss="softmax_cross_entropy")
print(json.dumps([fnnet.XLA_FLAGS_STATUS, _step_temp_bytes(net, 512, "fnnet"),
                  _step_temp_bytes(net, 512, "jax.grad")]))
"""


def _deep_relu_bytes(scheduler_flag: bool):
    """(fnnet, jax.grad) step temporaries of a 12 x 256 ReLU net, batch 512, in a child
    process: XLA reads XLA_FLAGS once per process, so each scheduler needs its own."""
    env = dict(os.environ, FNNET_XLA_FLAGS="1" if scheduler_flag else "0")
    env.pop("XLA_FLAGS", None)
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", _DEEP_RELU, here, os.path.dirname(here)], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    status, ours, autodiff = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == ("set" if scheduler_flag else "opted out"), status
    return ours, autodiff


def test_deep_relu_step_keeps_at_most_0_6_of_jax_grads_temporaries():
    """12 x 256 ReLU net, batch 512: jax.grad keeps every pre-activation and every ReLU
    output; fnnet keeps the outputs alone (each shared by the Relu and the next Dense).
    XLA's own scheduler shows it (FNNET_XLA_FLAGS=0); under the scheduler flag fnnet sets
    for speed (fnnet/_xla_cpu.py), which keeps more buffers alive at once, fnnet's step
    still holds no more than jax.grad's."""
    ours, autodiff = _deep_relu_bytes(scheduler_flag=False)
    assert ours <= 0.6 * autodiff, f"fnnet {ours} B vs jax.grad {autodiff} B ({ours / autodiff:.2f}x)"
    ours, autodiff = _deep_relu_bytes(scheduler_flag=True)
    assert ours <= autodiff, f"with fnnet's XLA flag: fnnet {ours} B vs jax.grad {autodiff} B"
