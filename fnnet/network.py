"""Networks: an immutable description plus pure forward / loss / backward functions.

    net    = mlp([64, 128, 128, 10], activation="sigmoid", loss="softmax_cross_entropy")
    params = init(net, jax.random.key(0))         # tuple, one entry per layer
    out    = forward(net, params, x)              # x [batch, 64] -> [batch, 10]
    grads  = backward(net, params, x, y)          # hand-written; same tree as params

`backward` runs every layer's forward keeping its cache, takes the loss's
hand-written `grad`, then walks the layers in reverse calling each `backward`.
No autodiff anywhere: jax.grad is only ever an oracle (see fnnet.check).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from fnnet.layers import activations as _activations
from fnnet import losses as _losses
from fnnet.layers.dense import Dense
from fnnet import state as _state
# The call checks live in fnnet/contracts.py; the underscore names stay importable from here
# (fnnet.train, fnnet.check, checkpoints and the models use them).
from fnnet.contracts import (check_backward as _check_backward, check_forward as _check_forward,  # noqa: F401
                             check_params as _check_params, check_run as _check_run,
                             check_x as _check_x, check_y as _check_y, layout as _layout, out_shape,
                             state_layout as _state_layout)


@dataclasses.dataclass(frozen=True)
class Network:
    """layers: tuple of layer objects (init/forward/backward); loss: a loss object;
    in_shape: feature shape of one example, e.g. (64,); l2: strength λ of ½λΣw².

    Hashable, so it can be a static argument of jax.jit.
    """
    layers: tuple
    loss: object
    in_shape: tuple
    l2: float = 0.0

    def __post_init__(self):
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            missing = [m for m in ("init", "forward", "backward") if not callable(getattr(layer, m, None))]
            if missing:
                raise TypeError(f"Network: layer {i} ({layer!r}) lacks method(s) {missing}")
            try:
                hash(layer)
            except TypeError:
                raise TypeError(f"Network: layer {i} ({layer!r}) must be hashable (e.g. a frozen "
                                f"dataclass) so that nets can be static jit arguments") from None
        loss = _losses.get(self.loss)
        for m in ("value", "grad"):
            if not callable(getattr(loss, m, None)):
                raise TypeError(f"Network: loss {loss!r} lacks method {m}")
        in_shape = (self.in_shape,) if isinstance(self.in_shape, int) else tuple(self.in_shape)
        if not in_shape or not all(isinstance(d, int) and d >= 1 for d in in_shape):
            raise ValueError(f"Network: in_shape must be positive ints, got {self.in_shape!r}")
        l2 = float(self.l2)
        if not (math.isfinite(l2) and l2 >= 0):
            raise ValueError(f"Network: l2 must be a finite number >= 0, got {self.l2!r}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "in_shape", in_shape)
        object.__setattr__(self, "l2", l2)

    def __str__(self):
        body = " -> ".join(str(layer) for layer in self.layers)
        return f"Network({list(self.in_shape)} -> {body} | loss={self.loss}, l2={self.l2})"


def mlp(sizes, activation="relu", output="identity", loss="mse", l2=0.0, w_init=None, b_init="zeros"):
    """Multilayer perceptron: sizes [d_in, h_1, ..., d_out].

    Dense layers with `activation` between them and `output` after the last one.
    With a fused loss ("softmax_cross_entropy", "sigmoid_binary_cross_entropy") the
    network emits logits, so `output` must stay "identity".
    w_init defaults to he_normal for relu-like activations, glorot_uniform otherwise.
    """
    sizes = list(sizes)
    if len(sizes) < 2 or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ValueError(f"mlp: sizes must be >= 2 positive ints [d_in, ..., d_out], got {sizes!r}")
    loss = _losses.get(loss)
    act, out_act = _activations.get(activation), _activations.get(output)
    if getattr(loss, "fused", False) and not isinstance(out_act, _activations.Identity):
        raise ValueError(f"mlp: loss {loss} takes logits and applies its own output nonlinearity; "
                         f"got output={output!r}, use output='identity'")
    if w_init is None:
        w_init = "he_normal" if isinstance(act, (_activations.Relu, _activations.LeakyRelu)) else "glorot_uniform"
    layers = []
    for i, width in enumerate(sizes[1:]):
        layers.append(Dense(width, w_init=w_init, b_init=b_init))
        last = i == len(sizes) - 2
        if not (last and isinstance(out_act, _activations.Identity)):
            layers.append(out_act if last else act)
    return Network(tuple(layers), loss, (sizes[0],), l2)


def _forward(net, params, x, state=None, key=None, train=False, inputs=None):
    """-> (out, caches, new_state); new_state is None when state is None (fnnet/state.py
    threads the keys and state: layer i draws from fold_in(key, i)). inputs: a list that
    receives each layer's input x (for the backward's contract check)."""
    caches, new_state = [], []
    for i, (layer, p) in enumerate(zip(net.layers, params)):
        if inputs is not None:
            inputs.append(x)
        x, cache, s = _layer_forward(net, i, layer, p, x, None if state is None else state[i], key, train)
        caches.append(cache)
        new_state.append(s)
    return x, caches, (None if state is None else tuple(new_state))


def init_state(net: Network, dtype=jnp.float32):
    """Fresh layer state: a tuple with one entry per layer (`()` for a layer without state),
    e.g. BatchNorm's running mean [C] and variance [C]. Not a parameter: the optimizer never
    sees it and no backward differentiates it; pass it as `state=` and keep what comes back.
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"init_state: dtype must be floating, got {dtype}")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise TypeError(f"init_state: dtype {dtype} needs jax.config.update('jax_enable_x64', True)")
    in_shapes = [s[0] for s in _layout(net)]
    return _state.init_states(net.layers, in_shapes, dtype)


