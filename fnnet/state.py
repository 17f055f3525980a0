"""The key/state protocol: how layers with randomness (Dropout) and state (BatchNorm
running statistics) plug into a network, and how the network threads both.

A plain layer has three methods and is called `forward(params, x) -> (y, cache)`.
A layer opts in to either capability by declaring it:

- randomness: a class attribute `stochastic = True`. Its forward takes keywords
      forward(params, x, *, key, train) -> (y, cache)
  `key` is a PRNG key in train mode and None in eval mode, where the layer must be
  deterministic (Dropout is then the identity).
- state: a method `init_state(in_shape, dtype) -> state` (a pytree of arrays, e.g. a
  NamedTuple of running mean/var). Its forward takes keywords
      forward(params, x, *, state, train[, key]) -> (y, cache, new_state)
  In train mode it returns the updated state; in eval mode it reads `state` as
  constants and returns it unchanged.

`backward(params, cache, dy) -> (dparams, dx)` is the same for every layer: the cache
records what the mode needs. State is never differentiated and never seen by the
optimizer: it is a tuple beside params with one entry per layer, `()` for a layer
without state. The network gives layer i the key `jax.random.fold_in(key, i)`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def is_stochastic(layer) -> bool:
    """True when the layer declares `stochastic = True` (its forward takes key/train)."""
    return bool(getattr(layer, "stochastic", False))


def is_stateful(layer) -> bool:
    """True when the layer has `init_state(in_shape, dtype)` (its forward takes state/train)."""
    return callable(getattr(layer, "init_state", None))


def has_protocol(layers) -> bool:
    """True when any layer is stochastic or stateful."""
    return any(is_stochastic(l) or is_stateful(l) for l in layers)


def check_train(where: str, train) -> bool:
    """train must be a Python bool (static under jit: it selects code, not values)."""
    if not isinstance(train, bool):
        raise TypeError(f"{where}: train must be True or False (a Python bool, static under jit), "
                        f"got {train!r}")
    return train


def check_key(where: str, key):
    """A typed key (jax.random.key) or a raw uint32 [2] key (jax.random.PRNGKey)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if dtype == jnp.uint32 and tuple(key.shape) == (2,):
        return key
    got = (f"{key!r}" if dtype is None else
           f"{type(key).__name__} with dtype {dtype} and shape {tuple(getattr(key, 'shape', ()))}")
    raise TypeError(f"{where}: key must be one PRNG key such as jax.random.key(0), got {got}")


def init_states(layers, in_shapes, dtype):
    """One entry per layer: layer.init_state(in_shape, dtype), or () for a layer without state."""
    return tuple(l.init_state(tuple(s), dtype) if is_stateful(l) else () for l, s in zip(layers, in_shapes))


def check_request(layers, state, key, train, fix="pass state=fnnet.init_state(net)",
                  key_fix="key=jax.random.key(...) (a fresh one per step), or train=False to evaluate"):
    """Before any number is computed: every stateful layer has state, and every
    stochastic layer in train mode has a key. Errors name the layer and the fix."""
    for i, layer in enumerate(layers):
        if state is None and is_stateful(layer):
            raise ValueError(f"layer {i} ({layer}) has state (e.g. running statistics) that the call "
                             f"must carry: {fix} and use the updated state it returns")
        if key is None and train and is_stochastic(layer):
            raise ValueError(f"layer {i} ({layer}) is stochastic in train mode and needs a key: pass {key_fix}")


def check_state(where, layers, state, expected):
    """state: one entry per layer with init_state's tree, shapes and dtype (`expected`, a
    ShapeDtypeStruct tree), all finite when concrete -> the state as a tuple."""
    from fnnet.validate import check_finite
    if not isinstance(state, (tuple, list)) or len(state) != len(layers):
        raise ValueError(f"{where}: state must be a tuple with one entry per layer ({len(layers)}), "
                         f"as fnnet.init_state(net) makes it; got {type(state).__name__} of length "
                         f"{len(state) if hasattr(state, '__len__') else '?'}")
    for i, (layer, s, want) in enumerate(zip(layers, state, expected)):
        name = f"layer {i} ({layer})"
        if jax.tree.structure(s) != jax.tree.structure(want):
            raise ValueError(f"{name}: state tree must be {jax.tree.structure(want)} (fnnet.init_state(net)), "
                             f"got {jax.tree.structure(s)}")
        for (path, leaf), w in zip(jax.tree_util.tree_leaves_with_path(s), jax.tree.leaves(want)):
            what = "state" + jax.tree_util.keystr(path)
            if tuple(jnp.shape(leaf)) != tuple(w.shape):
                raise ValueError(f"{name}: {what} must have shape {tuple(w.shape)}, got {tuple(jnp.shape(leaf))}")
            if jnp.result_type(leaf) != w.dtype:
                raise TypeError(f"{name}: {what} has dtype {jnp.result_type(leaf)} but x and the params are "
                                f"{w.dtype}; make it with fnnet.init_state(net, dtype={w.dtype})")
            check_finite(name, what, leaf)
    return tuple(state)


def call_layer(layer, i, params, x, state_i, key, train):
    """Layer i's forward with what it declares -> (y, cache, new_state_i).

    state_i: its entry of the state tuple (`()` for a layer without state, passed through);
    key: the network's key (or None): a stochastic layer in train mode gets fold_in(key, i).
    """
    kwargs = {}
    if is_stochastic(layer):
        kwargs["key"] = jax.random.fold_in(key, i) if (train and key is not None) else None
    if is_stateful(layer):
        out = layer.forward(params, x, state=state_i, train=train, **kwargs)
        return _returned(layer, i, out, "(y, cache, new_state)")
    out = layer.forward(params, x, train=train, **kwargs) if kwargs else layer.forward(params, x)
    return (*_returned(layer, i, out, "(y, cache)"), state_i)


def _returned(layer, i, out, form):
    """forward's result as a tuple, refused unless it has the protocol's length (`form`
    names it), e.g. a bare y where (y, cache) is due."""
    n = form.count(",") + 1
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = (f"{type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else
               f"{out.dtype}{list(out.shape)}" if hasattr(out, "shape") else type(out).__name__)
        raise ValueError(f"layer {i} ({layer}): forward must return {form}, got {got}")
    return tuple(out)


def with_state(result, new_state, given):
    """Append the updated state to the result when the caller passed state (not None)."""
    if given is None:
        return result
    return (*result, new_state) if isinstance(result, tuple) else (result, new_state)
