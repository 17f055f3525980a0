"""One routine for the image and smooth-activation layer tests: a hand-written vjp against jax.vjp of the
same forward, the NumPy float64 twin and float64 finite differences, in a given dtype,
with or without jit; and a mid-network check (the layer's dx feeds the layers before it)."""
import jax
import jax.numpy as jnp
import numpy as np

import fnnet
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit


def random(shape, dtype, seed, scale=1.0):
    """Non-symmetric normal values (never all ones, never zeros)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, dtype)


def check_vjp_all(name, fwd, vjp, ref_fwd, ref_vjp, primals, dtype, jit, seed=0, fd=True):
    """fwd(*primals) -> y; vjp(*primals, dy) -> tuple like primals (arrays only);
    ref_fwd / ref_vjp: the same on float64 NumPy arrays (either may be None)."""
    rtol = RTOL[np.dtype(dtype)]
    primals = tuple(jnp.asarray(p, dtype) for p in primals)
    y = maybe_jit(fwd, jit)(*primals)
    assert y.dtype == dtype, f"{name}: forward dtype {y.dtype}"
    dy = random(y.shape, dtype, seed + 1000)
    got = maybe_jit(vjp, jit)(*primals, dy)
    assert len(got) == len(primals)
    for g, p in zip(got, primals):
        assert g.shape == p.shape and g.dtype == dtype, f"{name}: grad {g.shape} {g.dtype} vs {p.shape}"
    _, auto = jax.vjp(fwd, *primals)
    assert_trees_close(tuple(got), tuple(auto(dy)), rtol, f"{name} vs jax.vjp")
    p64 = tuple(np.asarray(p, np.float64) for p in primals)
    dy64 = np.asarray(dy, np.float64)
    if ref_fwd is not None:
        assert_trees_close(y, ref_fwd(*p64), rtol, f"{name} forward vs reference")
    if ref_vjp is not None:
        assert_trees_close(tuple(got), tuple(ref_vjp(*p64, dy64)), rtol, f"{name} vs reference")
    if fd:
        f64 = jax.jit(fwd)
        num = fd_vjp(lambda *ps: f64(*(jnp.asarray(p) for p in ps)), p64, dy64)
        assert_trees_close(tuple(got), num, max(rtol, FD_RTOL), f"{name} vs finite differences")
    return got


def check_mid_network(net, dtype, jit, n=4, seed=0, state=False, key=None):
    """fnnet.backprop (params and dL/dx) vs jax.grad of fnnet.loss on a small random batch."""
    rtol = RTOL[np.dtype(dtype)]
    params = fnnet.init(net, jax.random.key(seed), dtype)
    params = jax.tree.map(lambda a: a + random(a.shape, dtype, seed + 7, 0.1), params)   # no zero biases
    x = random((n, *net.in_shape), dtype, seed + 1)
    k = fnnet.out_shape(net)[0]
    y = jnp.asarray(np.random.default_rng(seed + 2).integers(0, k, n))
    kw = {"key": key} if key is not None else {}
    if state:
        kw["state"] = fnnet.init_state(net, dtype)
    run = maybe_jit(lambda p, x: fnnet.backprop(net, p, x, y, **kw), jit)
    value, grads, dx, *_ = run(params, x)
    loss = (lambda p, x: fnnet.loss(net, p, x, y, **kw)[0]) if state else (lambda p, x: fnnet.loss(net, p, x, y, **kw))
    av, (ag, adx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    assert_trees_close(value, av, rtol, f"{net} loss")
    assert_trees_close(grads, ag, rtol, f"{net} grads vs jax.grad")
    assert_trees_close(dx, adx, rtol, f"{net} dx vs jax.grad")
    return params, x, y
