"""Input checks shared by every layer, loss and network function.

All checks run in Python on static information (shapes and dtypes), so under
`jax.jit` they fire at trace time, before any number is computed. Checks that
need values (NaN/Inf, label ranges) run only on concrete arrays, i.e. outside
`jit`; `fnnet.fit` always validates its data this way before training.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when `x` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def fmt_shape(expected) -> str:
    """(None, 64) -> '[batch, 64]'."""
    return "[" + ", ".join("batch" if d is None else str(d) for d in expected) + "]"


def int_at_least(where: str, name: str, v, lo: int = 1, hi: int | None = None) -> int:
    """An int >= lo (and <= hi if given) -> int(v). Bools and 2.0 are refused: sizes, counts
    and seeds are exact."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo or (hi is not None and v > hi):
        bound = f"an int in [{lo}, {hi}]" if hi is not None else f"an int >= {lo}"
        raise ValueError(f"{where}: {name} must be {bound}, got {v!r}")
    return int(v)


def check_dy(where: str, dy, shape) -> None:
    """A backward's incoming gradient must have exactly the forward output's shape (never
    broadcast: a [batch] dy against a [batch, 1] output would silently give wrong sums)."""
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"{where}: dy must have the output's shape {tuple(shape)}, got {tuple(dy.shape)}")


def check_floating(where: str, what: str, x) -> None:
    dtype = getattr(x, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{where}: {what} must be a floating array, got "
                        f"{type(x).__name__} with dtype {dtype}")


def check_shape(where: str, what: str, x, expected) -> None:
    """`expected` is a tuple whose None entries match any size >= 1."""
    shape = tuple(np.shape(x))
    ok = len(shape) == len(expected) and all(
        (e is None and s >= 1) or s == e for s, e in zip(shape, expected))
    if not ok and len(shape) == len(expected) and 0 in shape and all(
            e is None or s == e for s, e in zip(shape, expected)):
        raise ValueError(f"{where}: {what} is empty: shape {shape}, need at least one example "
                         f"in {fmt_shape(expected)}")
    if not ok:
        raise ValueError(f"{where}: {what} must be {fmt_shape(expected)}, got {shape}")


def check_same_dtype(where: str, what: str, x, dtype) -> None:
    if x.dtype != dtype:
        raise TypeError(f"{where}: {what} has dtype {x.dtype} but the params are "
                        f"{dtype}; cast one of them (fnnet never mixes precisions silently)")


def check_finite(where: str, what: str, x) -> None:
    """Raise on NaN/Inf in a concrete array; no-op on tracers."""
    if not is_concrete(x) or isinstance(x, jax.ShapeDtypeStruct):
        return
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{where}: {what} contains {int(bad.sum())} NaN/Inf "
                             f"value(s), first at index {idx}")
