"""Tolerances and the element-by-element comparison behind fnnet.check.

All comparisons are judged against a *scale*, never element by element relative, so a
zero gradient never divides by zero:

    err_i = |hand_i - oracle_i|,   scale = max(|hand|max, |oracle|max) over the leaf,
    pass  when  max_i err_i <= rtol · scale + atol        (reported: rel err vs tol = that / scale)

rtol by the dtype the hand-written backward ran in (the same numbers as tests/helpers.py):
  float64  1e-10: both sides round at eps = 2.2e-16; 1e-10 leaves 10^5-10^6 headroom for
                  reductions (a 26k-parameter network's sums included).
  float32  1e-4:  eps = 1.2e-7; 1e-4 leaves ~10^3 for rounding accumulated over sums
                  of up to ~10^5 terms.
atol, the resolution floor (matters only when a whole leaf is tiny): a hand-written
backward builds each entry from forward values (s = σ(z), t = tanh z, softmax) rounded
to eps relative to the output's size, e.g. σ'(40) ≈ 4e-18 comes out as s(1 - s) = 0 in
float64 as well as float32, and a saturated float32 softmax's s ⊙ (dy - <dy, s>) cancels
down to eps·|dy|. An entry is therefore only determined to about eps times what it is
built from: the output terms ct_j·y_j (at most T = max_j |ct_j·y_j| each, n_out of them
shared among the leaf's n_leaf entries) and the backward's intermediates, products of the
cotangent with quantities the size of the inputs (p - y of a saturated loss, an input of
30 times 1 - t²): I = Σ|ct| · max(1, |x|max). We allow 16 such roundings:
    atol = 16 · eps · (T · n_out + I) / n_leaf.
It is negligible next to rtol · scale whenever the leaf is not tiny (the table's tol shows it).

Finite differences (central, float64, step t = 1e-6 · max(1, |x_i|) per element):
  truncation  t²·|g'''|/6: 1e-12 relative for unit curvature, so RTOL_FD = 1e-6 leaves
              room for curvature 10^5-10^6 times the gradient's scale (softmax near a tie,
              tanh near 0) and is still ~10^5 below any real bug (O(1) relative).
  rounding    g = <ct, fun(x)> is computed from quantities of size M = Σ|ct ⊙ y| (its
              terms) + I (what fun rounds inside: a loss near 0 is a difference of terms
              the size of its inputs, e.g. log-sum-exp of ±30 logits); g± are each known
              to ~16·eps·M, so the difference quotient carries noise <= 16 · eps · M / t:
              added to atol.
A float32 backward compared with float64 finite differences uses max(RTOL_FD, 1e-4).

Autodiff yardstick (float64 oracles only: reference/ and finite differences), applied
after the kink rules, to what they leave: derivative formulas evaluated from cached
outputs cancel when units saturate (1 - t² with t = tanh z ≈ 1 - 1e-12 keeps 4 digits
in float64; in float32 tanh(z) is exactly 1 from |z| ≈ 9, so a saturated layer's
gradient is 0 where the truth is 1e-5). A correct backward then sits further from the
float64 truth than rtol says; jax.vjp, run at the hand-written side's precision on the
same forward, measures how far. Element by element the hand-written value may differ
from the oracle by 4x as much as jax.vjp's value does:
  float64: only where that distance is rounding-sized (<= 1e-3 · scale; the worst seen,
           saturated tanh layers fed inputs of 30, is 3e-4). Larger distances are a wrong
           oracle or forward, which must show.
  float32: without a cap: float32 autodiff is the measure of what float32 can do, and
           the float64 check of the same code shows a wrong oracle.
The jax.vjp row itself never uses it, so a bug in the hand-written code always fails there.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

RTOL = {np.dtype("float64"): 1e-10, np.dtype("float32"): 1e-4}
RTOL_FD = 1e-6
YARDSTICK = 4.0         # autodiff yardstick, see the module doc
YARDSTICK_CAP = {np.dtype("float64"): 1e-3}   # relative to the scale; no cap for coarser dtypes
ROUNDINGS = 16           # rounding errors allowed per term, see the floors above
MAX_ADJUDICATE = 4096    # at most this many disagreeing elements are re-examined by FD


def eps(dtype) -> float:
    """Machine epsilon: 2.2e-16 for float64, 1.2e-7 for float32 (bfloat16 included)."""
    return float(jnp.finfo(dtype).eps)


def rtol(dtype) -> float:
    """Relative tolerance for a hand-written backward that ran in `dtype`."""
    dtype = np.dtype(dtype)
    if dtype in RTOL:
        return RTOL[dtype]
    return max(1e-4, 1e3 * eps(dtype))   # float16/bfloat16: the float32 reasoning, scaled by eps


def resolution_floor(dtype, largest_term: float, n_out: int, inner: float, n_leaf: int) -> float:
    """atol below which a hand-written entry in `dtype` cannot be resolved (see module doc)."""
    return ROUNDINGS * eps(dtype) * (largest_term * n_out + inner) / max(n_leaf, 1)


def fd_noise(M: float, t: float, fd_eps: float) -> float:
    """Rounding noise of a central difference quotient (g⁺ - g⁻) / 2t, g known to 16·eps·M."""
    return ROUNDINGS * fd_eps * M / t


def yardstick_allowance(jax_values, oracle, scale, dtype):
    """Per element: 4 × how far autodiff at the hand's precision (`dtype`) is from a float64
    oracle; for float64 only where that is rounding-sized, else 0 (see the module doc)."""
    d = np.abs(np.asarray(jax_values, np.float64) - oracle)
    cap = YARDSTICK_CAP.get(np.dtype(dtype))
    return YARDSTICK * d if cap is None else np.where(d <= cap * scale, YARDSTICK * d, 0.0)


def compare(hand, oracle, rtol_, atol, adjudicate=None, yardstick=None):
    """Element-by-element comparison of two same-shaped float64 arrays.

    adjudicate(flat_indices) -> (lo, hi, tol) gives, per element, the interval spanned by the
    one-sided finite differences and its tolerance; elements where hand and oracle disagree
    but both lie inside a genuine kink interval (hi - lo > tol) are accepted and counted.
    yardstick: (jax.vjp's values, their dtype), for a float64 oracle (see the module doc);
    it applies to what the kink rule leaves.
    Returns dict(max_abs_err, rel_err, worst_index, tol, ok, kinks).
    """
    hand = np.asarray(hand, np.float64)
    oracle = np.asarray(oracle, np.float64)
    diff = np.abs(hand - oracle)
    scale = max(float(np.abs(hand).max(initial=0.0)), float(np.abs(oracle).max(initial=0.0)))
    allowed = rtol_ * scale + atol
    kinks = 0
    bad = np.flatnonzero(diff > allowed)
    if bad.size and adjudicate is not None and bad.size <= MAX_ADJUDICATE:
        lo, hi, tol = adjudicate(bad)
        h, o = hand.reshape(-1)[bad], oracle.reshape(-1)[bad]
        inside = lambda v: (v >= lo - tol) & (v <= hi + tol)
        accept = (hi - lo > tol) & inside(h) & inside(o)
        kinks = int(accept.sum())
        diff = diff.copy().reshape(-1)
        diff[bad[accept]] = 0.0   # accepted at a kink: out of the error statistics
        diff = diff.reshape(hand.shape)
    if yardstick is not None:
        allowed = allowed + yardstick_allowance(yardstick[0], oracle, scale, yardstick[1])
    return summarize(diff, scale, allowed, kinks)


def summarize(diff, scale, allowed, kinks=0):
    """The row's numbers. `allowed` is a scalar or per element; the worst element is the one
    with the largest err / allowed (the largest err when allowed is uniform)."""
    diff = np.asarray(diff, np.float64)
    allowed = np.broadcast_to(np.asarray(allowed, np.float64), diff.shape)
    ok = bool((diff <= allowed).all())
    if diff.size and diff.max() > 0:
        flat = int(np.argmax(diff.reshape(-1) / np.maximum(allowed.reshape(-1), 1e-300)))
        err, tol = float(diff.reshape(-1)[flat]), float(allowed.reshape(-1)[flat])
        worst = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    else:
        err, tol, worst = 0.0, float(allowed.min(initial=np.inf)), None
    if scale == 0.0:   # both sides exactly zero everywhere: nothing to scale by, nothing wrong
        return dict(max_abs_err=err, rel_err=0.0, worst_index=worst, tol=float("nan"), ok=ok, kinks=kinks)
    return dict(max_abs_err=err, rel_err=err / scale, worst_index=worst, tol=tol / scale, ok=ok, kinks=kinks)
