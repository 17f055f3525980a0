"""fnnet.testing: check your own layer across the whole battery from your own test suite.

    import fnnet.testing as ft

    def test_my_layer():                                  # one line: every case, all failures listed
        ft.assert_layer_correct(MyLayer(16), in_shape=(8,))

    @pytest.mark.parametrize("case", ft.layer_cases(MyLayer(16), (8,)), ids=str)
    def test_my_layer_case(case):                         # or one pytest test per case
        case.run().raise_if_failed()

The battery (fnnet.check.check_layer / check_vjp on each case):
  dtypes float64 and float32; jit on and off; batch 1 and batch 4 (batch=); the given
  in_shape and width 1 (every feature axis 1, when the layer's init accepts it);
  inputs "normal" (random, non-symmetric: N(0.1, 1.3²)), "kinks" (exact zeros and values
  within the finite-difference step of 0) and "saturated" (±30 among normals);
  the layer alone, and "mid-network": between an elementwise affine layer below and an
  elementwise scaling above (both with hand-written backwards here), so the layer's dx feeds
  the affine layer's gradients and an error in dx shows in them.
Params come from layer.init and are then perturbed by 0.1·N(0, 1) (zero-initialised biases
would hide a bias-gradient bug behind symmetric values); cotangents are random normal.
Integer-input layers (embeddings): pass x= (an array, or a callable (rng, batch) -> x);
x is then held fixed (non-differentiable) and the mid-network case has no layer below.

Hypothesis strategies (hypothesis is imported only when these are called):
  shapes(...), kink_values(kinks=(0.0,)), arrays(shape, dtype, kinks=(0.0,)).
"""
from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import check as _check
from fnnet.check.report import failure_text

INPUTS = ("normal", "kinks", "saturated")
STEP = 1e-6


def make_input(kind, shape, seed=0, step=STEP):
    """x [*shape] float64: "normal", "kinks" (0 and ±0.3·step among normals), "saturated" (±30)."""
    rng = np.random.default_rng(seed)
    x = 0.1 + 1.3 * rng.standard_normal(shape)
    flat = x.reshape(-1)
    if kind == "kinks":
        flat[::4] = 0.0
        flat[1::6] = 0.3 * step * np.where(np.arange(flat[1::6].size) % 2, 1.0, -1.0)
    elif kind == "saturated":
        flat[::3] = 30.0 * np.where(np.arange(flat[::3].size) % 2, 1.0, -1.0)
    elif kind != "normal":
        raise ValueError(f"fnnet.testing: input kind must be one of {INPUTS}, got {kind!r}")
    return x


@dataclasses.dataclass(frozen=True)
class Case:
    """One check of the battery; run() returns the fnnet.check Report."""
    layer: object
    in_shape: tuple
    dtype: str
    jit: bool
    batch: int
    inputs: str
    mid_network: bool
    x: object = None
    seed: int = 0
    options: tuple = ()

    def __str__(self):
        where = "mid-network" if self.mid_network else "alone"
        return (f"{self.layer}-{self.dtype}-{'jit' if self.jit else 'eager'}-batch{self.batch}-"
                f"in{'x'.join(map(str, self.in_shape))}-{self.inputs}-{where}")

    def run(self):
        dt = np.dtype(self.dtype)
        x64 = dt == np.float64 and not jax.config.jax_enable_x64
        with jax.enable_x64(True) if x64 else contextlib.nullcontext():
            params, _ = self.layer.init(jax.random.key(self.seed), self.in_shape)
            rng = np.random.default_rng(self.seed + 1)
            params = jax.tree.map(lambda a: np.asarray(np.asarray(a, np.float64)
                                                       + 0.1 * rng.standard_normal(np.shape(a)), dt)
                                  if jnp.issubdtype(np.asarray(a).dtype, jnp.floating) else a, params)
            if self.x is None:
                x = make_input(self.inputs, (self.batch,) + tuple(self.in_shape), self.seed + 2).astype(dt)
            else:
                x = self.x(rng, self.batch) if callable(self.x) else self.x
            opts = dict(self.options)
            if not self.mid_network:
                return _check.check_layer(self.layer, params, x, jit=self.jit, **opts)
            return _mid_network(self.layer, params, x, dt, rng, self.jit, opts)


