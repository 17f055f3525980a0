"""Networks: the hand-written backward of whole nets vs jax.grad, reference and finite
differences; random architectures; L2; a user's own layer; vmap; bad input."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import fnnet
import fnnet_reference as reference
from helpers import FD_RTOL, RTOL, assert_trees_close, maybe_jit, to_reference

F64 = RTOL[np.dtype("float64")]


def data(net, batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch, *net.in_shape)), dtype)
    k = fnnet.out_shape(net)[0]
    name = net.loss.name
    if name == "softmax_cross_entropy":
        y = jnp.asarray(rng.integers(0, k, size=batch))
    elif name == "sigmoid_binary_cross_entropy":
        y = jnp.asarray(rng.integers(0, 2, size=(batch, k)), dtype)
    else:
        y = jnp.asarray(rng.normal(size=(batch, k)), dtype)
    return x, y


def ref_grads(net, params, x, y):
    layers, loss = to_reference(net, params)
    g = reference.backward(layers, loss, np.asarray(x, np.float64), np.asarray(y), net.l2)
    return tuple(fnnet.DenseParams(gi["w"], gi["b"]) if gi else () for gi in g)


def fd_directional(net, params, x, y, grads, n_dirs=3, eps=1e-6):
    """<grads, u> vs central difference of loss along random u, all in float64."""
    params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    x64 = jnp.asarray(x, jnp.float64)
    f = jax.jit(lambda p: fnnet.loss(net, p, x64, y))
    keys = jax.random.split(jax.random.key(42), n_dirs)
    for key in keys:
        leaves, tree = jax.tree.flatten(params64)
        us = [jax.random.normal(k, l.shape, jnp.float64) for k, l in zip(jax.random.split(key, len(leaves)), leaves)]
        u = jax.tree.unflatten(tree, us)
        plus = jax.tree.map(lambda p, d: p + eps * d, params64, u)
        minus = jax.tree.map(lambda p, d: p - eps * d, params64, u)
        fd = (float(f(plus)) - float(f(minus))) / (2 * eps)
        gu = jax.tree.map(lambda g, d: np.asarray(g, np.float64) * np.asarray(d), grads, u)
        dot = sum(float(v.sum()) for v in jax.tree.leaves(gu))
        scale = sum(float(np.abs(v).sum()) for v in jax.tree.leaves(gu))
        yield abs(dot - fd) / max(scale, 1e-300)


SEED_NETS = {
    "seed000": lambda: fnnet.mlp([2, 3, 2], activation="relu", output="sigmoid", loss="half_sse", w_init="lecun_normal"),
    "seed001": lambda: fnnet.mlp([64, 128, 128, 10], activation="sigmoid", loss="softmax_cross_entropy", w_init="normal"),
    "seed002": lambda: fnnet.mlp([2, 5, 3], activation="relu", loss="softmax_cross_entropy", l2=0.01, w_init="normal"),
    "seed003": lambda: fnnet.mlp([2, 3, 1], activation="tanh", output="tanh", loss="mse", w_init="normal", b_init="normal"),
    "leaky_bce": lambda: fnnet.mlp([3, 4, 2], activation="leaky_relu", loss="sigmoid_binary_cross_entropy", l2=0.1),
    "softmax_layer_mse": lambda: fnnet.Network((fnnet.Dense(4), fnnet.Tanh(), fnnet.Dense(3), fnnet.Softmax()),
                                               "mse", (5,)),
}


@pytest.mark.parametrize("name", list(SEED_NETS))
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("jit", [False, True])
def test_network_backward_against_all_oracles(name, dtype, jit):
    net = SEED_NETS[name]()
    params = fnnet.init(net, jax.random.key(1), dtype)
    x, y = data(net, 8, dtype)
    rtol = RTOL[np.dtype(dtype)]
    value, grads = maybe_jit(fnnet.value_and_grad, jit, static_argnums=0)(net, params, x, y)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(g.dtype == dtype for g in jax.tree.leaves(grads))
    assert_trees_close(value, fnnet.loss(net, params, x, y), rtol, "value")
    assert_trees_close(grads, jax.grad(lambda p: fnnet.loss(net, p, x, y))(params), rtol, "vs jax.grad")
    assert_trees_close(grads, ref_grads(net, params, x, y), rtol, "vs reference")
    layers, loss = to_reference(net, params)
    assert_trees_close(value, reference.loss(layers, loss, np.asarray(x, np.float64), np.asarray(y), net.l2),
                       rtol, "value vs reference")
    for err in fd_directional(net, params, x, y, grads):
        assert err <= max(rtol, FD_RTOL), f"directional FD relative error {err:.3g}"


ACTS = ["relu", "leaky_relu", "sigmoid", "tanh", "identity"]
LOSSES = ["mse", "half_sse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy"]


@functools.partial(jax.jit, static_argnums=0)
def _backward_and_autodiff(net, params, x, y):
    """(fnnet.backward, jax.grad of fnnet.loss): one program, so each new shape costs one compile."""
    return fnnet.backward(net, params, x, y), jax.grad(lambda p: fnnet.loss(net, p, x, y))(params)


@settings(max_examples=12, deadline=None)  # each new shape costs a compile; 12 x 5 axes of variation
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5), act=st.sampled_from(ACTS),
       loss=st.sampled_from(LOSSES), l2=st.sampled_from([0.0, 0.05]), batch=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_random_architectures(sizes, act, loss, l2, batch, seed):
    net = fnnet.mlp(sizes, activation=act, loss=loss, l2=l2)
    params = fnnet.init(net, jax.random.key(seed), jnp.float64)
    x, y = data(net, batch, jnp.float64, seed)
    grads, oracle = _backward_and_autodiff(net, params, x, y)
    assert_trees_close(grads, oracle, F64, "vs jax.grad")
    assert_trees_close(grads, ref_grads(net, params, x, y), F64, "vs reference")


def test_l2_covers_weights_not_biases():
    net = fnnet.mlp([3, 4, 2], activation="tanh", loss="mse", l2=0.5)
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = data(net, 4, jnp.float64)
    plain = dataclasses.replace(net, l2=0.0)
    g, g0 = fnnet.backward(net, params, x, y), fnnet.backward(plain, params, x, y)
    for i in (0, 2):
        np.testing.assert_allclose(g[i].w - g0[i].w, 0.5 * params[i].w, rtol=1e-12)
        np.testing.assert_array_equal(g[i].b, g0[i].b)
    w2 = sum(float((params[i].w ** 2).sum()) for i in (0, 2))
    np.testing.assert_allclose(fnnet.loss(net, params, x, y) - fnnet.loss(plain, params, x, y), 0.25 * w2, rtol=1e-12)


@dataclasses.dataclass(frozen=True)
class Square:
    """A user's own layer: y = x², dL/dx = 2x · dL/dy."""

    def init(self, key, in_shape):
        return (), tuple(in_shape)

    def forward(self, params, x):
        return x * x, x

    def backward(self, params, cache, dy):
        return (), 2 * cache * dy


