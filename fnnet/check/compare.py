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
The floor is local (local_floor): T, n_out, Σ|ct| and max|x| are taken within the block of
leading axes the leaf shares with each output (rows of a [batch, d] leaf), so one input of
±800 or one huge output term raises the floor of its own row only; a leaf sharing no axes
with the output (a weight) gets the whole-output form. Non-finite entries are left out of
every scale and floor (they fail, or are inconclusive, on their own).

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

Measured rounding (rounding_floor): an entry whose true value is 0 because its sums cancel
(a conv bias followed by batch norm: Σ over positions of a centred quantity) is pure rounding
in every implementation, of the size of those sums, which neither the output terms nor the
inputs bound: the floor above can be far below it. Running the same callables in two dtypes
measures it entry by entry: |rule(coarse) - rule(float64)| is the coarse dtype's rounding of
the sums the rule actually computes there, in its own order (a math error is the same in
both dtypes and cancels out of the difference), and the same for jax.vjp; eps(judged) /
eps(coarse) times the larger is the judged dtype's. ROUNDINGS times that joins the floor of
the entry: where the coarse run exists anyway (a float32 check and its float64 replay), and
for a float64 check only when a leaf fails without it (fun, the rule and jax.vjp then also
run in float32, once). Only at entries that are rounding in the coarse dtype (|jax.vjp in
float64| <= 1% of the difference): a real value, or a kink whose branch the two dtypes take
differently, is no measure of rounding; and only where jax.vjp is an independent witness.

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
  float32: without a cap: float32 autodiff is the measure of what float32 can do. For the
           reference row its distance is taken from jax.vjp of the same forward run in
           float64 (plus the float64 rule for that one's distance from the reference), not
           from the reference itself: measured against the oracle being judged, a wrong
           reference would widen its own tolerance and pass (where fun cannot run in
           float64, the distance from the oracle is used, as for finite differences).
The jax.vjp row itself never uses it, so a bug in the hand-written code always fails there.
Only an independent jax.vjp is a yardstick: with a user custom rule inside fun there is none.

Witnesses outvoted (compare's majority): where jax.vjp disagrees with the float64 differences
(beyond their tolerance, kinks included) and the hand-written value agrees with them (and
with the reference, if any), the jax.vjp row is "warn": autodiff at a kink or through a
non-smooth rewrite (softplus as max(x, 0) + log1p(exp(-|x|)) has jax.grad 0 at 0, the truth
0.5; sqrt(Σx²) has a NaN jax.vjp at 0). Only where the differences resolve the value (their
tolerance <= 10% of it): an unresolved leaf outvotes nothing.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax.numpy as jnp
import numpy as np

RTOL = {np.dtype("float64"): 1e-10, np.dtype("float32"): 1e-4}
RTOL_FD = 1e-6
YARDSTICK = 4.0         # autodiff yardstick, see the module doc
YARDSTICK_CAP = {np.dtype("float64"): 1e-3}   # relative to the scale; no cap for coarser dtypes
ROUNDINGS = 16           # rounding errors allowed per term, see the floors above
MAX_ADJUDICATE = 4096    # at most this many disagreeing elements are re-examined by FD


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One leaf's hand-written values against one witness (compare, or fnnet.check.fdcompare).

    ok: every element agrees; max_abs_err, rel_err (/ scale), tol (allowed / scale) and
    actual/expected (hand-written, witness) at worst_index, the element with the largest
    err / allowed (None when nothing differs); kinks: elements accepted at a kink;
    nonfinite: hand-written NaN/inf entries the witness does not share; overruled: flat
    indices where the witness was outvoted by finite differences, overruled_first (index,
    hand, witness, finite difference) of the first; notes: texts for the row. Directional
    comparisons add failing (direction numbers), blocks (their leaf indices, None for a
    random direction), direction (the worst) and undefined (non-finite quotients).
    ratio: per element err / allowed, the leaf's shape (<= 1 passes; elements accepted at a
    kink or where the witness was outvoted count 0), for report.plot; None for directions."""
    ok: bool
    max_abs_err: float
    rel_err: float
    tol: float
    worst_index: Optional[tuple] = None
    kinks: int = 0
    actual: Optional[float] = None
    expected: Optional[float] = None
    nonfinite: int = 0
    overruled: tuple = ()
    overruled_first: Optional[tuple] = None
    notes: tuple = ()
    failing: tuple = ()
    blocks: tuple = ()
    direction: Optional[int] = None
    undefined: int = 0
    ratio: Optional[np.ndarray] = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Bracket:
    """What finite differences say at some elements of a leaf (an adjudicator's answer).

    lo, hi: the one-sided difference quotients' interval; tol: its tolerance; central: the
    central differences (all [n], the elements asked about). joint(flat idx, hand values)
    -> (ok, text): the joint test of kink acceptances (fnnet.check.kinks); jumps(sub) ->
    bool per element: autodiff's own derivative jumps there (fnnet.check.smoothness);
    hull(sub, values) -> bool: several kinks at once (fnnet.check.hull). None: not asked."""
    lo: np.ndarray
    hi: np.ndarray
    tol: np.ndarray
    central: np.ndarray
    joint: Optional[Callable] = None
    jumps: Optional[Callable] = None
    hull: Optional[Callable] = None


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
    """atol below which a hand-written entry in `dtype` cannot be resolved (see module doc);
    the whole-leaf form, for a leaf that shares no leading axes with the output."""
    return ROUNDINGS * eps(dtype) * (largest_term * n_out + inner) / max(n_leaf, 1)


def _finite_abs(a):
    a = np.abs(np.asarray(a, np.float64))
    return np.where(np.isfinite(a), a, 0.0)


def local_floor(dtype, leaf_value, outputs, other_max: float):
    """Per-element resolution floor of a leaf [*leaf_shape] (see the module doc), local.

    outputs: [(ct, y)] float64 pairs, one per output leaf. For each output the leaf and y
    share k leading axes (a batch axis, say): the floor of a leaf entry is built from the
    output terms and inputs in its own block of those axes only, so one huge input (|x| = 800)
    or one large output term raises the floor of its own block, not of the whole leaf.
    When the leaf and y have the same shape the last axis is kept coupled (softmax, norms
    mix a row), so blocks are rows. Non-finite terms and inputs are left out (they are
    failures or inconclusive by themselves, never a reason to accept everything).
    other_max: max(1, |x|max) over the other primals' leaves (finite entries).
    """
    leaf_value = np.asarray(leaf_value, np.float64)
    shape = leaf_value.shape
    n_leaf = max(int(np.prod(shape, dtype=np.int64)), 1)
    ax = _finite_abs(leaf_value)
    total = np.zeros(shape)
    for ct, y in outputs:
        t, a = _finite_abs(np.asarray(ct) * np.asarray(y)), _finite_abs(ct)
        k = 0
        while k < min(len(shape), t.ndim) and shape[k] == t.shape[k]:
            k += 1
        if k == len(shape) == t.ndim and k >= 2:
            k -= 1                                        # rows: the last axis stays coupled
        if len(shape) == 1 and k == 1 and t.ndim == 1:
            k = 0                                         # a vector: one block
        pre = shape[:k]
        nb = max(int(np.prod(pre, dtype=np.int64)), 1)
        tb, ab = t.reshape(pre + (-1,)), a.reshape(pre + (-1,))
        xb = ax.reshape(pre + (-1,)).max(axis=-1, initial=0.0)
        big = tb.max(axis=-1, initial=0.0) * tb.shape[-1]        # T · n_out within the block
        inner = ab.sum(axis=-1) * np.maximum(max(1.0, other_max), xb)
        block = (big + inner) / (n_leaf / nb)
        total = total + block.reshape(pre + (1,) * (len(shape) - k))
    return ROUNDINGS * eps(dtype) * total


ROUNDING_ONLY = 0.01     # an entry is the coarse dtype's rounding where |float64| <= this × it


def rounding_floor(pairs, j64, coarse_dtype, judged_dtype):
    """Per entry: ROUNDINGS × eps(judged)/eps(coarse) × max over pairs |coarse - float64|
    (pairs: [(values in the coarse dtype, the same in float64)], the rule's and jax.vjp's; see
    the module doc) at the entries that are rounding in the coarse dtype (|j64| <=
    ROUNDING_ONLY × that difference: a cancelled sum); 0 elsewhere and where non-finite."""
    f = np.asarray(j64, np.float64)
    d = np.zeros(f.shape)
    with np.errstate(invalid="ignore"):
        for c, r in pairs:
            e = np.abs(np.asarray(c, np.float64) - np.asarray(r, np.float64))
            d = np.maximum(d, np.where(np.isfinite(e), e, 0.0))
        cancelled = np.isfinite(f) & (np.abs(f) <= ROUNDING_ONLY * d)
    return ROUNDINGS * eps(judged_dtype) / eps(coarse_dtype) * np.where(cancelled, d, 0.0)


def fd_noise(M: float, t: float, fd_eps: float) -> float:
    """Rounding noise of a central difference quotient (g⁺ - g⁻) / 2t, g known to 16·eps·M."""
    return ROUNDINGS * fd_eps * M / t


def yardstick_allowance(jax_values, oracle, scale, dtype, jax64=None):
    """Per element: 4 × how far autodiff at the hand's precision (`dtype`) is from a float64
    oracle; for float64 only where that is rounding-sized, else 0 (see the module doc).

    jax64: jax.vjp of the same forward run in float64, when the hand ran coarser. The
    float32 distance is then measured against it, not against the oracle being judged
    (a wrong reference must not widen its own tolerance), plus the float64 rule for
    jax64's own distance from the oracle.
    """
    cap64 = YARDSTICK_CAP[np.dtype("float64")]
    if jax64 is not None and YARDSTICK_CAP.get(np.dtype(dtype)) is None:
        d32 = np.abs(np.asarray(jax_values, np.float64) - np.asarray(jax64, np.float64))
        d64 = np.abs(np.asarray(jax64, np.float64) - oracle)
        return YARDSTICK * d32 + np.where(d64 <= cap64 * scale, YARDSTICK * d64, 0.0)
    d = np.abs(np.asarray(jax_values, np.float64) - oracle)
    cap = YARDSTICK_CAP.get(np.dtype(dtype))
    return YARDSTICK * d if cap is None else np.where(d <= cap * scale, YARDSTICK * d, 0.0)


def compare(hand, oracle, rtol_, atol, adjudicate=None, yardstick=None, majority=None):
    """Element-by-element comparison of two same-shaped float64 arrays.

    atol: scalar or per element (local floors). adjudicate(flat_indices) -> Bracket gives per
    element the interval spanned by the one-sided finite differences and its tolerance, and
    joint(flat_indices, hand values) -> (ok, text), the joint test of a set of kink
    acceptances (fnnet.check.kinks). Elements where hand and oracle disagree but both lie
    inside a genuine kink interval (hi - lo > tol) are accepted, provided the set passes joint.
    majority(flat_indices) -> bool per element: the hand-written value agrees with finite
    differences (and any other independent witness) there; such disagreements are the
    oracle's, reported as a warning (status "warn") instead of a failure.
    yardstick: (jax.vjp's values, their dtype[, jax.vjp in float64]), for a float64 oracle
    (see the module doc and yardstick_allowance).
    Non-finite values: a hand-written NaN/inf fails unless the oracle has the identical
    value at that index; an oracle NaN/inf where the hand is finite is a disagreement like
    any other (majority may overrule it). Scales and floors use finite entries only.
    Returns a Comparison.
    """
    hand = np.asarray(hand, np.float64)
    oracle = np.asarray(oracle, np.float64)
    fh, fo = np.isfinite(hand), np.isfinite(oracle)
    same = (hand == oracle) | (np.isnan(hand) & np.isnan(oracle))
    nf_hand = ~fh & ~same                      # a hand-written NaN/inf the oracle does not share
    with np.errstate(invalid="ignore"):
        diff = np.where(fh & fo, np.abs(hand - oracle), 0.0)
    diff = np.where((fh != fo) | nf_hand, np.inf, diff)
    scale = max(float(_finite_abs(hand).max(initial=0.0)), float(_finite_abs(oracle).max(initial=0.0)))
    allowed = rtol_ * scale + np.broadcast_to(np.asarray(atol, np.float64), hand.shape)
    kinks, notes, overruled, at_kink, notes_first = 0, [], [], np.zeros(0, np.int64), None
    flat_diff = diff.reshape(-1).copy()
    bad = np.flatnonzero((flat_diff > allowed.reshape(-1)) & ~nf_hand.reshape(-1))
    if bad.size and adjudicate is not None and bad.size <= MAX_ADJUDICATE:
        adj = adjudicate(bad)
        lo, hi, tol = adj.lo, adj.hi, adj.tol
        h, o = hand.reshape(-1)[bad], oracle.reshape(-1)[bad]
        inside = lambda v: (v >= lo - tol) & (v <= hi + tol)
        accept = (hi - lo > tol) & inside(h) & inside(o)
        at_kink = bad[hi - lo > tol]
        hull = adj.hull
        cand = np.flatnonzero((hi - lo > tol) & ~accept)
        if cand.size and hull is not None:      # several kinks at once (fnnet.check.hull)
            valid = lambda v: inside(v)[cand] | _hull_of(hull, cand, v, inside(v)[cand])
            accept[cand] = valid(h) & valid(o)
        if accept.any() and adj.joint is not None:
            joint_ok, text = adj.joint(bad[accept], h[accept])
            if not joint_ok:
                accept[:] = False
                notes.append(text)
        kinks = int(accept.sum())
        flat_diff[bad[accept]] = 0.0           # accepted at a kink: out of the error statistics
        bad = bad[~accept]
    if yardstick is not None:   # rounding where smooth; never at a kink (conventions differ there)
        yard = yardstick_allowance(yardstick[0], oracle, scale, *yardstick[1:]).reshape(-1)
        yard[at_kink] = 0.0
        allowed = allowed + yard.reshape(hand.shape)
        bad = bad[flat_diff[bad] > allowed.reshape(-1)[bad]]
    if bad.size and majority is not None and bad.size <= MAX_ADJUDICATE:
        agree = np.asarray(majority(bad), bool)
        overruled = bad[agree].tolist()
        flat_diff[bad[agree]] = 0.0
        if overruled:       # the first outvoted element, for the note: index, hand, oracle, FD
            k = int(np.flatnonzero(agree)[0])
            last = getattr(majority, "last", None)
            fd_value = float(last[k]) if last is not None else float("nan")
            i = overruled[0]
            notes_first = (tuple(int(v) for v in np.unravel_index(i, hand.shape)),
                           float(hand.reshape(-1)[i]), float(oracle.reshape(-1)[i]), fd_value)
    diff = flat_diff.reshape(hand.shape)
    res = summarize(diff, scale, allowed, kinks, hand, oracle)
    return dataclasses.replace(res, nonfinite=int((diff == np.inf).sum()), overruled=tuple(overruled),
                               overruled_first=notes_first, notes=tuple(notes))


def _hull_of(hull, cand, values, already):
    """hull(sub, values) on the candidates not already inside their bracket."""
    out = already.copy()
    rest = np.flatnonzero(~already)
    if rest.size:
        out[rest] = hull(cand[rest], values[cand[rest]])
    return out


def summarize(diff, scale, allowed, kinks=0, hand=None, oracle=None):
    """The row's numbers. `allowed` is a scalar or per element; the worst element is the one
    with the largest err / allowed (the largest err when allowed is uniform); actual and
    expected are hand[worst] and oracle[worst] when given. diff may hold +inf (non-finite)."""
    diff = np.asarray(diff, np.float64)
    allowed = np.broadcast_to(np.asarray(allowed, np.float64), diff.shape)
    ok = bool((diff <= allowed).all())
    actual = expected = None
    if diff.size and diff.max() > 0:
        with np.errstate(invalid="ignore"):
            ratio = diff.reshape(-1) / np.maximum(allowed.reshape(-1), 1e-300)
        flat = int(np.argmax(ratio))
        err, tol = float(diff.reshape(-1)[flat]), float(allowed.reshape(-1)[flat])
        worst = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
        if hand is not None:
            actual = float(np.asarray(hand, np.float64).reshape(-1)[flat])
            expected = float(np.asarray(oracle, np.float64).reshape(-1)[flat])
    else:
        err, tol, worst = 0.0, float(allowed.min(initial=np.inf)), None
    with np.errstate(invalid="ignore", divide="ignore"):
        per_element = np.where(diff == 0, 0.0, diff / np.maximum(allowed, 1e-300))
    out = dict(max_abs_err=err, worst_index=worst, ok=ok, kinks=kinks, actual=actual, expected=expected,
               ratio=per_element)
    if scale == 0.0:   # both sides exactly zero everywhere: nothing to scale by, nothing wrong
        return Comparison(rel_err=0.0 if err == 0 else float("inf"), tol=float("nan"), **out)
    return Comparison(rel_err=err / scale, tol=tol / scale, **out)
