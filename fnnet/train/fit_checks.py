"""fit's input checks, run before anything is compiled: counts, params, data, key and the
optimizer state (each error names fit and the argument)."""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from fnnet import contracts
from fnnet.validate import check_finite, int_at_least


def check_int(name, value, lo, hi=None):
    """fit's integer options: an int in [lo, hi] (hi None: no upper bound)."""
    return int_at_least("fit", name, value, lo, hi)


def check_fit_params(net, params):
    try:
        contracts.check_params(net, params, values=False)   # fit names the leaf below
    except (ValueError, TypeError) as e:
        raise type(e)(f"fit: {e}") from e
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        check_finite("fit", "params" + jax.tree_util.keystr(path), leaf)
    return jax.tree.map(jnp.asarray, params)


def check_data(net, params, x, y, what):
    """Shapes, dtypes, NaN/Inf and label ranges, before anything is compiled."""
    try:
        if np.ndim(x) == 0 or np.shape(x)[0] == 0:
            raise ValueError(f"x is empty (shape {np.shape(x)}); need at least one example")
        x = contracts.check_x(net, params, x)
        y = jnp.asarray(y)
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} examples but y has shape {tuple(y.shape)}")
        contracts.check_y(net, x, y)       # the loss's own `prepare`: shape, range, NaN/Inf
    except (ValueError, TypeError) as e:
        raise type(e)(f"fit: {what}: {e}") from e
    return x, y


def check_key(key):
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if (typed and key.shape == ()) or (not typed and dtype == np.uint32 and key.ndim == 1):
        return key
    raise TypeError(f"fit: key must be a jax PRNG key such as jax.random.key(0), got {key!r}")


def check_opt_state(optimizer, params, opt_state):
    """opt_state must have the tree, shapes and dtypes optimizer.init(params) builds."""
    want = jax.eval_shape(optimizer.init, params)
    got_def, want_def = jax.tree.structure(opt_state), jax.tree.structure(want)
    if got_def != want_def:
        raise ValueError(f"fit: opt_state does not fit this optimizer and params: its tree is "
                         f"{got_def}, optimizer.init(params) builds {want_def}")
    for (path, leaf), w in zip(jax.tree_util.tree_leaves_with_path(opt_state), jax.tree.leaves(want)):
        name = "opt_state" + jax.tree_util.keystr(path)
        if tuple(np.shape(leaf)) != tuple(w.shape) or np.dtype(getattr(leaf, "dtype", None)) != w.dtype:
            raise ValueError(f"fit: {name} must be {w.dtype}{list(w.shape)}, got "
                             f"{getattr(leaf, 'dtype', type(leaf).__name__)}{list(np.shape(leaf))}")
    return jax.tree.map(jnp.asarray, opt_state)
