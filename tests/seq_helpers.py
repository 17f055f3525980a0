"""Shared checks for the sequence layers: four witnesses on one layer, a layer
placed mid-network, and random (non-symmetric, non-zero) params."""
import jax
import jax.numpy as jnp
import numpy as np

import fnnet
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit


# (dtype, jit): float64 eager and jitted, float32 jitted (float32 eager adds time, not evidence:
# the eager and jitted paths run the same jnp code, and float64 already covers both)
DTYPE_JIT = [(jnp.float64, False), (jnp.float64, True), (jnp.float32, True)]


def f64(a):
    return np.asarray(a, np.float64)


def randomize(params, seed, dtype, scale=0.5):
    """Every leaf replaced by N(0, scale²) draws: no ones/zeros init reaches a test."""
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return treedef.unflatten([jnp.asarray(scale * rng.normal(size=l.shape), dtype) for l in leaves])


def four_way(layer, params, x, dy, ref_backward, jit, wrt_x=True):
    """layer.backward vs jax.vjp, the NumPy twin and float64 finite differences.

    ref_backward(params64, x64, dy64) -> (dparams tree, dx) in NumPy float64.
    wrt_x=False: x is integer ids (closed over); only dparams are compared.
    """
    dtype = np.dtype((jax.tree.leaves(params) or [dy])[0].dtype)
    rtol = RTOL[dtype]
    fwd = lambda p, x: layer.forward(p, x)[0]   # noqa: E731
    bwd = maybe_jit(lambda p, x, dy: layer.backward(p, layer.forward(p, x)[1], dy), jit)
    dp, dx = bwd(params, x, dy)
    assert all(np.dtype(l.dtype) == dtype for l in jax.tree.leaves(dp)), "dparams dtype"
    ref_p, ref_x = ref_backward(jax.tree.map(f64, params), np.asarray(x) if not wrt_x else f64(x), f64(dy))
    if wrt_x:
        assert dx.dtype == dtype
        _, vjp = jax.vjp(fwd, params, x)
        assert_trees_close((dp, dx), vjp(dy), rtol, "vs jax.vjp")
        assert_trees_close((dp, dx), (ref_p, ref_x), rtol, "vs reference")
    else:
        assert dx is None
        _, vjp = jax.vjp(lambda p: fwd(p, x), params)
        assert_trees_close(dp, vjp(dy)[0], rtol, "vs jax.vjp")
        assert_trees_close(dp, ref_p, rtol, "vs reference")
    leaves, treedef = jax.tree.flatten(jax.tree.map(f64, params))
    n = len(leaves)
    if wrt_x:
        f = jax.jit(lambda *a: fwd(treedef.unflatten(a[:n]), a[n]))
        fd = fd_vjp(f, (*leaves, f64(x)), f64(dy))
        assert_trees_close((dp, dx), (treedef.unflatten(fd[:n]), fd[n]), max(rtol, FD_RTOL), "vs FD")
    else:
        f = jax.jit(lambda *a: fwd(treedef.unflatten(a), x))
        fd = fd_vjp(f, tuple(leaves), f64(dy))
        assert_trees_close(dp, treedef.unflatten(fd), max(rtol, FD_RTOL), "vs FD")
    return dp, dx


def mid_network(layer, in_shape, seed=0, vocab=5):
    """`layer` between two position-wise Dense layers, under SequenceCrossEntropy: check_network
    compares dL/dparams of all three and dL/dx (which flows through the layer's dx)."""
    t, d = in_shape
    net = fnnet.Network((fnnet.Positionwise(fnnet.Dense(d)), layer, fnnet.Positionwise(fnnet.Dense(vocab))),
                        fnnet.SequenceCrossEntropy(), in_shape)
    params = randomize(fnnet.init(net, jax.random.key(seed), jnp.float64), seed, jnp.float64)
    rng = np.random.default_rng(seed + 1)
    x = jnp.asarray(rng.normal(size=(2, t, d)))
    y = jnp.asarray(rng.integers(0, vocab, size=(2, t)))
    return fnnet.check.check_network(net, params, x, y, reference=None)