def _mid_network(layer, params, x, dt, rng, jit, opts):
    """check_vjp of  y = s_out ⊙ layer(a ⊙ x + c)  over (params, a, c, s_out) and x."""
    floating = jnp.issubdtype(np.asarray(x).dtype, jnp.floating)
    feat = np.shape(x)[1:]
    below = {"a": (1.0 + 0.5 * rng.standard_normal(feat)).astype(dt),
             "c": (0.3 * rng.standard_normal(feat)).astype(dt)} if floating else {}
    out = jax.eval_shape(lambda p, v: layer.forward(p, v)[0], params, x)
    s_out = (1.0 + 0.5 * rng.standard_normal(out.shape[1:])).astype(dt)

    def fun(params, below, s_out, x):
        h = below["a"][None] * x + below["c"][None] if floating else x   # the layer below
        return layer.forward(params, h)[0] * s_out[None]                 # the layer, then a scaling

    def vjp(params, below, s_out, x, dy):
        h = below["a"][None] * x + below["c"][None] if floating else x
        y, cache = layer.forward(params, h)
        dp, dh = layer.backward(params, cache, dy * s_out[None])    # dL/dy_layer = dL/dy ⊙ s_out
        ds = (dy * y).sum(axis=0)                                   # dL/ds_out = Σ_batch dL/dy ⊙ y
        if not floating:
            return dp, {}, ds, None
        da = (dh * x).sum(axis=0)                                   # dL/da = Σ_batch dL/dh ⊙ x
        dc = dh.sum(axis=0)                                         # dL/dc = Σ_batch dL/dh
        return dp, {"a": da, "c": dc}, ds, dh * below["a"][None]    # dL/dx = dL/dh ⊙ a

    return _check.check_vjp(fun, vjp, params, below, s_out, x, names=("params", "below", "s_out", "x"),
                            title=f"{layer} mid-network", jit=jit, **opts)


def layer_cases(layer, in_shape, *, dtypes=("float64", "float32"), jit=(False, True), batch=(1, 4),
                inputs=INPUTS, mid_network=(False, True), width_one=True, x=None, seed=0, **options):
    """The battery's cases for one layer (see the module doc); options go to fnnet.check.

    Not every combination: jit on/off and the input kinds are crossed with the dtypes for
    the layer alone at the larger batch; batch 1, width 1 and mid-network each run in both
    dtypes on normal inputs (with jit). About 20 cases, each a fraction of a second to a few
    seconds for small layers."""
    in_shape = tuple(in_shape)
    big = max(batch)
    kinds = inputs if x is None else ("given",)
    opts = tuple(sorted(options.items()))
    cases = []
    for dt in dtypes:
        for j in jit:
            for kind in kinds:
                cases.append(Case(layer, in_shape, dt, j, big, kind, False, x, seed, opts))
        for b in sorted(set(batch) - {big}):
            cases.append(Case(layer, in_shape, dt, True, b, kinds[0], False, x, seed, opts))
        if True in mid_network:
            cases.append(Case(layer, in_shape, dt, True, big, kinds[0], True, x, seed, opts))
        if width_one and x is None and any(d != 1 for d in in_shape) and _accepts(layer, (1,) * len(in_shape)):
            cases.append(Case(layer, (1,) * len(in_shape), dt, True, big, "normal", False, x, seed, opts))
    return cases


def _accepts(layer, in_shape):
    """Whether the layer's init takes in_shape. A layer refusing a width, by an exception or
    by a bare `assert` (an empty AssertionError), is not cased at that width."""
    try:
        layer.init(jax.random.key(0), in_shape)
        return True
    except (ValueError, TypeError, AssertionError):
        return False


