"""Validation of a call on a network, before any number is computed.

Everything here reads only static facts (the layers' declared shapes via jax.eval_shape,
dtypes, tree structures) or concrete values when they are concrete (NaN/Inf), so the
errors name the layer and expected vs received before anything runs; under jit the
value checks are no-ops. fnnet.network and fnnet.train call them by these names.
check_forward / check_backward hold each layer to its contract (what forward and backward
return) as the network calls it: shapes, dtypes and trees only, so under jit they run once,
at trace time, and a user's layer fails with its name rather than as a JAX error inside fit.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.validate import check_finite, check_floating, check_same_dtype, check_shape, fmt_shape
from fnnet import state as _state



@functools.lru_cache(maxsize=256)
def layout(net: Network):
    """Per layer: (in_shape, expected params ShapeDtypeStruct tree, out_shape)."""
    shapes, in_shape = [], net.in_shape
    for i, layer in enumerate(net.layers):
        box = []  # the out shape is static Python data: smuggle it out of the trace

        def shapes_only(k, s=in_shape, l=layer):
            p, o = l.init(k, s)
            box.append(tuple(int(d) for d in o))
            return p
        try:
            p = jax.eval_shape(shapes_only, jax.random.key(0))
        except (ValueError, TypeError) as e:
            raise ValueError(f"layer {i} ({layer}): cannot take input of shape [batch, "
                             f"{', '.join(map(str, in_shape))}]: {e}") from e
        out_shape = box[0]
        shapes.append((in_shape, p, out_shape))
        in_shape = out_shape
    return tuple(shapes)


def out_shape(net: Network):
    """Feature shape of the network output, e.g. (10,)."""
    return layout(net)[-1][2] if net.layers else net.in_shape


def check_params(net: Network, params, values=True):
    """Tree structure and every leaf shape must match what init would build, float64 only with
    jax_enable_x64 on (else JAX would quietly compute in float32); values=True also refuses
    NaN/Inf in concrete leaves."""
    if not isinstance(params, (tuple, list)) or len(params) != len(net.layers):
        raise ValueError(f"params must be a tuple with one entry per layer ({len(net.layers)}), "
                         f"got {type(params).__name__} of length {len(params) if hasattr(params, '__len__') else '?'}")
    dtype = None
    for i, (layer, p, (_, expected, _)) in enumerate(zip(net.layers, params, layout(net))):
        where = f"layer {i} ({layer})"
        if jax.tree.structure(p) != jax.tree.structure(expected):
            raise ValueError(f"{where}: params tree must be {jax.tree.structure(expected)}, "
                             f"got {jax.tree.structure(p)}")
        for (path, leaf), want in zip(jax.tree_util.tree_leaves_with_path(p), jax.tree.leaves(expected)):
            name = "params" + jax.tree_util.keystr(path)
            check_floating(where, name, leaf)
            if leaf.dtype == np.float64 and not jax.config.jax_enable_x64:
                raise TypeError(f"{where}: {name} is float64 but jax_enable_x64 is off, so JAX would "
                                f"silently run it in float32; cast the params with jax.tree.map(lambda "
                                f"a: a.astype(np.float32), params), or turn on "
                                f"jax.config.update('jax_enable_x64', True) for float64")
            if tuple(leaf.shape) != tuple(want.shape):
                raise ValueError(f"{where}: {name} must have shape {tuple(want.shape)}, got {tuple(leaf.shape)}")
            dtype = dtype or leaf.dtype
            if leaf.dtype != dtype:
                raise TypeError(f"{where}: {name} has dtype {leaf.dtype}, other params are {dtype}")
            if values:
                check_finite(where, name, leaf)    # concrete params only: a no-op under jit
    return dtype


def check_x(net: Network, params, x):
    first = f"layer 0 ({net.layers[0]})" if net.layers else "network"
    if net.layers and getattr(net.layers[0], "input_kind", None) == "ids":   # token ids (Embedding, GPT)
        check_params(net, params)
        check_shape(first, "x", x, (None, *net.in_shape))
        try:
            net.layers[0].check_input(x)  # integer dtype; value range when concrete
        except (ValueError, TypeError) as e:
            raise type(e)(f"{first}: {e}") from None
        return x
    if getattr(x, "dtype", None) == np.float64 and not jax.config.jax_enable_x64:
        raise TypeError(f"{first}: x is float64 but jax_enable_x64 is off, so JAX would silently run "
                        f"it in float32; pass x.astype(np.float32), or turn on "
                        f"jax.config.update('jax_enable_x64', True) for float64")
    x = jnp.asarray(x)
    check_floating(first, "x", x)
    check_shape(first, "x", x, (None, *net.in_shape))
    dtype = check_params(net, params)
    if dtype is not None:
        check_same_dtype(first, "x", x, dtype)
    check_finite(first, "x", x)
    return x


def check_y(net, x, y):
    """Validate targets against the (static) output shape before computing anything."""
    check = getattr(net.loss, "check", None)
    if check is not None:
        check(jax.ShapeDtypeStruct((x.shape[0], *out_shape(net)), x.dtype), y)


@functools.lru_cache(maxsize=256)
def state_layout(net: Network, dtype):
    """ShapeDtypeStruct tree of init_state(net, dtype)."""
    in_shapes = [s[0] for s in layout(net)]
    return jax.eval_shape(lambda: _state.init_states(net.layers, in_shapes, dtype))


def check_run(net: Network, params, x, state, key, train, where, **fixes):
    """Validate train/key/state before any number is computed -> (state or None, key)."""
    _state.check_train(where, train)
    if key is not None:
        key = _state.check_key(where, key)
    _state.check_request(net.layers, state, key, train, **fixes)
    if state is None:
        return None, key
    return _state.check_state(where, net.layers, state, state_layout(net, jnp.dtype(x.dtype))), key


def _describe(v) -> str:
    """A short name of what a layer returned: 'float32[4, 3]', 'tuple of 3', 'None'."""
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        return f"{v.dtype}{list(v.shape)}"
    if isinstance(v, (tuple, list)):
        return f"{type(v).__name__} of {len(v)}"
    return type(v).__name__


def _no_params(params) -> bool:
    return isinstance(params, tuple) and len(params) == 0


def check_backward(i, layer, params, x, result):
    """Layer i's backward(params, cache, dy) -> (dparams, dx), checked against the contract:
    dparams has params' tree, leaf shapes and dtypes (summed over the batch); dx has the
    shape and dtype of the layer's input x (None when x holds integer ids, which have no
    gradient). Shapes and trees only: under jit it runs once, at trace time.

    params: the layer's params; x: the input its forward took, [batch, *in_shape].
    """
    where = f"layer {i} ({layer}): backward"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        hint = ("; a layer without params returns ((), dx)"
                if _no_params(params) and hasattr(result, "shape") else "")
        raise ValueError(f"{where} must return a pair (dparams, dx), got {_describe(result)}{hint}")
    dparams, dx = result
    want, got = jax.tree.structure(params), jax.tree.structure(dparams)
    if got != want:
        hint = "; a layer without params returns () as dparams" if _no_params(params) else ""
        raise ValueError(f"{where} returned dparams with tree {got}, params have tree {want}: "
                         f"dparams must be built like params{hint}")
    batch = x.shape[0]
    for (path, g), p in zip(jax.tree_util.tree_leaves_with_path(dparams), jax.tree.leaves(params)):
        name = "dparams" + jax.tree_util.keystr(path)
        shape, want_shape = tuple(np.shape(g)), tuple(np.shape(p))
        if shape != want_shape:
            hint = (": not summed over the batch?" if shape == (batch, *want_shape) else
                    ": transposed?" if shape == want_shape[::-1] else "")
            raise ValueError(f"{where} returned {name} {shape}, params are {want_shape}{hint}")
        if jnp.result_type(g) != jnp.result_type(p):
            raise TypeError(f"{where} returned {name} of dtype {jnp.result_type(g)}, params are "
                            f"{jnp.result_type(p)}: a gradient has its parameter's dtype")
    if not jnp.issubdtype(x.dtype, jnp.floating):            # integer ids (an embedding's input)
        if dx is not None:
            raise ValueError(f"{where} returned dx {_describe(dx)} for integer input {_describe(x)}: "
                             f"ids have no gradient, return None as dx")
        return dparams, dx
    if not (hasattr(dx, "shape") and hasattr(dx, "dtype")):
        raise ValueError(f"{where} returned dx {_describe(dx)}, must be an array shaped like its "
                         f"input x {_describe(x)}")
    if tuple(dx.shape) != tuple(x.shape):
        raise ValueError(f"{where} returned dx {tuple(dx.shape)}, its input x is {tuple(x.shape)}: "
                         f"dL/dx must have x's shape")
    if dx.dtype != x.dtype:
        raise TypeError(f"{where} returned dx of dtype {dx.dtype}, its input x is {x.dtype}")
    return dparams, dx


def check_forward(i, layer, x, y, declared):
    """Layer i's forward output y: an array [batch, *declared] (the out shape its init
    declared), else the next layer would take the blame."""
    if not (hasattr(y, "shape") and hasattr(y, "dtype")):
        raise ValueError(f"layer {i} ({layer}): forward returned y {_describe(y)}, must be an array "
                         f"{fmt_shape((None, *declared))} as its init declared")
    if tuple(y.shape[1:]) != declared or y.shape[:1] != x.shape[:1]:
        raise ValueError(f"layer {i} ({layer}): forward returned shape {tuple(y.shape)}, but its init "
                         f"declared out shape {fmt_shape((None, *declared))} for x {tuple(x.shape)}")
