"""fnnet.loss_with_manual_grad: jax.grad runs the hand-written backward (custom_vjp).

Oracles: fnnet.backward for params, jax.grad of fnnet.loss for x, a Python loop for
vmapped per-example gradients, fit(grad="manual") for an optax loop, and a layer
whose backward is deliberately not its forward's derivative.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit

F64 = RTOL[np.dtype("float64")]
NETS = {
    "softmax-ce-int-labels-l2": (fnnet.mlp([3, 5, 3], activation="tanh", loss="softmax_cross_entropy", l2=0.1),
                                 lambda rs, n: rs.randint(0, 3, n).astype(np.int32)),
    "sigmoid-bce": (fnnet.mlp([3, 5, 2], activation="relu", loss="sigmoid_binary_cross_entropy"),
                    lambda rs, n: rs.randint(0, 2, (n, 2)).astype(np.float64)),
    "mse-sigmoid-out": (fnnet.mlp([3, 4, 1], activation="sigmoid", output="sigmoid", loss="mse"),
                        lambda rs, n: rs.uniform(size=(n, 1))),
}


def _problem(name, n=6, dtype=np.float64):
    net, targets = NETS[name]
    rs = np.random.RandomState(3)
    return net, fnnet.init(net, jax.random.key(5), dtype), rs.normal(size=(n, 3)).astype(dtype), targets(rs, n)


# Oracles, jitted for speed only (eager dispatch compiles every primitive separately).
backward = jax.jit(fnnet.backward, static_argnums=0)
loss = jax.jit(fnnet.loss, static_argnums=0)
autodiff_dx = jax.jit(jax.grad(fnnet.loss, argnums=2), static_argnums=0)


@pytest.mark.parametrize("name,jit", [(name, True) for name in NETS] + [("softmax-ce-int-labels-l2", False)],
                         ids=[f"{name}-jit" for name in NETS] + ["softmax-ce-int-labels-l2-eager"])
def test_grad_equals_backward_and_autodiff_dx(name, jit):
    net, params, x, y = _problem(name)
    f = fnnet.loss_with_manual_grad(net)
    value, (gp, gx) = maybe_jit(jax.value_and_grad(f, argnums=(0, 1)), jit)(params, x, y)
    np.testing.assert_allclose(value, loss(net, params, x, y), rtol=F64)
    assert_trees_close(gp, backward(net, params, x, y), F64, "d/dparams")
    assert_trees_close(gx, autodiff_dx(net, params, x, y), F64, "d/dx vs jax.grad of fnnet.loss")


def test_cotangent_scales_the_residuals_and_y_gets_its_hand_written_gradient():
    net, params, x, y = _problem("mse-sigmoid-out")
    f = fnnet.loss_with_manual_grad(net)

    @jax.jit
    def pullbacks(params, x, y):
        _, vjp = jax.vjp(f, params, x, y)
        chain = jax.grad(lambda p: 3.0 * f(p, x, y) + f(p, x, y) ** 2)(params)   # d(3L + L²) = (3 + 2L) dL
        return vjp(jnp.float64(-2.5)), chain

    (dp, dx, dy), chain = pullbacks(params, x, y)
    want, l = backward(net, params, x, y), loss(net, params, x, y)
    assert_trees_close(dp, jax.tree.map(lambda g: -2.5 * g, want), F64, "dp")
    dy_oracle = jax.grad(lambda t: loss(net, params, x, t))(y)            # autodiff, the oracle
    assert np.abs(dy_oracle).max() > 0                                    # item 4: not zero
    assert_trees_close(dy, -2.5 * dy_oracle, F64, "dy")
    assert_trees_close(chain, jax.tree.map(lambda b: (3 + 2 * l) * b, want), F64, "chain rule")


def test_integer_labels_get_a_float0_cotangent():
    net, params, x, y = _problem("softmax-ce-int-labels-l2")
    _, vjp = jax.vjp(fnnet.loss_with_manual_grad(net), params, x, y)
    dy = vjp(jnp.float64(1.0))[2]
    assert dy.dtype == jax.dtypes.float0 and dy.shape == y.shape


@pytest.mark.parametrize("name", ["softmax-ce-int-labels-l2", "sigmoid-bce"])
def test_vmap_per_example_gradients_equal_a_loop(name):
    net, params, x, y = _problem(name)
    f = fnnet.loss_with_manual_grad(net)
    per_example = jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0, 0)))(params, x[:, None], y[:, None])
    for i in range(len(x)):
        want = backward(net, params, x[i:i + 1], y[i:i + 1])
        assert_trees_close(jax.tree.map(lambda a: a[i], per_example), want, F64, f"example {i}")


def test_optax_loop_on_jax_grad_equals_fit_manual():
    net, params, x, y = _problem("softmax-ce-int-labels-l2", n=8)
    opt = optax.adam(0.05)
    f = fnnet.loss_with_manual_grad(net)

    @jax.jit
    def step(p, s):
        value, g = jax.value_and_grad(f)(p, x, y)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    p, s, losses = params, opt.init(params), []
    for _ in range(5):
        p, s, value = step(p, s)
        losses.append(value)
    want, hist, *_ = fnnet.fit(net, params, x, y, optimizer=opt, epochs=5)
    assert_trees_close(p, want, F64, "params")
    np.testing.assert_allclose(losses, hist.loss, rtol=F64)


@dataclasses.dataclass(frozen=True)
class SignST:
    """sign(x) forward with a straight-through backward (dL/dx = dL/dy): not sign's derivative."""

    def init(self, key, in_shape):
        return (), tuple(in_shape)

    def forward(self, params, x):
        return jnp.sign(x), None

    def backward(self, params, cache, dy):
        return (), dy                                           # straight-through estimator


