"""Several kinks crossed by one coordinate: a value is judged against the hull of nearby slopes.

The one-sided differences of g = <ct, fun> along e_i bracket a correct rule's value when
nudging x_i crosses one kink. When it crosses several at once they need not: in
y_j = max(w·x_j, c_j) with every row at its tie, the rule taking the w·x_j piece of every
row gives dw = Σ_j ct_j x_j, while g's one-sided slopes along w are Σ_j ct_j x_j [x_j > 0]
and Σ_j ct_j x_j [x_j < 0]; in a 3-way tie of sort, equal shares give each tied input the
mean of the three output cotangents, which no single-coordinate slope shows.

A correct rule's value lies in the convex hull of the gradients of the smooth pieces that
meet at x (the Clarke subdifferential; chain-rule conventions pick a point of it per
intermediate). So along a direction v, <h, v> must lie between the smallest and largest
slope along v of any piece, and each output element y_j is a piece of its own: its slopes
are read separately (per output, ct_j ⊙ y_j), at x and at a few points x + δ·r nearby
(r random ±1 over every primal, δ = SPREAD · step, so that ties split every way while a
difference of step t stays inside one piece):

    L(v) = Σ_j min over points and sides of slope_j(v),   U(v) = Σ_j max of the same

and <h, v> ∈ [L(v) - tol, U(v) + tol] is required along every tested v: each rejected
coordinate e_i, and the joint directions s ⊙ w and s over the group (s = sign(h), w
uniform in [0.5, 1.5]), which catch a group whose members each look possible but not
together (every tied input given the whole group's cotangent). Only elements at a genuine
kink (the one-sided differences apart) whose value failed the per-coordinate bracket are
tested here; the result replaces that rejection, never a smooth element's comparison.
"""
from __future__ import annotations

import numpy as np

SPREAD = 30.0     # nearby points at δ = SPREAD · t from x
POINTS = 8        # nearby points besides x itself
MAX_GROUP = 32    # at most this many rejected elements are re-judged (the rest stay rejected)


def within_hull(fd, flat_idx, h, tol, rng):
    """Per element of flat_idx (flat indices into all primals, hand values h, tolerances
    tol): does h hold up against the hull bounds along its coordinate and, jointly, along
    the group's directions? Returns a bool array (all False past MAX_GROUP)."""
    flat_idx = np.asarray(flat_idx, np.int64).reshape(-1)
    h, tol = np.asarray(h, np.float64).reshape(-1), np.asarray(tol, np.float64).reshape(-1)
    ok = np.zeros(flat_idx.size, bool)
    if not flat_idx.size:
        return ok
    sel = np.arange(min(flat_idx.size, MAX_GROUP))
    idx, hv, tv = flat_idx[sel], h[sel], tol[sel]
    x0, P = fd.flat0, fd.flat0.size
    scale = np.maximum(1.0, np.abs(x0))
    t = fd.step
    dirs = []
    for k, i in enumerate(idx):                       # each coordinate alone
        v = np.zeros(P)
        v[i] = scale[i]
        dirs.append(v)
    s = np.where(hv < 0, -1.0, 1.0)
    if idx.size > 1:                                  # the group together
        for u in (s * rng.uniform(0.5, 1.5, idx.size), s):
            v = np.zeros(P)
            v[idx] = u * scale[idx]
            dirs.append(v)
    dirs = np.stack(dirs)
    centers = np.concatenate([x0[None], x0[None] + SPREAD * t * scale[None] * rng.choice((-1.0, 1.0), (POINTS, P))])
    rows = [centers]
    for c in centers:
        rows += [c[None] + t * dirs, c[None] - t * dirs]
    terms = fd.terms_at(np.concatenate(rows))
    n_c, n_d = len(centers), len(dirs)
    base, rest = terms[:n_c], terms[n_c:].reshape(n_c, 2, n_d, -1)
    fwd = (rest[:, 0] - base[:, None]) / t               # [points, directions, outputs]
    bwd = (base[:, None] - rest[:, 1]) / t
    slopes = np.concatenate([fwd, bwd])                  # every piece seen, per output
    with np.errstate(invalid="ignore"):
        lo = np.nanmin(slopes, axis=0).sum(-1)           # [directions]
        hi = np.nanmax(slopes, axis=0).sum(-1)
    noise = 4 * fd.noise(t)
    pred = dirs[:, idx] @ hv
    allowed = np.abs(dirs[:, idx]) @ tv + noise
    inside = (pred >= lo - allowed) & (pred <= hi + allowed)
    ok[sel] = inside[:idx.size] & (inside[idx.size:].all() if idx.size > 1 else True)
    return ok
