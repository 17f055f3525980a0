"""Kink acceptances must hold jointly: a tie group cannot give the full cotangent to every member.

Element by element, a value between the one-sided differences of a kink is a possible
derivative (relu'(0) = 0 or 1, the gradient of a max going to one tied element). But a
max-pool backward that gives *every* tied element the full cotangent passes that test
element by element, while the window's sum is k·ct, which no subgradient allows. So the
elements accepted at kinks are tested together, along directions that move them at once:
for a function made, near the point, of convex or concave kinked pieces plus a smooth part
(max/min/relu/abs/clip/pooling/ties compose this way), a convex piece f_k and any h_k in
its subdifferential satisfy, for any direction v and step t (convexity: secants bound the
directional derivative, which bounds <h_k, v>),

    (f_k(x) - f_k(x - t·v)) / t  <=  <h_k, v>  <=  (f_k(x + t·v) - f_k(x)) / t

and a concave piece the same with the two secants swapped. Summed over pieces of one kind
these bounds hold for g itself, so the accepted elements are split by kind, read from their
own one-sided differences (forward > backward: convex, e.g. a max with ct > 0; else
concave), and each kind is tested on its own: mixing kinds would void the bound, since a
convex piece can sit at its upper secant while a concave one sits at its lower. This holds
for inputs within a step of a kink too (secants, not derivatives, are compared).
The directions are s ⊙ w and s, with s = sign(h) (so the excess of
every wrongly-duplicated tie adds up instead of cancelling) and w uniform in [0.5, 1.5],
over chunks of at most CHUNK accepted elements (a large set still sees one bad window),
each scaled like the per-element steps, v_i · max(1, |x_i|). Tolerance: the sum of the
per-element tolerances along v, plus JOINT_RTOL · Σ|h_i v_i| for the curvature the one-
sided quotients carry, plus the quotients' rounding noise.
"""
from __future__ import annotations

import collections

import numpy as np

CHUNK = 64
JOINT_RTOL = 10.0   # times the finite-difference rtol of the leaf


def joint_test(fd, offset, idx, h, tol_elem, rt_fd, rng, keep_order=False):
    """(ok, note): do the hand-written values h at leaf indices idx (all accepted at kinks)
    respect the one-sided bounds jointly? tol_elem: each element's own tolerance.
    keep_order: chunk in the order given (across_leaves pairs elements of different leaves)
    instead of by index."""
    idx, h, tol_elem = (np.asarray(a).reshape(-1) for a in (idx, h, tol_elem))
    if idx.size < 2:
        return True, ""
    key = (offset, idx.tobytes(), h.tobytes(), keep_order)
    memo = fd.__dict__.setdefault("_joint", {})
    if key in memo:
        return memo[key]
    order = np.arange(idx.size) if keep_order else np.argsort(idx)
    idx, h, tol_elem = idx[order], h[order], tol_elem[order]
    _, fwd_e, bwd_e, _ = fd.per_element(offset + idx)
    convex = fwd_e > bwd_e
    x = fd.flat0[offset + idx]
    s = np.where(h < 0, -1.0, 1.0)
    dirs, parts = [], []
    for kind in (convex, ~convex):
        members = np.flatnonzero(kind)
        for a in range(0, members.size, CHUNK):
            sl = members[a:a + CHUNK]
            if sl.size < 2:
                continue
            for u in (s[sl] * rng.uniform(0.5, 1.5, sl.size), s[sl]):
                v = np.zeros(fd.flat0.size)
                v[offset + idx[sl]] = u * np.maximum(1.0, np.abs(x[sl]))
                dirs.append(v)
                parts.append(sl)
    if not dirs:
        memo[key] = (True, "")
        return memo[key]
    res = fd.along(np.stack(dirs))
    noise = fd.noise(res.t)
    out = (True, "")
    for k, sl in enumerate(parts):
        vc = res.vc[k, offset + idx[sl]]
        pred = float(vc @ h[sl])
        fwd, bwd = float(res.forward[k]), float(res.backward[k])
        lo, hi = min(fwd, bwd), max(fwd, bwd)
        tol = (float(np.abs(vc) @ tol_elem[sl]) + JOINT_RTOL * rt_fd * (float(np.abs(vc) @ np.abs(h[sl]))
               + max(abs(fwd), abs(bwd))) + 4 * noise)
        if not (lo - tol <= pred <= hi + tol):
            n = idx[sl].size
            out = (False, f"the {idx.size} elements accepted at kinks are not jointly a subgradient: "
                          f"moving {n} of them together (leaf flat indices {idx[sl][:6].tolist()}"
                          f"{'...' if n > 6 else ''}), <hand, v> = {pred:.4g} but the one-sided "
                          f"differences allow only [{lo:.4g}, {hi:.4g}] (±{tol:.2g}); e.g. tied "
                          f"elements each given the full cotangent")
            break
    memo[key] = out
    return out


