"""Finite differences in float64 for fnnet.check: no derivative code at all.

The scalar probed is g(p) = <ct, fun(*p)> (so its gradient is the vjp with cotangent ct),
evaluated in float64 on the primals cast up, under `jax.enable_x64(True)` so that it
works whether or not the user enabled x64. All primal leaves are flattened into one
float64 vector `flat` [P]; g is jitted once, over a batch of points:

    rows(points [B, P]) -> g at B points           (one heavy compilation)
    points(flat, idx [B], val [B]) -> B copies of flat, copy b with flat[idx_b] = val_b

Per-element mode builds the points in NumPy (small P) or on the device with `points`
(large P); directional mode and the bisection of failing blocks build them on the device
from leaf-sized vectors (`_slice_rows`, `_block_rows`), never as [directions, P] host rows.
B is fixed per checker (chunks padded), so each compiles once; the work of all leaves
is gathered first (`prefetch`) so that padding is paid once, not per leaf.

Per element i the step is t_i = step · max(1, |x_i|); the perturbed value x ± t_i is
formed in float64 and the step actually taken, (x + t_i) - x, is what we divide by.
Per element we keep the central difference and both one-sided ones (forward
(g(x+t) - g(x))/t and backward (g(x) - g(x-t))/t), whose interval brackets any
derivative a correct rule may report at a kink.
A direction u (standard normal) is scaled elementwise the same way, v_i = u_i·max(1, |x_i|).
"""
from __future__ import annotations

import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check.compare import eps, fd_noise
from fnnet.check.inputs import to_device
from fnnet.check.xla import JIT_OPTIONS

MAX_BATCH_ELEMENTS = 1 << 22   # B · P float64 values per chunk (32 MiB)
SMALL_P = 4096                 # per-element points built in NumPy up to this many elements
# B copies of flat, copy b with flat[idx_b] = val_b: an exact select, shared by all checkers.
_points = jax.jit(jax.vmap(lambda flat, i, v: jnp.where(jnp.arange(flat.shape[0]) == i, v, flat),
                           in_axes=(None, 0, 0)))
# The same for whole leaf slices: copy r is flat with flat[offset:offset+size] = rows[r].
# These select kernels (and _points) compile in milliseconds at XLA's default optimization and
# run ~6x faster there than at level 0 (~5 ms against ~30 ms for 45 points of a 300 x 300 weight).
_slice_rows = jax.jit(jax.vmap(lambda flat, offset, row: jax.lax.dynamic_update_slice(flat, row, (offset,)),
                               in_axes=(None, None, 0)))
# One point per block id: the leaf slice is `values` where block_of == id, x elsewhere (id -1: x).
_block_rows = jax.jit(jax.vmap(lambda flat, offset, x, values, block_of, i: jax.lax.dynamic_update_slice(
    flat, jnp.where(block_of == i, values, x), (offset,)), in_axes=(None, None, None, None, None, 0)))
# Jitted g per (cache_key, primal/cotangent layout): fnnet's wrappers pass a key naming a pure
# fun (a hashable layer, loss or network), so the float32 and float64 checks of one primitive,
# or repeated checks, share one compilation.
_G_CACHE = collections.OrderedDict()
_G_CACHE_SIZE = 64