def test_user_layer_in_a_network():
    net = fnnet.Network((fnnet.Dense(3), Square(), fnnet.Dense(2)), "mse", (4,))
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = data(net, 5, jnp.float64)
    grads = jax.jit(fnnet.backward, static_argnums=0)(net, params, x, y)
    assert_trees_close(grads, jax.grad(lambda p: fnnet.loss(net, p, x, y))(params), F64)


def test_nets_are_hashable_static_jit_arguments():
    a, b = SEED_NETS["seed001"](), SEED_NETS["seed001"]()
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert a != dataclasses.replace(a, l2=0.1)


def test_per_example_gradients_with_vmap():
    net = SEED_NETS["seed002"]()
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = data(net, 6, jnp.float64)
    per_ex = jax.vmap(lambda xi, yi: fnnet.backward(net, params, xi[None], yi[None]))(x, y)
    for i in range(6):
        one = fnnet.backward(net, params, x[i:i + 1], y[i:i + 1])
        assert_trees_close(jax.tree.map(lambda g: g[i], per_ex), one, F64)
    # without L2 the batch gradient is the mean of the per-example ones
    plain = dataclasses.replace(net, l2=0.0)
    per_ex = jax.vmap(lambda xi, yi: fnnet.backward(plain, params, xi[None], yi[None]))(x, y)
    assert_trees_close(jax.tree.map(lambda g: g.mean(0), per_ex), fnnet.backward(plain, params, x, y), F64)


