"""A hand-written leaf compared with the float64 finite differences (fnnet.check.fd).

Per element: one central difference per element; kinks judged by the one-sided differences
(jointly: fnnet.check.kinks), then the autodiff yardstick for what is left (only when
jax.vjp is an independent witness). Directional: <hand, v> against the difference quotient
along random directions and along block directions of stated power (fnnet.check.fd).
Non-finite: a hand-written NaN/inf fails unless the differences have the identical value;
where the differences themselves are NaN/inf (fun non-finite within a step) the element
is "undefined" for this row, counted in its note, and the other witnesses judge it.
"""
from __future__ import annotations

import numpy as np

import dataclasses

from fnnet.check.compare import Comparison, summarize, yardstick_allowance
from fnnet.check.hull import within_hull
from fnnet.check.kinks import joint_test
from fnnet.check.smoothness import derivative_jumps

MAX_BLOCKS = 256     # block directions per leaf at most (the block grows past that)


def block_size(size, rt_fd, detect):
    """Elements per block direction so that a single entry off by `detect` (relative to the
    leaf scale) is always caught: detect / rt_fd, grown to keep <= MAX_BLOCKS blocks."""
    if detect is None:
        return None
    b = max(1, int(detect / rt_fd))
    return int(max(b, -(-size // MAX_BLOCKS)))


def _finite_max(*arrays):
    return max([0.0] + [float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) for a in arrays])


def _yard(j, c, scale, dtype, independent):
    if not independent:
        return 0.0
    y = yardstick_allowance(j, c, scale, dtype)
    return np.where(np.isfinite(y), y, 0.0)


def compare_per_element(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype, rng, subset=None,
                        independent=True):
    """Per-element comparison of hand h [leaf.shape] with central differences (see module doc).

    subset: leaf flat indices to compare (default all); jax_allowed: how far h may be from
    jax.vjp's j and still count as agreeing (ignored when jax.vjp is not independent)."""
    sub = np.arange(leaf.size) if subset is None else np.unique(np.asarray(subset, np.int64))
    c, f, b, tmin = fd.per_element(leaf.offset + sub)
    h_all = np.asarray(h, np.float64).reshape(-1)
    hs, js = h_all[sub], np.asarray(j, np.float64).reshape(-1)[sub]
    atol_s = np.broadcast_to(np.asarray(atol, np.float64), leaf.shape).reshape(-1)[sub]
    noise = fd.noise(tmin)
    fh, fc = np.isfinite(hs), np.isfinite(c) & np.isfinite(f) & np.isfinite(b)
    same = (hs == c) | (np.isnan(hs) & np.isnan(c))
    undefined = ~fc & ~same                         # the differences cannot judge these
    scale = _finite_max(h_all, c)
    allowed = rt_fd * scale + atol_s + noise
    with np.errstate(invalid="ignore"):
        diff = np.where(fh & fc, np.abs(hs - c), 0.0)
    diff = np.where(~fh & fc, np.inf, diff)         # a hand-written NaN/inf: always a failure
    tol1 = allowed + 2 * noise                      # one-sided quotients carry twice the noise
    lo, hi = np.minimum(f, b), np.maximum(f, b)
    # the yardstick measures rounding where the function is smooth; at a kink jax's distance
    # from the central difference is its convention, not rounding: the kink rules decide there
    yard = np.where(hi - lo > tol1, 0.0, _yard(js, np.where(fc, c, 0.0), scale, dtype, independent))
    live = fh & fc
    kink = live & (diff > allowed) & (hi - lo > tol1)   # the one-sided slopes really differ
    inside = kink & (hs >= lo - tol1) & (hs <= hi + tol1)
    # Several kinks crossed at once (a zero input row feeding many relus, a chain of units all
    # at 0) can put even a correct rule outside [backward, forward], or make the composite
    # smooth while the chain rule's conventions (relu'(0) = 0) give another value. There FD
    # cannot judge the rule: where the hand-written value equals autodiff of the same forward
    # (an independent one) and the point is non-smooth (one-sided slopes differ, or autodiff's
    # derivative jumps right beside it), the element is accepted at a kink.
    with np.errstate(invalid="ignore"):
        agree = (live & (diff > allowed) & ~inside & independent & np.isfinite(js)
                 & (np.abs(hs - js) <= jax_allowed))
    accepted = inside | (agree & kink)
    rest = np.flatnonzero(agree & ~kink & (diff > allowed + yard))
    if rest.size:
        accepted[rest] = derivative_jumps(fd, leaf.offset + sub[rest], tol1[rest])
    crossed = np.flatnonzero(kink & ~accepted)       # outside the bracket: several kinks at once?
    if crossed.size:
        accepted[crossed] = within_hull(fd, leaf.offset + sub[crossed], hs[crossed], tol1[crossed], rng)
    notes = []
    # a smooth function whose step is coarse for its curvature also has one-sided slopes apart,
    # by g''·t: proportional to the step at t/2 and t/4 alike. A kink's spread is the jump, or
    # J·(1 - d/t) for a kink at distance d < t, never proportional at both. Such elements are
    # still accepted (they lie within what the step resolves) but are not called kinks
    smooth = np.zeros_like(inside)
    if inside.any():
        at = np.flatnonzero(inside)
        spread = (hi - lo)[at]
        smooth[at] = True
        for frac in (0.5, 0.25):
            s_ = np.abs(fd.spread_at(leaf.offset + sub[at], frac))
            slack = 0.1 * spread + 4 * fd.noise(frac * tmin)
            smooth[at] &= np.isfinite(s_) & (np.abs(s_ - frac * spread) <= slack)
        if smooth.any():
            notes.append(f"{int(smooth.sum())} element(s) accepted between the one-sided differences of a "
                         f"smooth function (their spread halves with the step: curvature, not a kink); "
                         f"the step is coarse there, pass a smaller step= to judge them more closely")
    kinked = inside & ~smooth
    if kinked.sum() >= 2:
        ok, text = joint_test(fd, leaf.offset, sub[kinked], hs[kinked], tol1[kinked], rt_fd, rng)
        if not ok:
            accepted &= ~kinked
            notes.append(text)
    diff[accepted | undefined] = 0.0
    full = lambda v, fill: _scatter(leaf, sub, v, fill)
    res = summarize(full(diff, 0.0), scale, full(allowed + yard, 1.0), int((accepted & ~smooth).sum()),
                    h, full(c, np.nan))
    if undefined.any():
        first = tuple(int(i) for i in np.unravel_index(sub[np.flatnonzero(undefined)[0]], leaf.shape))
        notes.append(f"finite differences are non-finite at {int(undefined.sum())} element(s) (first "
                     f"{first}): fun is NaN/inf within a step there; the other witnesses judge them")
    return dataclasses.replace(res, notes=tuple(notes), nonfinite=int((~fh & fc).sum()))


def _scatter(leaf, sub, values, fill):
    out = np.full(leaf.size, fill, np.float64)
    out[sub] = values
    return out.reshape(leaf.shape)


def compare_directional(fd, leaf, h, j, rt_fd, atol, directions, rng, dtype, block=None,
                        independent=True):
    """<hand, v> vs (g(x+tv) - g(x-tv))/2t for random and block directions v; scale
    Σ|hand_i·v_i| per direction. Returns the row's dict plus `failing` (direction numbers)
    and `blocks` (the failing block directions' leaf indices, None for random ones)."""
    d = fd.directional(leaf.offset, leaf.size, directions, rng, block)
    hf, jf = np.asarray(h, np.float64).reshape(-1), np.asarray(j, np.float64).reshape(-1)
    bad_h = np.flatnonzero(~np.isfinite(hf))
    if bad_h.size:      # a hand-written NaN/inf: no direction can use it; name the first one
        i = int(bad_h[0])
        c = fd.per_element([leaf.offset + i])[0]
        return Comparison(ok=False, max_abs_err=np.inf, rel_err=np.inf, tol=np.nan,
                          worst_index=tuple(int(k) for k in np.unravel_index(i, leaf.shape)),
                          actual=float(hf[i]), expected=float(c[0]), nonfinite=int(bad_h.size))
    pred = d.dot(hf)
    fin = np.isfinite(d.central) & np.isfinite(d.forward) & np.isfinite(d.backward)
    central = np.where(fin, d.central, 0.0)
    scale = np.maximum.reduce([d.dot(np.abs(hf), absolute=True),
                               d.dot(np.abs(np.nan_to_num(jf)), absolute=True), np.abs(central)])
    noise = fd.noise(d.t)
    atol_f = np.broadcast_to(np.asarray(atol, np.float64), leaf.shape).reshape(-1)
    allowed = rt_fd * scale + d.dot(atol_f, absolute=True) + noise
    diff = np.where(fin, np.abs(pred - central), 0.0)
    tol1 = allowed + 2 * noise
    lo, hi = np.minimum(d.forward, d.backward), np.maximum(d.forward, d.backward)
    kink = fin & (diff > allowed) & (hi - lo > tol1) & (pred >= lo - tol1) & (pred <= hi + tol1)
    diff = np.where(kink, 0.0, diff)
    if independent:     # not along directions that cross a kink (see compare_per_element)
        allowed = allowed + np.where(hi - lo > tol1, 0.0,
                                     _yard(d.dot(np.nan_to_num(jf)), central, scale, dtype, True))
    k = int(np.argmax(diff / np.maximum(allowed, 1e-300)))
    s = max(float(scale[k]), 1e-300)
    failing = np.flatnonzero(diff > allowed).tolist()
    notes = ([f"the difference quotient is non-finite along {int((~fin).sum())} direction(s): "
              f"fun is NaN/inf within a step; the other witnesses judge"] if not fin.all() else [])
    return Comparison(ok=not failing, max_abs_err=float(diff[k]), rel_err=float(diff[k]) / s,
                      tol=float(allowed[k]) / s, kinks=int(kink.sum()), direction=k, actual=float(pred[k]),
                      expected=float(d.central[k]), failing=tuple(failing),
                      blocks=tuple(d.blocks[i] for i in failing), notes=tuple(notes), undefined=int((~fin).sum()))


BISECT_ABOVE = 2048    # failing blocks with more elements than this in all are bisected first
BISECT_BLOCKS = 8      # at most this many failing blocks are bisected (the worst first)
BISECT_LEAF = 16       # a group this small goes to per-element differences


def bisect_blocks(fd, leaf, h, rt_fd, atol, res):
    """Leaf indices to compare per element after block directions failed (res:
    compare_directional's Comparison): each failing block (at most BISECT_BLOCKS, the worst first) is split in halves, the
    halves re-tested as directions of their own (the block's values, 0 elsewhere), and only
    failing halves are split again, down to BISECT_LEAF elements. A wrong entry costs about
    4·log2(block) evaluations instead of two per element of the block. A block whose halves
    both pass (errors that cancel between them) is kept whole. Returns (indices, note)."""
    d = fd.directional(leaf.offset, leaf.size, 0, None)
    hf = np.asarray(h, np.float64).reshape(-1)
    atol_f = np.broadcast_to(np.asarray(atol, np.float64), leaf.shape).reshape(-1)
    failing = [k for k in res.failing if d.blocks[k] is not None]
    pred = d.dot(hf)
    failing.sort(key=lambda k: -abs(float(pred[k]) - float(d.central[k])))
    chosen = failing[:BISECT_BLOCKS]
    groups, found = [np.asarray(d.blocks[k]) for k in chosen], []
    vc_of = {}                                  # leaf index -> its value in its block direction
    for k in chosen:
        vc_of.update(zip(*(a.tolist() for a in d.block_vc(k))))
    while groups:
        found += [g for g in groups if g.size <= BISECT_LEAF]
        big = [g for g in groups if g.size > BISECT_LEAF]
        if not big:
            break
        halves = [h_ for g in big for h_ in (g[:g.size // 2], g[g.size // 2:])]
        v = np.zeros(leaf.size)
        for g in halves:
            v[g] = [vc_of[i] for i in g.tolist()]
        q = fd.along_groups(leaf.offset, leaf.size, halves, v)     # the halves are disjoint
        noise = fd.noise(q.t)
        fails = []
        for r, g in enumerate(halves):
            vc = q.vc[g]
            pred = float(vc @ hf[g])
            fwd, bwd = float(q.forward[r]), float(q.backward[r])
            central = 0.5 * (fwd + bwd)
            allowed = (rt_fd * max(float(np.abs(vc) @ np.abs(hf[g])), abs(central))
                       + float(np.abs(vc) @ atol_f[g]) + noise)
            kink = abs(fwd - bwd) > allowed + 2 * noise and (
                min(fwd, bwd) - allowed - 2 * noise <= pred <= max(fwd, bwd) + allowed + 2 * noise)
            fails.append(abs(pred - central) > allowed and not kink)
        groups = []
        for p_, g in enumerate(big):
            a, b = fails[2 * p_], fails[2 * p_ + 1]
            if a or b:
                groups += [h_ for h_, f in ((halves[2 * p_], a), (halves[2 * p_ + 1], b)) if f]
            else:
                found.append(g)                 # the errors cancel between the halves: keep it whole
    idx = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    note = (f"bisected {len(chosen)} of the {len(failing)} failing blocks" if len(failing) > len(chosen)
            else f"bisected the {len(failing)} failing block(s)")
    return idx, note