def across_leaves(fd, parts, rt_fd, rng):
    """The joint test over the kink acceptances of several leaves at once: two primals tied
    in maximum(a, b) may each take the full cotangent by themselves (a subgradient of either
    alone) but not both together. parts: [(leaf offset, leaf flat indices, hand values, their
    tolerances)], at least two leaves with acceptances. Elements are interleaved by their
    position within their leaf (a[i] beside b[i]: same-shaped primals tied element by
    element land in one chunk). Returns joint_test's (ok, note)."""
    gidx = np.concatenate([off + np.asarray(i, np.int64) for off, i, _, _ in parts])
    local = np.concatenate([np.asarray(i, np.int64) for _, i, _, _ in parts])
    which = np.concatenate([np.full(len(i), k) for k, (_, i, _, _) in enumerate(parts)])
    h = np.concatenate([np.asarray(v, np.float64) for _, _, v, _ in parts])
    tol = np.concatenate([np.asarray(t, np.float64) for _, _, _, t in parts])
    order = np.lexsort((which, local))
    return joint_test(fd, 0, gidx[order], h[order], tol[order], rt_fd, rng, keep_order=True)


def cross_primal_row(fd, checked, rng):
    """A failed Row when the kink acceptances of different leaves are not jointly a
    subgradient (across_leaves), else None. checked: [(leaf, hand [leaf.shape], rt_fd,
    floor)] for the leaves compared per element; a leaf's elements at a genuine kink
    (one-sided differences apart) with the hand value between them take part, jointly with
    the elements at the same position of same-shaped leaves (elementwise ties between
    primals); kinks of leaves of other shapes are unrelated pieces (a network's layers),
    whose joint directions would cross several kinks of mixed kinds at once."""
    from fnnet.check.report import Row
    from fnnet.check.verdict import Status
    by_shape = {}
    for leaf, h, rt_fd, floor in checked:
        idx = np.arange(leaf.size)
        c, f, b, tmin = fd.per_element(leaf.offset + idx)
        hv = np.asarray(h, np.float64).reshape(-1)
        fin = np.isfinite(hv) & np.isfinite(c)
        scale = max(float(np.abs(hv[fin]).max(initial=0.0)), float(np.abs(c[fin]).max(initial=0.0)))
        tol = (rt_fd * scale + np.broadcast_to(np.asarray(floor, np.float64), leaf.shape).reshape(-1)
               + 3 * fd.noise(tmin))
        lo, hi = np.minimum(f, b), np.maximum(f, b)
        with np.errstate(invalid="ignore"):
            at = fin & (hi - lo > tol) & (hv >= lo - tol) & (hv <= hi + tol)
        if at.any():
            by_shape.setdefault(leaf.shape, []).append((leaf.name, leaf.offset, idx[at], hv[at], tol[at]))
    rt = max([r for _, _, r, _ in checked], default=0.0)
    for group in by_shape.values():
        # elements at the same position of same-shaped leaves (a[i] and b[i] of maximum(a, b)):
        # moving them together crosses their shared tie, not unrelated kinks of other shapes
        counts = collections.Counter(i for *_, idx, _, _ in group for i in idx.tolist())
        shared = {i for i, c in counts.items() if c >= 2}
        parts, names = [], []
        for name, off, idx, hv, tol in group:
            keep = np.isin(idx, list(shared))
            if keep.any():
                parts.append((off, idx[keep], hv[keep], tol[keep]))
                names.append(name)
        if len(parts) < 2:
            continue
        ok, text = across_leaves(fd, parts, rt, rng)
        if not ok:
            return Row(names[0], f"finite diff (kinks of {', '.join(names)} jointly)", "fd", Status.FAIL,
                       note=f"across primals: {text}")
    return None
