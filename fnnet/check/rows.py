"""The rows of a check: verdicts and notes from the comparisons (compare, fdcompare)."""
from __future__ import annotations

import numpy as np

from fnnet.check import independence
from fnnet.check.fdcompare import BISECT_ABOVE, bisect_blocks, compare_directional, compare_per_element
from fnnet.check.report import Row, value_text
from fnnet.check.verdict import Evidence, decide

_UNRESOLVED = ("inconclusive: the whole leaf is below what float64 differences resolve "
               "(tol > 1); the other oracles judge it")


def _at(shape, flat):
    return tuple(int(i) for i in np.unravel_index(int(flat), shape))


def majority_fn(adjudicate, h, other, rt, floor, oracle):
    """majority(bad flat indices) -> bool per element: the oracle (jax.vjp) disagrees with the
    finite differences there, while the hand-written value agrees with them (inside a genuine
    kink interval counts) and with `other`, the remaining independent witness (None: none).
    An oracle that agrees with the differences is outvoted only where autodiff's own derivative
    jumps (adjudicate's "jumps"): elsewhere a disagreement below the differences' resolution
    stays the hand-written rule's failure."""
    hf = np.asarray(h, np.float64).reshape(-1)
    jf = np.asarray(oracle, np.float64).reshape(-1)
    of = None if other is None else np.asarray(other, np.float64).reshape(-1)

    def leaf_scale(c, spread):
        return max(float(np.abs(hf[np.isfinite(hf)]).max(initial=0.0)),
                   float(np.abs(c[np.isfinite(c)]).max(initial=0.0)),
                   float(spread[np.isfinite(spread)].max(initial=0.0)))

    def majority(bad):
        a = adjudicate(bad)
        hv, jv, c, lo, hi, tol = hf[bad], jf[bad], a.central, a.lo, a.hi, a.tol
        with np.errstate(invalid="ignore"):
            agrees = lambda v: np.isfinite(v) & np.isfinite(c) & (
                (np.abs(v - c) <= tol) | ((hi - lo > tol) & (v >= lo - tol) & (v <= hi + tol)))
            fd_ok = agrees(hv) & ~agrees(jv)        # a NaN from the oracle agrees with nothing
            # only where the differences resolve the leaf (their tolerance <= 10% of its scale):
            # an unresolved leaf agrees with anything. Per leaf, not per element: an element
            # whose value is 0 or whose cotangent is tiny is never resolved "to 10% of itself",
            # yet an oracle off there by more than the differences' tolerance is off all the same
            fd_ok &= tol <= 0.1 * leaf_scale(c, hi - lo)
            # Where both lie within the differences' tolerance, they cannot tell the two apart;
            # but at a point where autodiff's own derivative jumps (its value there is a
            # convention of a kink or a guard, fnnet.check.smoothness) its disagreement
            # with a rule that agrees with the differences is no evidence against the rule
            tied = np.flatnonzero(agrees(hv) & agrees(jv) & (hv != jv))
            if tied.size and a.jumps is not None:
                fd_ok[tied] = np.asarray(a.jumps(tied), bool)
            if of is not None:
                scale = float(np.abs(hf[np.isfinite(hf)]).max(initial=0.0))
                fl = np.broadcast_to(np.asarray(floor, np.float64), h.shape).reshape(-1)[bad]
                fd_ok &= np.abs(hv - of[bad]) <= rt * scale + fl
        majority.last = c          # the central differences at bad, for compare's note
        return fd_ok
    majority.last = None
    return majority


