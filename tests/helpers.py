"""Test helpers: leaf-by-leaf tree comparison and the jit / no-jit switch."""
import jax
import numpy as np

# Relative error bounds, judged against the leaf's scale max(|a|max, |b|max).
# float64: both sides round at 2.2e-16; 1e-10 leaves 10^5-10^6 headroom for reductions.
# float32: eps 1.2e-7; 1e-4 leaves ~10^3 for accumulated rounding over ~10^5-term sums.
RTOL = {np.dtype("float64"): 1e-10, np.dtype("float32"): 1e-4}


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def assert_trees_close(actual, expected, rtol, what=""):
    """Same tree structure, same shapes, and every leaf within rtol of its scale."""
    sa, se = jax.tree.structure(actual), jax.tree.structure(expected)
    assert sa == se, f"{what}: tree {sa} != {se}"
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
        where = f"{what}{jax.tree_util.keystr(path)}"
        assert np.shape(a) == np.shape(b), f"{where}: shape {np.shape(a)} != {np.shape(b)}"
        err = rel_err(a, b)
        assert err <= rtol, f"{where}: relative error {err:.3g} > {rtol:.1g}"


def maybe_jit(fn, jit, static_argnums=()):
    return jax.jit(fn, static_argnums=static_argnums) if jit else fn