def _layer_forward(net, i, layer, p, x, s=(), key=None, train=False):
    """layer.forward (with its key/state/train when it declares them, fnnet/state.py) ->
    (y, cache, new_s); errors name the layer's index and its output is checked against
    the out shape its init declared (else the next layer would take the blame).
    The layer contract (forward returns (y, cache), backward (dparams, dx) shaped like
    params and x) is checked on shapes only: under jit once, at trace time."""
    try:
        y, cache, s = _state.call_layer(layer, i, p, x, s, key, train)
    except (ValueError, TypeError) as e:
        if type(e) not in (ValueError, TypeError) or str(e).startswith("layer "):
            raise
        raise type(e)(f"layer {i} ({layer}): {e}") from e
    _check_forward(i, layer, x, y, _layout(net)[i][2])
    return y, cache, s


def l2_masks(net, params):
    """Per layer, which params leaves ½λΣw² covers: the layer's l2_mask(params), or none for a
    parameter-free layer. With l2 > 0, a layer with params but no l2_mask is an error: fnnet
    will not guess which of its params are weights (nor skip them silently)."""
    masks = []
    for i, (layer, p) in enumerate(zip(net.layers, params)):
        if hasattr(layer, "l2_mask"):
            masks.append(layer.l2_mask(p))
        elif net.l2 and jax.tree.leaves(p):
            raise ValueError(f"layer {i} ({layer}) has params but no l2_mask(params) method, so "
                             f"l2={net.l2:g} cannot know which of them to penalize; give it one "
                             f"(a tree of bools like params: Dense's is DenseParams(w=True, b=False)) "
                             f"or use l2=0")
        else:
            masks.append(jax.tree.map(lambda _: False, p))
    return masks


def l2_value(net, params):
    total = 0.0
    if net.l2:
        for p, mask in zip(params, l2_masks(net, params)):
            for leaf, m in zip(jax.tree.leaves(p), jax.tree.leaves(mask)):
                if m:
                    total = total + 0.5 * net.l2 * jnp.sum(leaf * leaf)   # ½λΣw²
    return total


_MODES = """
    Keyword-only: state (fnnet.init_state(net), needed when a layer has state: the result then
    gains the updated state as its last element), key (a PRNG key, needed in train mode by
    stochastic layers: layer i draws from fold_in(key, i)), train (train mode: dropout on,
    batch statistics; eval mode: dropout off, running statistics as constants)."""