def test_init_is_deterministic_and_typed():
    net = SEED_NETS["seed001"]()
    p1, p2 = fnnet.init(net, jax.random.key(3)), fnnet.init(net, jax.random.key(3))
    assert_trees_close(p1, p2, 0.0)
    assert all(l.dtype == jnp.float32 for l in jax.tree.leaves(p1))
    assert all(l.dtype == jnp.float64 for l in jax.tree.leaves(fnnet.init(net, jax.random.key(3), jnp.float64)))
    assert [type(p).__name__ for p in p1] == ["DenseParams", "tuple"] * 2 + ["DenseParams"]


def test_mlp_builds_the_seed_architectures():
    assert [str(l) for l in SEED_NETS["seed000"]().layers] == ["Dense(3)", "Relu()", "Dense(2)", "Sigmoid()"]
    assert [str(l) for l in SEED_NETS["seed003"]().layers] == ["Dense(3)", "Tanh()", "Dense(1)", "Tanh()"]
    assert fnnet.out_shape(SEED_NETS["seed001"]()) == (10,)
    with pytest.raises(ValueError, match="takes logits"):
        fnnet.mlp([2, 3], output="softmax", loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="sizes must be"):
        fnnet.mlp([2])
    with pytest.raises(ValueError, match="l2 must be"):
        fnnet.mlp([2, 2], l2=-1.0)


def bad_cases():
    net = SEED_NETS["seed001"]()
    p = fnnet.init(net, jax.random.key(0))
    x = jnp.ones((4, 64), jnp.float32)
    y = jnp.array([0, 1, 2, 3])
    return [
        (lambda: fnnet.forward(net, p, jnp.ones((4, 65), jnp.float32)), ValueError,
         r"layer 0 \(Dense\(128\)\): x must be \[batch, 64\], got \(4, 65\)"),
        (lambda: fnnet.loss(net, p, x, y[:3]), ValueError, r"labels must be \[4\], got \(3,\)"),
        (lambda: fnnet.backward(net, p, x, y.at[0].set(10)), ValueError, r"labels must be in \[0, 10\)"),
        (lambda: fnnet.forward(net, p, jnp.ones((4, 64), jnp.int32)), TypeError, "x must be a floating array"),
        (lambda: fnnet.forward(net, p, x.astype(jnp.float64)), TypeError, "dtype float64 but the params are float32"),
        (lambda: fnnet.forward(net, p[:-1], x), ValueError, "one entry per layer"),
        (lambda: fnnet.forward(net, (p[0]._replace(w=p[0].w.T),) + p[1:], x), ValueError,
         r"layer 0 \(Dense\(128\)\): params.w must have shape \(64, 128\), got \(128, 64\)"),
        (lambda: fnnet.forward(net, (p[0], p[0]) + p[2:], x), ValueError, r"layer 1 \(Sigmoid\(\)\): params tree"),
        (lambda: fnnet.forward(net, p, x.at[1, 2].set(jnp.inf)), ValueError, r"NaN/Inf value\(s\), first at index \(1, 2\)"),
        (lambda: jax.jit(fnnet.forward, static_argnums=0)(net, p, jnp.ones((4, 63), jnp.float32)), ValueError,
         r"x must be \[batch, 64\], got \(4, 63\)"),
        (lambda: fnnet.Network((fnnet.Dense(3), object()), "mse", (2,)), TypeError, "lacks method"),
        (lambda: fnnet.init(fnnet.Network((fnnet.Dense(3),), "mse", (2, 2)), jax.random.key(0)), ValueError,
         r"layer 0 \(Dense\(3\)\): cannot take input of shape \[batch, 2, 2\]"),
    ]


@pytest.mark.parametrize("case", range(len(bad_cases())))
def test_bad_input_is_caught_before_computing(case):
    fn, exc, message = bad_cases()[case]
    with pytest.raises(exc, match=message):
        fn()