def oracle_row(name, oracle, kind, res, independent, rules, shape=None, hand=None, other=None):
    """Row of the hand-written leaf vs jax.vjp or the reference (compare's Comparison)."""
    notes = list(res.notes)
    status = decide(Evidence(independent=independent, within_tolerance=res.ok, outvoted=len(res.overruled)))
    if res.overruled:
        at, hv, ov, cv = res.overruled_first or (res.overruled[0], np.nan, np.nan, np.nan)
        notes.append(f"{oracle} disagrees with finite differences at {len(res.overruled)} element(s) "
                     f"(first {at}: {oracle} {value_text(ov)}, finite differences {value_text(cv)}, "
                     f"hand-written {value_text(hv)}) where the hand-written value agrees with them (and with any "
                     f"other independent witness): autodiff at a kink or of a non-smooth primitive "
                     f"(a max/min tie, sqrt at 0, a numerically stable rewrite)" +
                     ("; the hand-written rule passes, outvoted oracle shown as a warning" if res.ok else
                      "; outvoted there, but the rule fails elsewhere on this row (see its worst index)"))
    if res.nonfinite and res.worst_index is not None:
        a, e = res.actual, res.expected
        side = "hand-written" if not np.isfinite(a) else oracle
        notes.append(f"non-finite: {side} is {value_text(a if side == 'hand-written' else e)} at "
                     f"{res.worst_index} (hand-written {value_text(a)}, {oracle} {value_text(e)}); "
                     f"{res.nonfinite} non-finite disagreement(s)")
    if not independent:
        notes.insert(0, independence.note(rules) + ("" if res.ok else
                     "; it differs from the vjp given here, so that vjp is not the rule inside fun"))
    return Row(name, oracle, kind, status, res.max_abs_err, res.rel_err, res.worst_index,
               res.tol, res.kinks, "; ".join(notes), res.actual, res.expected, ratio=res.ratio)


def _row(name, oracle, res, notes):
    return Row(name, oracle, "fd", decide(Evidence(within_tolerance=res.ok)), res.max_abs_err, res.rel_err,
               res.worst_index, res.tol, res.kinks, "; ".join(n for n in notes if n), res.actual, res.expected,
               ratio=res.ratio)


def fd_row(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype, full, directions, block, localize_max, rng,
           independent):
    """Row of the hand-written leaf vs the finite differences: per element or directional,
    localized per element (on the failing blocks, else the whole leaf) when a direction fails."""
    def nonfinite_note(res):
        if not res.nonfinite:
            return ""
        return (f"non-finite: hand-written is {value_text(res.actual)} at {res.worst_index} "
                f"(finite differences {value_text(res.expected)}); {res.nonfinite} such entr"
                f"{'y' if res.nonfinite == 1 else 'ies'}")

    per_element = lambda subset=None: compare_per_element(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype,
                                                          rng, subset, independent)
    if full:
        res = per_element()
        return _row(leaf.name, "finite diff (per element)", res,
                    [_UNRESOLVED if res.ok and res.tol > 1 else "", nonfinite_note(res), *res.notes])
    res = compare_directional(fd, leaf, h, j, rt_fd, atol, directions, rng, dtype, block, independent)
    n_blocks = 0 if block is None else -(-leaf.size // block)
    label = (f"finite diff ({directions} directions)" if not n_blocks else
             f"finite diff ({directions} dirs + {n_blocks} blocks of {block})")
    if res.ok:
        return _row(leaf.name, label, res, [_UNRESOLVED if res.tol > 1 else "", *res.notes])
    if res.nonfinite:
        return _row(leaf.name, label, res, [nonfinite_note(res)])
    what = f"{len(res.failing)} of the directions failed: rel err {res.rel_err:.2g} > tol {res.tol:.2g}"
    failing_blocks = [b for b in res.blocks if b is not None]
    subset = np.unique(np.concatenate(failing_blocks)) if failing_blocks else None
    bisected = ""
    if subset is not None and subset.size > BISECT_ABOVE:
        subset, bisected = bisect_blocks(fd, leaf, h, rt_fd, atol, res)
    n_sub = leaf.size if subset is None else subset.size
    if subset is None and leaf.size > localize_max:
        return _row(leaf.name, label, res,
                    [f"{what}; the leaf ({leaf.size} elements) is too large to localize per element "
                     f"(localize_max={localize_max}); the jax.vjp row has the index, or pass mode='full'"])
    local = per_element(subset)
    where = ("on the failing blocks" + (f" ({bisected})" if bisected else "")) if subset is not None else "over the leaf"
    note = (f"{what}; per element {where} ({n_sub} differences) localizes it" if not local.ok else
            f"{what}, but per element {where} every entry agrees: the directions crossed several kinks at once")
    return _row(leaf.name, "finite diff (per element)", local, [note, nonfinite_note(local), *local.notes])