def forward(net: Network, params, x, *, state=None, key=None, train=False):
    """x [batch, *in_shape] -> network output [batch, *out_shape] (logits for fused losses);
    with state=: (out, new_state).
    """
    x = _check_x(net, params, x)
    state, key = _check_run(net, params, x, state, key, train, "forward")
    out, _, new_state = _forward(net, params, x, state, key, train)
    return _state.with_state(out, new_state, state)


def loss(net: Network, params, x, y, *, state=None, key=None, train=True):
    """Scalar: the loss of forward(net, params, x) against y, plus ½λΣw² over weights;
    with state=: (loss, new_state).
    """
    x = _check_x(net, params, x)
    _check_y(net, x, y)
    state, key = _check_run(net, params, x, state, key, train, "loss")
    out, _, new_state = _forward(net, params, x, state, key, train)
    return _state.with_state(net.loss.value(out, y) + l2_value(net, params), new_state, state)


def backprop(net: Network, params, x, y, *, state=None, key=None, train=True):
    """(loss, grads, dL/dx): one forward pass keeping caches, then the reverse walk;
    with state=: (loss, grads, dL/dx, new_state).

    x [batch, *in_shape]; grads has params' tree; dL/dx has x's shape.
    """
    x = _check_x(net, params, x)
    _check_y(net, x, y)
    state, key = _check_run(net, params, x, state, key, train, "backprop")
    inputs = []
    out, caches, new_state = _forward(net, params, x, state, key, train, inputs)
    value = net.loss.value(out, y) + l2_value(net, params)
    d = net.loss.grad(out, y)                                  # dL/dout
    grads = [None] * len(net.layers)
    for i in reversed(range(len(net.layers))):
        grads[i], d = _check_backward(i, net.layers[i], params[i], inputs[i],   # dL/dparams_i, dL/dx_i
                                      net.layers[i].backward(params[i], caches[i], d))
    if net.l2:
        for i, mask in enumerate(l2_masks(net, params)):
            grads[i] = jax.tree.map(lambda g, w, m: g + net.l2 * w if m else g,   # + λw
                                    grads[i], params[i], mask)
    return _state.with_state((value, tuple(grads), d), new_state, state)


def value_and_grad(net: Network, params, x, y, *, state=None, key=None, train=True):
    """(loss, grads) from one forward pass and the hand-written backward pass;
    with state=: (loss, grads, new_state).

    Under jit the unused dL/dx of the first layer is dead code and is not computed.
    """
    value, grads, _, *new_state = backprop(net, params, x, y, state=state, key=key, train=train)
    return (value, grads, *new_state)


def backward(net: Network, params, x, y, *, state=None, key=None, train=True):
    """Hand-written gradient of `loss` w.r.t. params; the same tree as params;
    with state=: (grads, new_state).
    """
    _, grads, *new_state = value_and_grad(net, params, x, y, state=state, key=key, train=train)
    return (grads, *new_state) if state is not None else grads


for _f in (forward, loss, backprop, value_and_grad, backward):
    _f.__doc__ += _MODES


def init(net: Network, key, dtype=jnp.float32):
    """Fresh params: a tuple with one entry per layer, leaves of `dtype`.

    float64 needs jax_enable_x64; asking for it without raises instead of silently
    returning float32.
    """
    _state.check_key("init", key)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"init: dtype must be floating, got {dtype}")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise TypeError(f"init: dtype {dtype} needs jax.config.update('jax_enable_x64', True)")
    _layout(net)  # fail on impossible shapes before drawing numbers
    params, in_shape = [], net.in_shape
    for layer, k in zip(net.layers, jax.random.split(key, max(len(net.layers), 1))):
        p, in_shape = layer.init(k, in_shape)
        params.append(jax.tree.map(lambda a: jnp.asarray(a, dtype), p))
    return tuple(params)


def predict(net: Network, params, x, *, state=None, key=None, train=False):
    """Predictions: class probabilities for the fused classification losses, else the output;
    with state=: (predictions, new_state).
    """
    link = getattr(net.loss, "link", lambda o: o)
    out = forward(net, params, x, state=state, key=key, train=train)
    if state is None:
        return link(out)
    return link(out[0]), out[1]


predict.__doc__ += _MODES