# ------------------------------------------------ network-level contracts: shapes, L2, dtypes

@dataclasses.dataclass(frozen=True)
class _Scale:
    """A user's layer with a param and no l2_mask: y = s · x."""
    def init(self, key, in_shape):
        return jax.random.normal(key, (1,)), tuple(in_shape)

    def forward(self, params, x):
        return params[0] * x, x

    def backward(self, params, x, dy):
        return jnp.sum(x * dy, keepdims=True).reshape(1), params[0] * dy   # dL/ds = Σ x·dy; dL/dx = s·dy


def test_l2_with_an_unmasked_user_layer_is_an_error_not_a_silent_skip():
    net = fnnet.Network((fnnet.Dense(3), _Scale()), "mse", (2,), l2=10.0)
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = np.linspace(-1, 1, 8).reshape(4, 2), np.linspace(0, 1, 12).reshape(4, 3)
    for fn in (fnnet.loss, fnnet.value_and_grad):
        with pytest.raises(ValueError, match=r"layer 1 \(.*_Scale.*\) has params but no l2_mask"):
            fn(net, params, x, y)
    plain = fnnet.Network(net.layers, "mse", (2,), l2=0.0)     # l2 = 0: nothing to decide
    fnnet.loss(plain, params, x, y)


def test_nan_in_params_is_refused_eagerly_and_x64_off_float64_x_is_refused():
    net = fnnet.mlp([2, 3, 1])
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    bad = (params[0]._replace(w=params[0].w.at[1, 2].set(jnp.nan)),) + params[1:]
    with pytest.raises(ValueError, match=r"layer 0 \(Dense\(3\)\): params.w contains 1 NaN/Inf.*\(1, 2\)"):
        fnnet.forward(net, bad, np.ones((2, 2)))
    p32 = fnnet.init(net, jax.random.key(0))
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(TypeError, match=r"x is float64 but jax_enable_x64 is off"):
            fnnet.forward(net, p32, np.ones((2, 2)))                   # numpy float64
        fnnet.forward(net, p32, np.ones((2, 2), np.float32))
    finally:
        jax.config.update("jax_enable_x64", True)


def test_x64_off_float64_params_are_refused_like_float64_x():
    net = fnnet.mlp([2, 3, 1])
    p64 = jax.tree.map(np.asarray, fnnet.init(net, jax.random.key(0), jnp.float64))  # NumPy float64
    x, y = np.ones((2, 2), np.float32), np.ones((2, 1), np.float32)
    jax.config.update("jax_enable_x64", False)
    try:
        for call in (lambda: fnnet.forward(net, p64, x),
                     lambda: fnnet.fit(net, p64, x, y, optimizer=optax.sgd(0.1), epochs=1)):
            with pytest.raises(TypeError, match=r"layer 0 \(Dense\(3\)\): params.w is float64 but "
                                                r"jax_enable_x64 is off.*astype\(np.float32\)"):
                call()
        p32 = jax.tree.map(lambda a: a.astype(np.float32), p64)
        fnnet.fit(net, p32, x, y, optimizer=optax.sgd(0.1), epochs=1)     # the fix it names works
    finally:
        jax.config.update("jax_enable_x64", True)


@dataclasses.dataclass(frozen=True)
class _LiesAboutShape:
    """init declares (5,), forward returns [batch, 4]."""
    def init(self, key, in_shape):
        return (), (5,)

    def forward(self, params, x):
        return x[:, :4], None

    def backward(self, params, cache, dy):
        return (), dy


def test_messages_name_what_is_wrong():
    net = fnnet.mlp([4, 3, 2])
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    with pytest.raises(ValueError, match=r"x is empty: shape \(0, 4\)"):
        fnnet.forward(net, params, np.ones((0, 4)))
    with pytest.raises(TypeError, match=r"init: key must be one PRNG key such as jax.random.key\(0\), got 0"):
        fnnet.init(net, 0)
    liar = fnnet.Network((fnnet.Dense(6), _LiesAboutShape(), fnnet.Dense(2)), "mse", (4,))
    lp = fnnet.init(liar, jax.random.key(0), jnp.float64)
    with pytest.raises(ValueError, match=r"layer 1 \(.*_LiesAboutShape.*\): forward returned shape \(3, 4\), "
                                         r"but its init declared out shape \[batch, 5\]"):
        fnnet.forward(liar, lp, np.ones((3, 4)))
    ce = fnnet.mlp([4, 3], loss="softmax_cross_entropy")
    cp = fnnet.init(ce, jax.random.key(0), jnp.float64)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*first out of range: y\[2\] = 7"):
        fnnet.loss(ce, cp, np.ones((4, 4)), np.array([0, 1, 7, 2]))


