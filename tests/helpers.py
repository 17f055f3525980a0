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


def fd_vjp(fun, primals, cotangent, eps=1e-6):
    """Central finite differences of <cotangent, fun(*primals)> w.r.t. every element of
    every primal, in float64 NumPy arithmetic around a float64 evaluation of `fun`.

    primals: tuple of arrays (no pytrees); returns a tuple of arrays like the primals.
    Error: O(eps²·f''') truncation + O(1e-16/eps) rounding, ~1e-10 relative for eps=1e-6.
    Small inputs only: 2 evaluations per element.
    """
    primals = [np.array(p, dtype=np.float64) for p in primals]
    ct = np.asarray(cotangent, np.float64)

    def g(ps):
        return float(np.sum(ct * np.asarray(fun(*ps), np.float64)))

    grads = []
    for i, p in enumerate(primals):
        grad = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            h = eps * max(1.0, abs(p[idx]))
            plus = [q.copy() for q in primals]
            minus = [q.copy() for q in primals]
            plus[i][idx] += h
            minus[i][idx] -= h
            grad[idx] = (g(plus) - g(minus)) / (2 * h)
        grads.append(grad)
    return tuple(grads)


# Finite differences carry truncation error ~eps² and rounding ~1e-16/eps: 1e-10 at
# eps=1e-6 for well-scaled inputs; 1e-7 leaves three orders of headroom and is still
# ~10^6 times smaller than any real bug (a wrong factor or a dropped term).
FD_RTOL = 1e-7


def to_reference(net, params):
    """An fnnet network and its params as reference/'s plain layer dicts and loss name."""
    import fnnet
    layers = []
    for layer, p in zip(net.layers, params):
        if isinstance(layer, fnnet.Dense):
            layers.append({"kind": "dense", "w": np.asarray(p.w, np.float64), "b": np.asarray(p.b, np.float64)})
        elif isinstance(layer, fnnet.LeakyRelu):
            layers.append({"kind": "leaky_relu", "alpha": layer.alpha})
        else:
            layers.append({"kind": type(layer).__name__.lower()})
    return layers, net.loss.name
