"""What goes into fnnet.check, validated: primals, the cotangent, and the cotangents that
the hand-written vjp and a reference return, lined up leaf by leaf with clear messages.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check.report import Row
from fnnet.check.verdict import Status


@dataclasses.dataclass(frozen=True)
class Leaf:
    name: str        # "params.w"
    primal: int      # which primal it belongs to
    shape: tuple
    dtype: np.dtype
    offset: int      # position in the flattened primals (finite differences)
    size: int


def to_device(a, dtype=None):
    """A jax array of `dtype`. jax.device_put of a NumPy array, because jnp.asarray compiles a
    small program per new shape (dozens per check run, ~0.05 s each)."""
    if isinstance(a, jax.Array) and (dtype is None or a.dtype == dtype):
        return a
    return jax.device_put(np.asarray(a, dtype))


# -- names and texts ----------------------------------------------------------------------

def primal_names(fun, n, names):
    if names is not None:
        names = tuple(str(s) for s in names)
        if len(names) != n:
            raise ValueError(f"names must have one entry per primal ({n}), got {len(names)}")
        return names
    try:
        ps = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        ps = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(ps) >= n and all(p.kind in positional for p in ps[:n]):
        return tuple(p.name for p in ps[:n])
    return tuple(f"arg{i}" for i in range(n))


class _Star:
    def __repr__(self):
        return "*"


def tree_text(tree) -> str:
    """DenseParams(w=*, b=*), dict {'w': *, 'b': *}, (*, ()): the tree with leaves as *."""
    text = repr(jax.tree.map(lambda _: _Star(), tree))
    return f"{type(tree).__name__} {text}" if isinstance(tree, dict) else text


def describe(obj) -> str:
    if isinstance(obj, (tuple, list)):
        return f"{type(obj).__name__} of length {len(obj)}"
    if hasattr(obj, "shape"):
        return f"a single array of shape {tuple(obj.shape)}"
    return type(obj).__name__


def x64_context(trees):
    """float64 leaves need x64 on while fun/vjp run; turn it on for the call if it is off."""
    wants = any(np.dtype(getattr(l, "dtype", np.float32)) == np.float64 for l in jax.tree.leaves(trees))
    return jax.enable_x64(True) if wants and not jax.config.jax_enable_x64 else contextlib.nullcontext()


def as_primal(name, path, leaf):
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        leaf = np.asarray(leaf)
        dtype = leaf.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"check: primal {name}{jax.tree_util.keystr(path)} must be a floating array, "
                        f"got dtype {dtype} (close over non-differentiable arguments such as "
                        f"integer labels inside fun instead)")
    return to_device(leaf, dtype)


def annotate(err, what):
    if hasattr(err, "add_note"):
        err.add_note(f"(fnnet.check: raised by {what})")
    return err


def shape_hint(got, want) -> str:
    if len(got) == len(want) and got == want[::-1]:
        return " (looks transposed)"
    if len(got) == len(want) + 1 and got[1:] == want:
        return " (one per example: not summed over the batch?)"
    return ""


STREAM = 0x666E6E65   # "fnne": the checker's own random stream (see rng_for)


def rng_for(key, *salt):
    """A NumPy generator determined by the jax key and a salt (no jax compilation per shape).

    key None is jax.random.key(0), whose key data is [0, 0] (not built: that compiles).
    The entropy starts with STREAM, so no draw of the checker's coincides with the usual
    way users draw inputs (np.random.default_rng(0) equals default_rng([0, 0, 0]), the
    stream a key-0 check's cotangent used to come from: a layer norm's cotangent equal to
    its input has dx ≈ 0, and every tolerance scaled by it grows useless).
    """
    if key is None:
        data = np.zeros(2, np.uint32)
    else:
        data = np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    return np.random.default_rng([STREAM] + [int(v) for v in data.reshape(-1)] + [int(s) for s in salt])


def floating(leaf) -> bool:
    return bool(jnp.issubdtype(leaf.dtype, jnp.floating))


def float0_like(leaf):
    """The cotangent of a non-differentiable (integer, bool) output leaf: float0 zeros, jax's
    convention, as for such inputs."""
    return np.zeros(tuple(leaf.shape), jax.dtypes.float0)


def make_cotangent(cotangent, out, rng):
    """The given cotangent, validated against out's tree and shapes, or a random normal one.
    Integer and bool output leaves (an argmax beside a max) are non-differentiable: their
    cotangent is float0 zeros whatever was given there."""
    if cotangent is None:
        leaves, tree = jax.tree.flatten(out)
        cts = [to_device(rng.standard_normal(l.shape), l.dtype) if floating(l) else float0_like(l)
               for l in leaves]
        return jax.tree.unflatten(tree, cts), "random normal"
    if jax.tree.structure(cotangent) != jax.tree.structure(out):
        raise ValueError(f"check: cotangent must have the output's tree {tree_text(out)}, "
                         f"got {tree_text(cotangent)}")
    cts = []
    for (path, c), v in zip(jax.tree_util.tree_leaves_with_path(cotangent), jax.tree.leaves(out)):
        if tuple(np.shape(c)) != tuple(v.shape):
            raise ValueError(f"check: cotangent{jax.tree_util.keystr(path)} must have the output's "
                             f"shape {tuple(v.shape)}, got {tuple(np.shape(c))}")
        cts.append(to_device(c, v.dtype) if floating(v) else float0_like(v))
    return jax.tree.unflatten(jax.tree.structure(out), cts), "given"


def call_reference(reference, primals, ct, names, leaves):
    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), primals)
    c64 = jax.tree.map(lambda a: np.asarray(a, np.float64), ct)
    try:
        out = reference(*p64, c64)
    except Exception as e:
        raise annotate(e, "the reference oracle")
    if not isinstance(out, (tuple, list)) or len(out) != len(primals):
        raise ValueError(f"check: reference must return one cotangent per primal ({', '.join(names)}), "
                         f"got {describe(out)}")
    flat = {}
    for i, (n, prim, r) in enumerate(zip(names, primals, out)):
        if jax.tree.structure(r) != jax.tree.structure(prim):
            raise ValueError(f"check: reference's cotangent for {n} has tree {tree_text(r)}, "
                             f"expected {tree_text(prim)}")
        for leaf, v in zip([l for l in leaves if l.primal == i], jax.tree.leaves(r)):
            v = np.asarray(v, np.float64)
            if v.shape != leaf.shape:
                raise ValueError(f"check: reference's cotangent for {leaf.name} has shape {v.shape}, "
                                 f"expected {leaf.shape}")
            flat[leaf.name] = v
    return flat


def match_hand(hand, primals, names, leaves, title="check", rule="the hand-written vjp"):
    """Line the hand-written cotangents up with the primals' leaves.

    Returns (rows, hand_leaf, skip): failed "structure" Rows (wrong tree, shape or dtype),
    {leaf name: (float64 values, dtype)} for the leaves that can be compared, and the names
    of the leaves that cannot. Raises ValueError when there is not one cotangent per primal.
    """
    if not isinstance(hand, (tuple, list)) or len(hand) != len(primals):
        raise ValueError(f"{title}: {rule} must return a tuple with one cotangent per "
                         f"primal ({len(primals)}: {', '.join(names)}), got {describe(hand)}")
    rows, hand_leaf, skip = [], {}, set()
    for i, (n, prim, h) in enumerate(zip(names, primals, hand)):
        if jax.tree.structure(h) != jax.tree.structure(prim):
            rows.append(Row(n, "structure", "structure", Status.FAIL,
                            note=f"the hand-written cotangent's tree is {tree_text(h)}, expected "
                                 f"{tree_text(prim)} (the primal's tree)"))
            skip.update(l.name for l in leaves if l.primal == i)
            continue
        for leaf, v in zip([l for l in leaves if l.primal == i], jax.tree.leaves(h)):
            got_shape = tuple(np.shape(v))
            got_dtype = np.dtype(getattr(v, "dtype", np.asarray(v).dtype))
            if got_shape != leaf.shape:
                rows.append(Row(leaf.name, "structure", "structure", Status.FAIL,
                                note=f"the hand-written cotangent has shape {got_shape}, expected "
                                     f"{leaf.shape} (the primal's shape){shape_hint(got_shape, leaf.shape)}"))
                skip.add(leaf.name)
                continue
            if got_dtype != leaf.dtype:
                rows.append(Row(leaf.name, "structure", "structure", Status.FAIL,
                                note=f"the hand-written cotangent has dtype {got_dtype}, expected "
                                     f"{leaf.dtype} (the primal's; fnnet never changes precision silently)"))
            hand_leaf[leaf.name] = (np.asarray(v, np.float64), np.dtype(got_dtype))

    return rows, hand_leaf, skip