@dataclasses.dataclass(frozen=True)
class _PReLU:
    """A user's parametric ReLU y = x if x > 0 else a·x, a [features], with one planted bug."""
    bug: str = ""

    def init(self, key, in_shape):
        return jnp.full(in_shape, 0.25), tuple(in_shape)

    def forward(self, a, x):
        y = jnp.where(x > 0, x, a[None] * x)             # y = x or a·x
        return {"no pair": y, "y shape": (y[:, :2], x)}.get(self.bug, (y, x))

    def backward(self, a, x, dy):
        dx = jnp.where(x > 0, dy, a[None] * dy)          # dL/dx = dy or a·dy
        da = jnp.where(x > 0, 0, x * dy)                 # dL/da per example: x·dy where x <= 0
        return {"unsummed": (da, dx), "no pair": dx, "triple": (da.sum(0), dx, None),
                "tree": ((da.sum(0),), dx), "dtype": (da.sum(0).astype(jnp.float16), dx),
                "dx shape": (da.sum(0), dx[:, :2]), "dx none": (da.sum(0), None),
                }.get(self.bug, (da.sum(0), dx))


_CONTRACT = {   # bug -> what the error says (layer, method, expected vs received, hint)
    "unsummed": r"layer 0 \(_PReLU\(bug='unsummed'\)\): backward returned dparams \(5, 3\), params "
                r"are \(3,\): not summed over the batch\?",
    "no pair": r"layer 0 \(.*\): forward must return \(y, cache\), got float32\[5, 3\]",
    "triple": r"layer 0 \(.*\): backward must return a pair \(dparams, dx\), got tuple of 3",
    "tree": r"layer 0 \(.*\): backward returned dparams with tree PyTreeDef\(\(\*,\)\), params have "
            r"tree PyTreeDef\(\*\)",
    "dtype": r"layer 0 \(.*\): backward returned dparams of dtype float16, params are float32",
    "dx shape": r"layer 0 \(.*\): backward returned dx \(5, 2\), its input x is \(5, 3\)",
    "dx none": r"layer 0 \(.*\): backward returned dx NoneType, must be an array shaped like",
    "y shape": r"layer 0 \(.*\): forward returned shape \(5, 2\), but its init declared out shape \[batch, 3\]",
}


@pytest.mark.parametrize("bug", sorted(_CONTRACT))
def test_a_layer_breaking_the_contract_is_named_eagerly_under_jit_and_in_fit(bug):
    net = fnnet.Network((_PReLU(bug), fnnet.Dense(2)), "mse", (3,))
    params = fnnet.init(net, jax.random.key(0))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    calls = (lambda: fnnet.backward(net, params, x, y),
             lambda: jax.jit(fnnet.backward, static_argnums=0)(net, params, x, y),
             lambda: fnnet.fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=2, batch_size=5))
    kind = TypeError if bug == "dtype" else ValueError
    for call in calls:
        with pytest.raises(kind, match=_CONTRACT[bug]):
            call()


def test_the_contract_is_checked_once_at_trace_time_and_a_correct_layer_passes():
    net = fnnet.Network((fnnet.Dense(3), _PReLU(), fnnet.Dense(2)), "mse", (4,))
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = data(net, 5, jnp.float64)
    step = jax.jit(fnnet.backward, static_argnums=0)
    assert_trees_close(step(net, params, x, y), jax.grad(lambda p: fnnet.loss(net, p, x, y))(params), F64)
    text = str(jax.make_jaxpr(lambda p: fnnet.backward(net, p, x, y))(params))
    assert "callback" not in text and "cond" not in text       # nothing added to the computation
