"""Non-differentiable inputs of a check: integer indices, bool masks, PRNG keys, static config.

Following `jax.custom_vjp(nondiff_argnums=...)`: a primal marked non-differentiable is passed
unchanged to `fun`, to the hand-written vjp and to every witness (jax.vjp, the reference,
finite differences) and is never perturbed or compared. Mark primals with
`nondiff=` by position (int, negative allowed) or by name (str, as in the report); a primal
whose leaves are all non-floating (integer or bool arrays, PRNG keys, Python ints, strings)
is non-differentiable without being marked. A primal mixing floating and non-floating
leaves (an equinox Module with its activation functions, a flax nnx Module with its RNG
keys) is differentiated in its floating arrays, the rest held fixed, as eqx.filter_grad does,
by check_vjp and what runs on it (hold_leaves); the other checks say TypeError (split it,
or mark it).

The hand-written vjp may return either
  - one cotangent per primal (jax.vjp's convention): the entries for non-differentiable
    primals must be None, float0 / integer arrays (jax's zero cotangents), or all-zero
    floating arrays; anything else is a failed "structure" row, or
  - one cotangent per differentiable primal, in order (custom_vjp's bwd convention).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _is_floating_leaf(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        if isinstance(leaf, float):
            return True                      # a Python float is a differentiable scalar
        if isinstance(leaf, (bool, int, str, bytes)) or leaf is None:
            return False
        try:
            dtype = np.asarray(leaf).dtype
        except Exception:
            return False
    try:
        return bool(jnp.issubdtype(dtype, jnp.floating))
    except TypeError:
        return False


def auto_nondiff(name, primal, mixed_ok=False) -> bool:
    """True when every leaf of `primal` is non-floating (it cannot be differentiated).
    mixed_ok: a primal mixing floating and non-floating leaves is differentiable (the caller
    holds its non-floating leaves fixed, hold_leaves); else a TypeError."""
    leaves = jax.tree.leaves(primal)
    if not leaves:
        return False
    floating = [_is_floating_leaf(l) for l in leaves]
    if all(floating):
        return False
    if not any(floating):
        return True
    if mixed_ok:
        return False
    raise TypeError(f"check: primal {name} mixes floating and non-floating leaves; mark it "
                    f"non-differentiable with nondiff=({name!r},) or pass the parts as separate primals")


def positions(nondiff, names, primals, mixed_ok=False):
    """(sorted non-differentiable positions, {position: reason}) from nondiff= and the dtypes
    (mixed_ok: as auto_nondiff)."""
    if nondiff is None:
        nondiff = ()
    if isinstance(nondiff, (int, str)):
        nondiff = (nondiff,)
    n = len(names)
    why = {}
    for m in nondiff:
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer, str)):
            raise TypeError(f"check: nondiff entries must be positions (int) or primal names (str), "
                            f"got {m!r}")
        if isinstance(m, str):
            if m not in names:
                raise ValueError(f"check: nondiff name {m!r} is not a primal; the primals are {names}")
            i = names.index(m)
        else:
            i = int(m) + (n if m < 0 else 0)
            if not 0 <= i < n:
                raise ValueError(f"check: nondiff position {m} out of range for {n} primals {names}")
        why[i] = "nondiff="
    for i, (name, p) in enumerate(zip(names, primals)):
        if i not in why and auto_nondiff(name, p, mixed_ok):
            why[i] = "non-floating"
    return sorted(why), why


def differentiable(where, nondiff, names, view, primals):
    """(diff, fixed) for a check that differentiates some primals and holds the rest:
    diff the differentiable positions, fixed {position: value held as a constant}.
    view: the primals as the check sees them (complex leaves split into re/im, so they
    count as differentiable). ValueError naming `where` when nothing is differentiable."""
    nd_pos, _ = positions(nondiff, names, view)
    diff = [i for i in range(len(primals)) if i not in nd_pos]
    if not diff:
        raise ValueError(f"{where}: no differentiable primal among {names} (all held fixed)")
    return diff, {i: jax.tree.map(as_fixed, primals[i]) for i in nd_pos}


def merge(diff_values, diff_pos, fixed, n):
    """All n primals in order: the differentiable ones from diff_values, the rest from fixed."""
    out, it = [None] * n, iter(diff_values)
    for i in range(n):
        out[i] = fixed[i] if i in fixed else None
    for i in diff_pos:
        out[i] = next(it)
    return tuple(out)


def pick(out, n_all, diff_pos, nd_pos, names, what="the hand-written vjp"):
    """(cotangents of the differentiable primals, {name: [nonzero flag arrays]} for the others;
    a dict, so that it can leave a jax.jit: names are its keys, flags its leaves)."""
    if isinstance(out, (tuple, list)) and len(out) == len(diff_pos) and len(out) != n_all:
        return tuple(out), {}
    if not isinstance(out, (tuple, list)) or len(out) != n_all:
        got = f"{type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        raise ValueError(f"check: {what} must return one cotangent per primal ({n_all}: {', '.join(names)}) "
                         f"or one per differentiable primal ({len(diff_pos)}: "
                         f"{', '.join(names[i] for i in diff_pos)}), got {got}")
    flags = {}
    for i in nd_pos:
        flags[names[i]] = [jnp.any(jnp.asarray(l) != 0) for l in jax.tree.leaves(out[i])
                           if getattr(l, "dtype", None) is not None and jnp.issubdtype(l.dtype, jnp.floating)]
    return tuple(out[i] for i in diff_pos), flags


def hashable_values(values):
    """A hashable stand-in for the fixed primals (array bytes), or None when one is not hashable."""
    out = []
    for v in values:
        parts = []
        for leaf in jax.tree.leaves(v):
            try:
                if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                    leaf = jax.random.key_data(leaf)
                if hasattr(leaf, "shape"):
                    a = np.asarray(leaf)
                    parts.append((a.shape, str(a.dtype), a.tobytes()))
                else:
                    hash(leaf)
                    parts.append(leaf)
            except Exception:
                return None
        out.append((str(jax.tree.structure(v)), tuple(parts)))
    return tuple(out)


def as_fixed(leaf):
    """A NumPy (or other array-like) leaf held fixed, as a jax array under the caller's x64
    setting (int64 ids turn int32 with x64 off, as jax would make them)."""
    if isinstance(leaf, np.ndarray) or (hasattr(leaf, "dtype") and hasattr(leaf, "shape")
                                        and not isinstance(leaf, jax.Array)):
        return jnp.asarray(leaf)
    return leaf


# -- primals mixing floating arrays with other leaves (modules passed whole) -------------------

def _is_float_array(leaf) -> bool:
    """A floating array: what eqx.filter_grad differentiates (eqx.is_inexact_array, real only;
    Python floats and every other leaf of a mixed primal are held fixed)."""
    return (hasattr(leaf, "shape") and hasattr(leaf, "dtype") and not isinstance(leaf, jax.ShapeDtypeStruct)
            and _is_floating_leaf(leaf))


def _none_leaf(v) -> bool:
    return v is None


def is_mixed(primal) -> bool:
    """Some leaves of `primal` are floating arrays and some are not."""
    kinds = {_is_float_array(l) for l in jax.tree.leaves(primal)}
    return kinds == {True, False}


def float_part(primal):
    """`primal` with every leaf that is not a floating array replaced by None (eqx.partition's
    first half): the part a check differentiates; its leaf paths are the primal's own."""
    return jax.tree.map(lambda l: l if _is_float_array(l) else None, primal)


