"""Validation of a call on a network, before any number is computed.

Everything here reads only static facts (the layers' declared shapes via jax.eval_shape,
dtypes, tree structures) or concrete values when they are concrete (NaN/Inf), so the
errors name the layer and expected vs received before anything runs; under jit the
value checks are no-ops. fnnet.network imports these under their underscore names.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from fnnet._validate import check_finite, check_floating, check_same_dtype, check_shape
from fnnet import state as _state

if TYPE_CHECKING:
    from fnnet.network import Network


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