def test_the_hand_written_rule_is_the_one_jax_grad_uses():
    net = fnnet.Network((fnnet.Dense(4), SignST(), fnnet.Dense(1)), "mse", (3,))
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = np.random.RandomState(0).normal(size=(5, 3)), np.ones((5, 1))
    g = jax.jit(jax.grad(fnnet.loss_with_manual_grad(net)))(params, x, y)
    assert_trees_close(g, backward(net, params, x, y), F64, "straight-through")
    assert np.abs(g[0].w).max() > 1e-3                          # gradient flows through sign
    autodiff = jax.jit(jax.grad(lambda p: fnnet.loss(net, p, x, y)))(params)
    np.testing.assert_array_equal(autodiff[0].w, 0.0)           # sign' = 0: autodiff sees nothing


def test_same_net_same_function():
    net = NETS["sigmoid-bce"][0]
    assert fnnet.loss_with_manual_grad(net) is fnnet.loss_with_manual_grad(net)


@pytest.mark.parametrize("name,dtype", [(n, d) for n in ("mse", "half_sse", "softmax_cross_entropy",
                                                         "sigmoid_binary_cross_entropy")
                                        for d in (np.float64, np.float32)])
@pytest.mark.parametrize("jit", [False, True])
def test_target_gradient_matches_autodiff_and_finite_differences(name, dtype, jit):
    """dL/dy for float targets (item 4): hand-written, mid-network outputs, random targets."""
    rs = np.random.RandomState(4)
    x = rs.normal(size=(5, 3)).astype(dtype)
    y = {"softmax_cross_entropy": rs.dirichlet(np.ones(2), 5),
         "sigmoid_binary_cross_entropy": rs.uniform(size=(5, 2))}.get(name, rs.normal(size=(5, 2))).astype(dtype)
    net = fnnet.mlp([3, 4, 2], activation="tanh", loss=name)
    params = fnnet.init(net, jax.random.key(2), dtype)
    f = fnnet.loss_with_manual_grad(net)
    g = jax.grad(f, argnums=2)
    dy = (jax.jit(g) if jit else g)(params, x, y)
    oracle = jax.grad(lambda t: loss(net, params, x, t))(y)
    assert dy.dtype == dtype
    assert_trees_close(dy, oracle, RTOL[np.dtype(dtype)], "dL/dy vs jax.grad")
    if dtype == np.float64:
        (fd,) = fd_vjp(lambda t: loss(net, params, x, t), (y,), np.float64(1.0))
        assert_trees_close(dy, fd, FD_RTOL, "dL/dy vs finite differences")


def test_a_loss_without_target_grad_refuses_a_y_gradient_but_not_a_params_one():
    @dataclasses.dataclass(frozen=True)
    class Abs:
        def value(self, out, target):
            return jnp.mean(jnp.abs(out - target))

        def grad(self, out, target):
            return jnp.sign(out - target) / out.size        # dL/dout = sign(out - t) / n

    net = fnnet.Network((fnnet.Dense(2),), Abs(), (3,))
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = np.ones((4, 3)) * np.arange(3), np.linspace(-1, 1, 8).reshape(4, 2)
    f = fnnet.loss_with_manual_grad(net)
    jax.grad(f)(params, x, y)                                  # params only: fine
    with pytest.raises(TypeError, match=r"gradient w.r.t. the targets y.*no hand-written target_grad"):
        jax.grad(f, argnums=2)(params, x, y)