class FiniteDifferences:
    """float64 differences of g = <ct, fun(*primals)> over the flattened primals."""

    def __init__(self, fun, primals, cotangent, step=1e-6, cache_key=None, options=JIT_OPTIONS, autodiff_fun=None):
        self.step = float(step)
        leaves, tree = jax.tree.flatten(primals)
        shapes = [tuple(np.shape(l)) for l in leaves]
        bounds = np.cumsum([0] + [int(np.prod(sh, dtype=np.int64)) for sh in shapes])
        self.flat0 = np.concatenate([np.asarray(l, np.float64).reshape(-1) for l in leaves])

        def unravel(flat):
            parts = [flat[a:b].reshape(sh) for a, b, sh in zip(bounds[:-1], bounds[1:], shapes)]
            return jax.tree.unflatten(tree, parts)

        with jax.enable_x64(True):
            # a float0 cotangent (integer output leaf) contributes nothing to g
            self.ct64 = jax.tree.map(lambda a: to_device(np.zeros(np.shape(a)) if a.dtype == jax.dtypes.float0
                                                         else a, np.float64), cotangent)
            out = jax.eval_shape(lambda f: fun(*unravel(f)), jax.ShapeDtypeStruct(self.flat0.shape, jnp.float64))
        self.out_dtypes = {np.dtype(l.dtype) for l in jax.tree.leaves(out) if jnp.issubdtype(l.dtype, jnp.floating)}
        # A fun that casts to float32 inside cannot give float64 differences: use its eps.
        self.fd_eps = max((eps(d) for d in self.out_dtypes), default=eps(np.float64))
        self.batch = int(max(1, min(256, MAX_BATCH_ELEMENTS // self.flat0.size)))

        def g(flat, ct):
            y = fun(*unravel(flat))
            terms = jax.tree.leaves(jax.tree.map(lambda c, v: c * v.astype(jnp.float64), ct, y))
            value = sum(jnp.sum(t) for t in terms)
            # G = Σ|ct ⊙ y| over finite terms (an inf output must not make every noise bound inf)
            magnitude = sum(jnp.sum(jnp.where(jnp.isfinite(t), jnp.abs(t), 0.0)) for t in terms)
            return value, magnitude

        layout = (tree, tuple(shapes), jax.tree.structure(cotangent),
                  tuple(np.shape(c) for c in jax.tree.leaves(cotangent)), bool(options))
        key = None if cache_key is None else (cache_key, layout)
        if key is not None and key in _G_CACHE:
            _G_CACHE.move_to_end(key)
            self._rows = _G_CACHE[key]
        else:
            self._rows = jax.jit(jax.vmap(g, in_axes=(0, None)), compiler_options=options)
            if key is not None:
                _G_CACHE[key] = self._rows
                while len(_G_CACHE) > _G_CACHE_SIZE:
                    _G_CACHE.popitem(last=False)
        self._points = _points
        self._options = options
        # Autodiff of g at a batch of points: only to tell whether the derivative map jumps at
        # an element (see fdcompare.compare_per_element); compiled on first use. autodiff_fun:
        # the function jax.vjp witnessed, when it is not fun (one jax cannot differentiate, a
        # pallas_call, checked against its jax.numpy twin; second order's true backward)
        self._g_autodiff = g
        if autodiff_fun is not None:
            def g_autodiff(flat, ct):
                y = autodiff_fun(*unravel(flat))
                return sum(jnp.sum(c * v.astype(jnp.float64)) for c, v in zip(jax.tree.leaves(ct),
                                                                               jax.tree.leaves(y))), None
            self._g_autodiff = g_autodiff

        def terms(flat, ct):     # ct ⊙ y per output element, flattened: g's pieces (fnnet.check.hull)
            y = fun(*unravel(flat))
            parts = jax.tree.leaves(jax.tree.map(lambda c, v: (c * v.astype(jnp.float64)).reshape(-1), ct, y))
            return jnp.concatenate(parts) if parts else jnp.zeros(0)
        self._terms = terms
        self._terms_rows = None
        self._grad_rows = None
        self._elements = {}      # flat index -> (central, forward, backward, smallest step)
        self._directions = {}    # offset -> dict (see directional)
        self.g0 = self.G = None  # g and Σ|ct ⊙ y| at the unperturbed point
        self.coarse = None       # (g computed in a coarser dtype, its eps): see measure_rounding
        # what fun rounds inside, beyond its output terms: Σ|ct| · max(1, |x|max)
        finite = np.abs(self.flat0[np.isfinite(self.flat0)])
        self.inner = (sum(float(np.abs(np.asarray(c, np.float64)).sum()) for c in jax.tree.leaves(self.ct64))
                      * max(1.0, float(finite.max(initial=0.0))))
        self.evaluations = 0

    # -- raw evaluations, in fixed-size chunks; the first chunk also yields g0 --------------
    def _eval(self, idx=None, vals=None, rows=None):
        """g at points given as (flat index, value) pairs or as whole rows [n, P]."""
        n = len(idx) if rows is None else len(rows)
        first = self.g0 is None
        out = []
        with jax.enable_x64(True):
            for s in range(-1 if first else 0, n, self.batch):   # s = -1: g0 rides along
                lo, hi = max(s, 0), min(s + self.batch, n)
                if rows is None:
                    i = np.concatenate([[0] if s < 0 else [], idx[lo:hi]]).astype(np.int64)
                    v = np.concatenate([self.flat0[:1] if s < 0 else np.zeros(0), vals[lo:hi]])
                    pts = self._make_points(i, v)
                else:
                    r = np.concatenate(([self.flat0[None, :]] if s < 0 else []) + [rows[lo:hi]])
                    pad = self.batch - len(r)
                    pts = to_device(np.concatenate([r, np.broadcast_to(self.flat0, (pad, r.shape[1]))]))
                gv, Gv = (np.asarray(a) for a in self._rows(pts, self.ct64))
                if s < 0:
                    self.g0, self.G = float(gv[0]), float(Gv[0])
                    gv = gv[1:]
                out.append(gv[:hi - lo])
        self.evaluations += n + first
        return np.concatenate(out) if out else np.zeros(0)

    def _make_points(self, i, v):
        """[batch, P] copies of flat0, copy b with element i[b] set to v[b] (padded to batch).

        Small P: built in NumPy (no compilation); large P: built on the device (no transfer).
        """
        pad = self.batch - len(i)
        i, v = np.pad(i, (0, pad)), np.pad(v, (0, pad), constant_values=self.flat0[0])
        if self.flat0.size <= SMALL_P:
            rows = np.repeat(self.flat0[None, :], self.batch, axis=0)
            rows[np.arange(self.batch), i] = v
            return to_device(rows)
        return self._points(to_device(self.flat0), to_device(i), to_device(v))

    def prefetch(self, element_indices, directional):
        """Do all the work of a check in as few chunks as possible.

        element_indices: flat indices for per-element differences;
        directional: list of (offset, size, directions, rng[, block]), one per leaf.
        """
        idx = np.array([i for i in np.asarray(element_indices, np.int64).reshape(-1)
                        if int(i) not in self._elements], np.int64)
        if idx.size or self.g0 is None:
            self._per_element_eval(idx)
        specs = [tuple(d) for d in directional if d[0] not in self._directions]
        if specs:
            self._directional_eval(specs)

    # -- per element ----------------------------------------------------------------------
    def _per_element_eval(self, todo):
        x = self.flat0[todo]
        t = self.step * np.maximum(1.0, np.abs(x))
        with np.errstate(invalid="ignore"):            # an inf input: its step is NaN, said later
            xp, xm = x + t, x - t
            hp, hm = xp - x, x - xm                   # the steps actually taken
        g = self._eval(idx=np.concatenate([todo, todo]), vals=np.concatenate([xp, xm]))
        gp, gm = g[:todo.size], g[todo.size:]
        with np.errstate(invalid="ignore", divide="ignore"):
            central = (gp - gm) / (hp + hm)
            forward = (gp - self.g0) / hp
            backward = (self.g0 - gm) / hm
        for k, i in enumerate(todo):
            self._elements[int(i)] = (central[k], forward[k], backward[k], min(hp[k], hm[k]))

    def per_element(self, flat_idx):
        """(central, forward, backward, t_min) at the given flat indices; t_min the smallest step."""
        flat_idx = np.asarray(flat_idx, np.int64).reshape(-1)
        self.prefetch(flat_idx, [])
        vals = np.array([self._elements[int(i)] for i in flat_idx], np.float64).reshape(-1, 4)
        steps = vals[:, 3][np.isfinite(vals[:, 3]) & (vals[:, 3] > 0)]   # an inf input has no step
        return vals[:, 0], vals[:, 1], vals[:, 2], float(steps.min(initial=self.step))

    # -- directional ----------------------------------------------------------------------
    def _directional_eval(self, specs):
        for spec in specs:
            offset, size, directions, rng = spec[:4]
            block = spec[4] if len(spec) > 4 else None
            self._directions[offset] = self._leaf_directions(offset, size, directions, rng, block)

    def _leaf_directions(self, offset, size, directions, rng, block):
        """Random and block directions of one leaf, evaluated with the points built on the
        device from leaf-sized arrays: the [directions, P] matrix of points is never formed
        on the host (for a 300 x 300 weight that is ~500 rows of 91,200 float64 values)."""
        t = self.step
        x = self.flat0[offset:offset + size]
        scale = np.maximum(1.0, np.abs(x))
        u = rng.standard_normal((directions, size))
        block_of, sign, blocks = np.full(size, -1, np.int64), np.zeros(size), []
        if block is not None:   # random ±1 on each block of a random partition (see directional)
            perm = rng.permutation(size)
            blocks = [np.sort(perm[a:a + block]) for a in range(0, size, block)]
            for k, b in enumerate(blocks):
                block_of[b] = k
                sign[b] = rng.choice((-1.0, 1.0), b.size)
        # random directions: dense rows of the leaf, x ± t·v formed here in float64
        v = u * scale[None, :]
        xp, xm = x[None, :] + t * v, x[None, :] - t * v
        g = self._eval_leaf_rows(offset, np.concatenate([xp, xm]))
        vc_dense = ((xp - x[None, :]) + (x[None, :] - xm)) / (2 * t)
        gp, gm = g[:directions], g[directions:]
        # block directions: the blocks partition the leaf, so each element moves in exactly one
        # of them and the points of all blocks come from two leaf-sized vectors
        vb = sign * scale
        bp, bm = x + t * vb, x - t * vb
        if blocks:
            ids = np.arange(len(blocks))
            gp = np.concatenate([gp, self._eval_leaf_blocks(offset, x, bp, block_of, ids)])
            gm = np.concatenate([gm, self._eval_leaf_blocks(offset, x, bm, block_of, ids)])
        return Directional(vc_dense=vc_dense, block_of=block_of, vc_block=((bp - x) + (x - bm)) / (2 * t),
                           central=(gp - gm) / (2 * t), forward=(gp - self.g0) / t,
                           backward=(self.g0 - gm) / t, t=t, blocks=[None] * directions + blocks)

    def _eval_leaf_rows(self, offset, slices):
        """g at the points equal to flat0 except flat0[offset:offset+size] = slices[r] ([R, size])."""
        size = slices.shape[1]

        def make(lo, hi):
            r = slices[lo:hi]
            r = np.concatenate([r, np.broadcast_to(self.flat0[offset:offset + size], (self.batch - len(r), size))])
            return _slice_rows(to_device(self.flat0), np.int64(offset), to_device(r))
        return self._eval_chunks(len(slices), make)

    def _eval_leaf_blocks(self, offset, x, values, block_of, ids):
        """g at one point per block id: flat0 with the leaf's elements of that block set to
        `values` (leaf-sized) and the others left at x (an exact select, no arithmetic)."""
        def make(lo, hi):
            i = np.concatenate([ids[lo:hi], np.full(self.batch - (hi - lo), -1, np.int64)])
            return _block_rows(to_device(self.flat0), np.int64(offset), to_device(x), to_device(values),
                               to_device(block_of), to_device(i))
        return self._eval_chunks(len(ids), make)

    def _eval_chunks(self, n, make):
        """g at n points, made on the device chunk by chunk by make(lo, hi) -> [batch, P]; g0
        must be known (prefetch computes it first)."""
        out = []
        with jax.enable_x64(True):
            for lo in range(0, n, self.batch):
                hi = min(lo + self.batch, n)
                out.append(np.asarray(self._rows(make(lo, hi), self.ct64)[0])[:hi - lo])
        self.evaluations += n
        return np.concatenate(out) if out else np.zeros(0)

    def directional(self, offset, size, directions, rng, block=None):
        """g along `directions` random directions that move only flat[offset:offset+size], then
        (block given) one direction per block of `block` elements of a random partition of the
        leaf, random ±1 on the block and 0 elsewhere.

        Returns a Directional: per direction k the difference quotients central (g⁺ - g⁻)/2t,
        forward (g⁺ - g)/t and backward (g - g⁻)/t, t = step; blocks[k]: the block's indices
        (None: random direction); dot(a) = Σ_i vc_ki a_i with vc the steps actually taken in
        units of t. A block direction sees a single wrong entry δ at full weight (|v_i| >= 1)
        against a tolerance of rtol · Σ_block |hand_k v_k|: it is always caught once |δ|
        exceeds rtol · block · max|hand| · max(1, |x|) (the power stated in the report).
        """
        self.prefetch([], [(offset, size, directions, rng, block)])
        return self._directions[offset]

    def along(self, vs):
        """One-sided quotients of g along whole-vector directions vs [k, P] (step t = step).

        Returns Quotients with vc [k, P] (steps actually taken / t, averaged)."""
        t = self.step
        xp, xm = self.flat0[None, :] + t * vs, self.flat0[None, :] - t * vs
        g = self._eval(rows=np.concatenate([xp, xm]))
        gp, gm = g[:len(vs)], g[len(vs):]
        vc = ((xp - self.flat0[None, :]) + (self.flat0[None, :] - xm)) / (2 * t)
        return Quotients(vc=vc, forward=(gp - self.g0) / t, backward=(self.g0 - gm) / t, t=t)

    def along_groups(self, offset, size, groups, v):
        """One-sided quotients of g along one direction per group: disjoint groups of leaf
        indices (of the leaf at offset), each direction v [size] on its group and 0 elsewhere;
        the points are built on the device from leaf-sized vectors (fnnet.check.fdcompare's
        bisection). Returns Quotients with vc [size] (steps actually taken / t; each
        element's in its own group's direction)."""
        t = self.step
        x = self.flat0[offset:offset + size]
        block_of = np.full(size, -1, np.int64)
        for r, g in enumerate(groups):
            block_of[np.asarray(g, np.int64)] = r
        v = np.where(block_of >= 0, np.asarray(v, np.float64), 0.0)
        xp, xm = x + t * v, x - t * v
        if self.g0 is None:
            self.prefetch([], [])
        ids = np.arange(len(groups))
        gp = self._eval_leaf_blocks(offset, x, xp, block_of, ids)
        gm = self._eval_leaf_blocks(offset, x, xm, block_of, ids)
        return Quotients(vc=((xp - x) + (x - xm)) / (2 * t), forward=(gp - self.g0) / t,
                         backward=(self.g0 - gm) / t, t=t)

    def derivatives_around(self, flat_idx):
        """[3, n]: autodiff's derivative of g along e_i at x, x + t·e_i and x - t·e_i
        (t the per-element step); fnnet.check.smoothness reads them."""
        flat_idx = np.asarray(flat_idx, np.int64)
        if self._grad_rows is None:
            grad = jax.grad(lambda flat, ct: self._g_autodiff(flat, ct)[0])
            self._grad_rows = jax.jit(jax.vmap(grad, in_axes=(0, None)), compiler_options=self._options)
        x = self.flat0[flat_idx]
        t = self.step * np.maximum(1.0, np.abs(x))
        idx = np.concatenate([flat_idx] * 3)
        vals = np.concatenate([x, x + t, x - t])
        out = []
        with jax.enable_x64(True):
            for s in range(0, len(idx), self.batch):
                i, v = idx[s:s + self.batch], vals[s:s + self.batch]
                pts = self._make_points(i, v)
                grads = np.asarray(self._grad_rows(pts, self.ct64))[:len(i)]
                out.append(grads[np.arange(len(i)), i])
        return np.concatenate(out).reshape(3, -1)

    def spread_at(self, flat_idx, fraction):
        """Per index: forward - backward quotient with the per-element step times `fraction`
        (fnnet.check.fdcompare: a smooth function's spread is g''·t, proportional to the step;
        a kink's is not)."""
        flat_idx = np.asarray(flat_idx, np.int64).reshape(-1)
        x = self.flat0[flat_idx]
        t = fraction * self.step * np.maximum(1.0, np.abs(x))
        xp, xm = x + t, x - t
        if self.g0 is None:
            self.prefetch([], [])
        g = self._eval(idx=np.concatenate([flat_idx, flat_idx]), vals=np.concatenate([xp, xm]))
        gp, gm = g[:flat_idx.size], g[flat_idx.size:]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (gp - self.g0) / (xp - x) - (self.g0 - gm) / (x - xm)

    def terms_at(self, rows):
        """ct ⊙ fun(point) per output element [n, n_out] at whole points rows [n, P] (float64)."""
        if self._terms_rows is None:
            self._terms_rows = jax.jit(jax.vmap(self._terms, in_axes=(0, None)), compiler_options=self._options)
        out = []
        with jax.enable_x64(True):
            for s in range(0, len(rows), self.batch):
                r = rows[s:s + self.batch]
                pad = self.batch - len(r)
                pts = to_device(np.concatenate([r, np.broadcast_to(self.flat0, (pad, r.shape[1]))]))
                out.append(np.asarray(self._terms_rows(pts, self.ct64))[:len(r)])
        self.evaluations += len(rows)
        return np.concatenate(out)

    def measure_rounding(self, g_coarse, coarse_eps):
        """g at the same point computed in a coarser dtype (the check's own run of fun): then
        |g_coarse - g| / coarse_eps, the size of the sums behind g, joins what its rounding is
        relative to. Σ|ct ⊙ y| and the inputs miss sums that cancel inside fun (a batch norm's
        centring: terms far larger than the loss they sum to)."""
        self.coarse = (float(g_coarse), float(coarse_eps))

    def noise(self, t):
        """Rounding noise bound of a central difference quotient with step t (compare.fd_noise)."""
        if self.g0 is None:
            self.prefetch([], [])
        sums = 0.0
        if self.coarse is not None and np.isfinite(self.coarse[0]):
            sums = abs(self.coarse[0] - self.g0) / self.coarse[1]
        return fd_noise(self.G + self.inner + sums, t, self.fd_eps)


@dataclasses.dataclass
class Directional:
    """Difference quotients of g along one leaf's directions (FiniteDifferences.directional).

    vc_dense [D, size]: the random directions' steps actually taken, in units of t;
    block_of [size]: each element's block (-1: no blocks); vc_block [size]: each element's
    step in its own block's direction; central/forward/backward [D + n_blocks]; blocks: per
    direction the block's leaf indices, None for a random direction."""
    vc_dense: np.ndarray
    block_of: np.ndarray
    vc_block: np.ndarray
    central: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    t: float
    blocks: list

    @property
    def n_blocks(self):
        return len(self.blocks) - len(self.vc_dense)

    def dot(self, a, absolute=False):
        """[D + n_blocks]: Σ_i vc_ki · a_i per direction (|vc_ki| · a_i when absolute)."""
        a = np.asarray(a, np.float64).reshape(-1)
        dense, blk = (np.abs(self.vc_dense), np.abs(self.vc_block)) if absolute else (self.vc_dense, self.vc_block)
        out = dense @ a
        if self.n_blocks:
            mine = self.block_of >= 0
            out = np.concatenate([out, np.bincount(self.block_of[mine], weights=(blk * a)[mine],
                                                   minlength=self.n_blocks)])
        return out

    def block_vc(self, k):
        """(leaf indices, steps taken in units of t) of block direction k."""
        idx = self.blocks[k]
        return idx, self.vc_block[idx]


@dataclasses.dataclass(frozen=True)
class Quotients:
    """One-sided difference quotients of g along some directions (FiniteDifferences.along):
    forward (g⁺ - g)/t and backward (g - g⁻)/t per direction, vc the steps actually taken in
    units of t, t the step."""
    vc: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    t: float
