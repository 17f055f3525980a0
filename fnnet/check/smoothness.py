"""Is autodiff's derivative smooth at a point? Where it is not, its value there is a convention.

At an input exactly on a kink (relu at 0), a guard (where(x == 0, ...)) or a tie, autodiff
returns a convention (relu'(0) = 0, the untaken branch's NaN, a tie's split), which need not
be the composite's derivative even when the composite is smooth. These tests read autodiff's
derivative of g = <ct, fun> along e_i at x and one step t to either side
(FiniteDifferences.derivatives_around), in float64.
"""
from __future__ import annotations

import numpy as np


def derivative_jumps(fd, flat_idx, tol):
    """Per index: does the derivative at x differ from its value at x + t·e_i or at x - t·e_i
    by more than tol?"""
    d = fd.derivatives_around(flat_idx)
    return (np.abs(d[1] - d[0]) > tol) | (np.abs(d[2] - d[0]) > tol)


def autodiff_kink(fd, flat_idx, scale):
    """Per index: is the derivative at x not the smooth continuation of its neighbours'? The
    second difference d(x+t) - 2·d(x) + d(x-t) of a smooth derivative is of order |g'''|·t²
    (1e-12 relative for t = 1e-6); at a kink, a guard or a tie convention it is the size of
    the jump itself, whatever the element's magnitude (a tiny cotangent makes the jump tiny,
    not smooth). scale: the leaf's scale, for the floor. NaN derivatives are no evidence."""
    d = fd.derivatives_around(flat_idx)
    with np.errstate(invalid="ignore"):
        second = np.abs(d[1] - 2 * d[0] + d[2])
        floor = 1e-3 * np.abs(d[1] - d[2]) + 1e-9 * np.abs(d).sum(0) + 1e-10 * scale
        return np.isfinite(second) & (second > floor)