def held_part(primal):
    """`primal` with its floating arrays replaced by None: the part held fixed."""
    return jax.tree.map(lambda l: None if _is_float_array(l) else l, primal)


def combine(part, held):
    """The whole primal from float_part and held_part (eqx.combine): each leaf from whichever
    half has it."""
    return jax.tree.map(lambda a, b: b if a is None else a, part, held, is_leaf=_none_leaf)


def cotangent_part(ct, held, name, what):
    """(the cotangent of a mixed primal in float_part's tree, [nonzero flags]): a rule may return
    the whole primal's tree (None, float0 or zeros at the held leaves, as eqx.filter_grad gives
    None) or float_part's; a floating non-zero value at a held leaf is flagged. ValueError when
    the cotangent has another tree than the primal."""
    treedef = jax.tree.structure(held, is_leaf=_none_leaf)
    try:
        cts = treedef.flatten_up_to(ct)
    except (ValueError, TypeError):
        raise ValueError(f"check: {what} returned a cotangent for {name} whose tree is not {name}'s "
                         f"(expected {treedef}, with None at its non-floating leaves, as eqx.filter_grad "
                         f"returns), got {jax.tree.structure(ct, is_leaf=_none_leaf)}") from None
    kept = jax.tree.leaves(held, is_leaf=_none_leaf)
    out, flags = [], []
    for h, c in zip(kept, cts):
        if h is None:                           # a floating array: differentiated
            out.append(c)
            continue
        out.append(None)
        if getattr(c, "dtype", None) is not None and jnp.issubdtype(c.dtype, jnp.floating):
            flags.append(jnp.any(jnp.asarray(c) != 0))
    return treedef.unflatten(out), flags


def hold_leaves(mixed, held, n, diff_pos, names):
    """(whole, cotangents) for primals mixing floating arrays with other leaves, positions
    `mixed`, held parts {position: held_part}: whole(primals) puts the held leaves back for
    fun, the rule and the reference; cotangents(out, what) -> (out with each mixed primal's
    cotangent in float_part's tree, {name: flags}), out one cotangent per primal or per
    differentiable primal (diff_pos), as pick takes."""
    def whole(primals):
        return tuple(combine(p, held[i]) if i in held else p for i, p in enumerate(primals))

    def cotangents(out, what):
        if not isinstance(out, (tuple, list)) or len(out) not in (n, len(diff_pos)):
            return out, {}                          # pick says what is wrong with it
        at = {i: i for i in mixed} if len(out) == n else {i: diff_pos.index(i) for i in mixed}
        out, flags = list(out), {}
        for i in mixed:
            out[at[i]], nonzero = cotangent_part(out[at[i]], held[i], names[i], what)
            if nonzero:
                flags[names[i]] = nonzero
        return tuple(out), flags
    return whole, cotangents