def assert_layer_correct(layer, in_shape, **kwargs):
    """Run every case of layer_cases(layer, in_shape, **kwargs); AssertionError (battery_summary)
    when any fails: one line per leaf over the cases first, then each failing case on a line,
    then the worst case's table only."""
    cases = layer_cases(layer, in_shape, **kwargs)
    reports = [(case, case.run()) for case in cases]
    if not all(r.ok for _, r in reports):
        raise AssertionError(battery_summary(layer, reports))


def battery_summary(layer, reports) -> str:
    """The failure message of a battery: [(case, Report)] -> text, led by one line.

    Line 1: each leaf's verdict over the cases, e.g. "params.alpha: FAIL in 16/16 cases,
    actual/expected ≈ 0.5 at (0,); x: ok" (the ratio and index of its worst failure);
    then "--- case: summary" per failing case; then the table of the worst case (the one
    whose worst failed row is furthest beyond its tolerance)."""
    failed = [(c, r) for c, r in reports if not r.ok]
    per_leaf = {}                  # leaf -> [cases it ran in, [(badness, row)] of its failures]
    for _, rep in reports:
        for name, (status, row) in rep.leaf_verdicts().items():
            seen = per_leaf.setdefault(name, [0, []])
            seen[0] += 1
            if status == "FAIL":
                seen[1].append((_badness(row), row))
    parts = []
    for name, (n_run, fails) in per_leaf.items():
        if fails:
            worst = max(fails, key=lambda br: br[0])[1]
            parts.append(f"{name}: FAIL in {len(fails)}/{n_run} cases{failure_text(worst)}")
        else:
            parts.append(f"{name}: ok")
    worst_case, worst_rep = max(failed, key=lambda cr: max(_badness(r) for r in cr[1].failures))
    lines = [f"fnnet.testing: {len(failed)} of {len(reports)} case(s) failed for {layer}: " + "; ".join(parts),
             *(f"--- {c}: {r.summary()}" for c, r in failed),
             f"worst case, {worst_case}:", str(worst_rep)]
    return "\n".join(lines)


def _badness(row) -> float:
    """How far a failed row is beyond its tolerance (rel err / tol; inf when unknown)."""
    if row.rel_err is None or row.tol is None or not np.isfinite(row.tol) or row.tol <= 0:
        return float("inf")
    return float(row.rel_err / row.tol) if np.isfinite(row.rel_err) else float("inf")


# -- hypothesis strategies ---------------------------------------------------------------

def shapes(min_rank=1, max_rank=3, min_side=1, max_side=5):
    """Array shapes, batch axis first (sides 1 included: batch 1, width 1)."""
    from hypothesis import strategies as st
    return st.lists(st.integers(min_side, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


def kink_values(kinks=(0.0,), step=STEP, saturate=30.0):
    """Floats that stress a checker: exactly on a kink, within the FD step of one, a few steps
    away, generic values, and saturated ±saturate."""
    from hypothesis import strategies as st
    near = st.floats(-0.9 * step, 0.9 * step, allow_nan=False)
    return st.one_of(st.sampled_from(tuple(kinks)),
                     st.tuples(st.sampled_from(tuple(kinks)), near).map(sum),
                     st.tuples(st.sampled_from(tuple(kinks)), st.sampled_from((-3.0, 3.0))).map(
                         lambda kv: kv[0] + kv[1] * step),
                     st.floats(-3.0, 3.0, allow_nan=False),
                     st.sampled_from((-saturate, saturate)))


def arrays(shape, dtype=np.float64, kinks=(0.0,), step=STEP):
    """Arrays of `shape` with kink_values elements (float32 arrays round them to float32)."""
    from hypothesis.extra import numpy as hnp
    return hnp.arrays(np.float64, shape, elements=kink_values(kinks, step)).map(lambda a: a.astype(dtype))
