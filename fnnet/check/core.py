"""The check pipeline behind check_vjp (fnnet.check.vjp) and every wrapper: run_check gathers the
witnesses (jax.vjp, a reference, float64 finite differences, the float64 replay), judges each
leaf and returns the Report. Real primals and outputs only: complex ones are split into real
pairs first (fnnet.check.complex_vjp)."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import independence, nondiff as _nd, replay as _replay
from fnnet.check.evaluate import evaluate, lowp_note
from fnnet.check.compare import (RTOL_FD, Bracket, compare, eps, local_floor, rounding_floor,
                                  rtol as dtype_rtol)
from fnnet.check.fd import FiniteDifferences
from fnnet.check.fdcompare import block_size
from fnnet.check.hull import within_hull
from fnnet.check.kinks import cross_primal_row
from fnnet.check.smoothness import autodiff_kink
from fnnet.check.xla import jit_options, options_for
from fnnet.check.inputs import (Leaf, as_primal, call_reference, make_cotangent, match_hand,
                                 primal_names, rng_for, x64_context)
from fnnet.check.report import Report, Row
from fnnet.check.rows import fd_row, majority_fn, oracle_row
from fnnet.check.verdict import Evidence, Status, decide, judge_leaf

MODES = ("auto", "directional", "full")
LOW_PRECISION_ROUNDINGS = 8   # eps of a coarser internal dtype allowed between the rule and jax.vjp


def run_check(fun, vjp, *primals, cotangent=None, key=None, reference=None, nondiff=(), mode="auto",
              names=None, directions=4, detect=1e-3, full_max=2000, full_budget=1024, localize_max=50_000,
              step=1e-6, rtol=None, atol=None, jit=True, float64_replay=True, title=None, cache_key=None,
              cotangent_text=None, oracle_fun=None, oracle_text="jax.vjp", rule="the hand-written vjp"):
    """check_vjp with what fnnet's own wrappers add: cache_key (a hashable name of a pure fun,
    so repeated checks share one compiled finite-difference program), cotangent_text (the
    header's words for a given cotangent), oracle_fun/oracle_text (jax.vjp of another
    function than fun: second order), rule (the rule's name in messages)."""
    if mode not in MODES:
        raise ValueError(f"check: mode must be one of {MODES}, got {mode!r}")
    if not primals:
        raise ValueError("check: give at least one primal")
    names = primal_names(fun, len(primals), names)
    nd_pos, why = _nd.positions(nondiff, names, primals, mixed_ok=True)
    n = len(primals)
    diff_pos = [i for i in range(n) if i not in why]
    rule_out = lambda p, ct: (vjp(*p, ct), {})          # (cotangents, {name: nonzero flags})
    nd_rows = []
    mixed = [i for i in diff_pos if _nd.is_mixed(primals[i])]
    if mixed:
        held = _held_module_leaves(mixed, primals, names, diff_pos, fun, vjp, oracle_fun, reference, cache_key,
                                   rule)
        fun, rule_out, oracle_fun, reference, cache_key, primals = (
            held.fun, held.rule_out, held.oracle_fun, held.reference, held.cache_key, held.primals)
        nd_rows.extend(held.rows)
    oracle_fun_d = oracle_fun
    hand = rule_out
    if nd_pos:
        if not diff_pos:
            auto = [names[i] for i in nd_pos if why[i] != "nondiff="]
            if auto:
                dt = getattr(jax.tree.leaves(primals[names.index(auto[0])])[0], "dtype", None)
                raise TypeError(f"check: primal {auto[0]} must be a floating array to be differentiated, "
                                f"got {'dtype ' + str(dt) if dt is not None else 'a non-array'}; with every "
                                f"primal non-differentiable ({', '.join(names)}) there is nothing to check")
            raise ValueError(f"check: every primal is non-differentiable ({', '.join(names)}); "
                             f"nothing to check")
        # arrays held fixed become jax arrays now, under the user's x64 setting (int64 ids turn
        # int32 with x64 off, as jax would make them): the float64 finite differences run under
        # x64 and must see the same dtypes as every other witness
        fixed = {i: jax.tree.map(_nd.as_fixed, primals[i]) for i in nd_pos}
        full = lambda dp: _nd.merge(dp, diff_pos, fixed, n)
        fun_d = lambda *dp, fun=fun: fun(*full(dp))
        def hand(dp, ct, names=names):
            out, flags = rule_out(full(dp), ct)
            cts, nd_flags = _nd.pick(out, n, diff_pos, nd_pos, names, rule)
            return cts, {**flags, **nd_flags}
        if oracle_fun is not None:
            oracle_fun_d = lambda *dp: oracle_fun(*full(dp))
        if callable(reference) or (isinstance(reference, tuple) and reference[0] is not None):
            ref_fn, ref_why = reference if isinstance(reference, tuple) else (reference, "")
            fixed64 = {i: jax.tree.map(lambda a: np.asarray(a) if hasattr(a, "shape") else a, v)
                       for i, v in fixed.items()}
            # names bound now: the name below is rebound to the differentiable primals only
            reference = (lambda *dp64, names=names: _nd.pick(
                ref_fn(*_nd.merge(dp64[:-1], diff_pos, fixed64, n), dp64[-1]),
                n, diff_pos, nd_pos, names, "the reference")[0], ref_why)
        if cache_key is not None:
            extra = _nd.hashable_values([primals[i] for i in nd_pos])
            cache_key = None if extra is None else (cache_key, tuple(nd_pos), extra)
        for i in nd_pos:
            kind = "nondiff=" if why[i] == "nondiff=" else "not floating"
            nd_rows.append(Row(names[i], "held fixed", "nondiff", Status.NA,
                               note=f"non-differentiable ({kind}): passed unchanged to fun, the vjp and "
                                    f"every witness, never perturbed or compared"))
        fun, primals, names = fun_d, tuple(primals[i] for i in diff_pos), tuple(names[i] for i in diff_pos)
    settings = Settings(mode, directions, detect, full_max, full_budget, localize_max, step, rtol, atol, jit,
                        float64_replay, cache_key, cotangent_text, oracle_text, rule)
    report = _check(fun, hand, primals, names, cotangent, key, reference, settings, title, oracle_fun_d)
    if nd_rows:
        report = Report(report.title, tuple(nd_rows) + report.rows, report.header, report.seconds)
    return report


@dataclasses.dataclass(frozen=True)
class _HeldModules:
    """run_check's inputs after modules passed whole were split: every witness sees their
    floating arrays as the primal; fun, the rule and the reference get the held leaves back."""
    fun: object
    rule_out: object
    oracle_fun: object
    reference: object
    cache_key: object
    primals: tuple
    rows: tuple


def _held_module_leaves(mixed, primals, names, diff_pos, fun, vjp, oracle_fun, reference, cache_key, rule):
    """Primals at positions `mixed` mix floating arrays with other leaves (an equinox Module's
    functions and ints, an nnx Module's Rngs): hold the others fixed, as eqx.filter_grad does."""
    n = len(primals)
    held = {i: jax.tree.map(_nd.as_fixed, _nd.held_part(primals[i])) for i in mixed}
    whole, cotangents = _nd.hold_leaves(mixed, held, n, diff_pos, names)
    rule_out = lambda p, ct: cotangents(vjp(*whole(p), ct), rule)
    fun_whole = lambda *p: fun(*whole(p))
    if oracle_fun is not None:
        oracle_fun = lambda *p, of=oracle_fun: of(*whole(p))
    if callable(reference) or (isinstance(reference, tuple) and reference[0] is not None):
        ref_fn, ref_why = reference if isinstance(reference, tuple) else (reference, "")
        reference = (lambda *p64: cotangents(ref_fn(*whole(p64[:-1]), p64[-1]), "the reference")[0], ref_why)
    if cache_key is not None:
        extra = _nd.hashable_values([held[i] for i in mixed])
        cache_key = None if extra is None else (cache_key, tuple(mixed), extra)
    rows = []
    for i in mixed:
        kept = [type(l).__name__ for l in jax.tree.leaves(held[i])]
        rows.append(Row(names[i], "held fixed", "nondiff", Status.NA,
                        note=f"its {len(kept)} non-floating leaves ({', '.join(sorted(set(kept)))}) held "
                             f"fixed, as eqx.filter_grad does; its floating arrays differentiated"))
    primals = tuple(_nd.float_part(p) if i in held else p for i, p in enumerate(primals))
    return _HeldModules(fun_whole, rule_out, oracle_fun, reference, cache_key, primals, tuple(rows))


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the caller asked for (check_vjp's keywords, see there), and the wrappers' words."""
    mode: str
    directions: int
    detect: Optional[float]
    full_max: int
    full_budget: int
    localize_max: int
    step: float
    rtol: Optional[float]
    atol: Optional[float]
    jit: bool
    float64_replay: bool
    cache_key: object = None
    cotangent_text: Optional[str] = None
    oracle_text: str = "jax.vjp"
    rule: str = "the hand-written vjp"


@dataclasses.dataclass(frozen=True)
class Witnesses:
    """Everything a check computes before it judges: the leaves and their values.

    leaves: the differentiable primal leaves in flattened order; hand: {leaf name: (the rule's
    float64 values, the dtype it returned)}; skip: leaves whose structure already failed;
    structure: those failure rows (and non-zero cotangents for non-differentiable inputs);
    by_jax: {leaf name: jax.vjp's values}; by_ref: the reference's, or None; by_jax64:
    jax.vjp run in float64 (a coarse check's yardstick for the reference), or None;
    replay: the rule re-run in float64 (fnnet.check.replay), or None; fd: the finite
    differences, or None; rules: user custom rules in fun (jax.vjp then is no witness);
    stops: stop_gradient equations in fun; lowp: coarser dtypes fun computes in; outputs:
    [(ct, y)] float64 per floating output leaf; flat_primals: each leaf's float64 values;
    coarse(): replay.Coarse (the rule and jax.vjp run in float32) or None, computed on first
    call (a float64 check's measure of rounding, compare.rounding_floor; g's own rounding
    then also joins the finite differences' noise, FiniteDifferences.measure_rounding)."""
    title: str
    leaves: tuple
    ct_text: str
    hand: dict
    skip: frozenset
    structure: tuple
    by_jax: dict
    by_ref: Optional[dict]
    by_jax64: Optional[dict]
    replay: Optional[_replay.Replay]
    fd: Optional[FiniteDifferences]
    rules: tuple
    stops: int
    lowp: tuple
    outputs: tuple
    flat_primals: tuple
    ref_note: str
    coarse: Callable[[], Optional[_replay.Coarse]]

    @property
    def independent(self):
        """jax.vjp does not run the rule under test (fun holds no user custom rule)."""
        return not self.rules


@dataclasses.dataclass(frozen=True)
class Plan:
    """How each leaf is judged: per_element (leaf names compared element by element by finite
    differences, the others along directions), the tolerances rt (the dtype's) and rt_fd
    (against finite differences), the block size of its block directions, its random stream,
    and low_tol (the relative precision of a coarser dtype fun computes in, 0 if none)."""
    per_element: frozenset
    rt: dict
    rt_fd: dict
    blocks: dict
    rngs: dict
    low_tol: float


def _check(fun, hand, primals, names, cotangent, key, reference, settings, title, oracle_fun):
    """The check in three steps: gather the witnesses, judge each leaf, report."""
    t0 = time.perf_counter()
    key = jax.random.key(key) if isinstance(key, int) else key
    w = _gather(fun, hand, primals, names, cotangent, key, reference, settings, oracle_fun,
                title or getattr(fun, "__name__", "fun"))
    plan = _plan(w, settings, key)
    rows = [r for r in w.structure if r.primal not in {l.name for l in w.leaves if l.name not in w.skip}]
    per_element_leaves = []      # (leaf, hand, rt_fd, floor): the joint kink test across leaves
    for k, leaf in enumerate(w.leaves):
        if leaf.name in w.skip:
            continue
        prior = [r for r in w.structure if r.primal == leaf.name]
        leaf_rows, floor = _judge_leaf(w, plan, settings, k, leaf, prior)
        rows += leaf_rows
        if w.fd is not None and leaf.name in plan.per_element:
            per_element_leaves.append((leaf, w.hand[leaf.name][0], plan.rt_fd[leaf.name], floor))
    joint = cross_primal_row(w.fd, per_element_leaves, rng_for(key, 5)) if w.fd is not None else None
    if joint is not None:
        rows.append(joint)
    return _report(w, plan, settings, rows, names, time.perf_counter() - t0)


def _gather(fun, hand, primals, names, cotangent, key, reference, s, oracle_fun, title):
    """Run fun, the rule, jax.vjp, the reference and the float64 replay once, and set up the
    finite differences: the Witnesses (nothing judged yet)."""
    ref_note = "no reference given (pass reference=callable)"
    if isinstance(reference, tuple):   # (callable or None, why missing) from the wrappers
        reference, ref_note = reference
    with x64_context((primals, cotangent)):
        primals = tuple(jax.tree_util.tree_map_with_path(lambda p, l, n=n: as_primal(n, p, l), prim)
                        for n, prim in zip(names, primals))
        leaves, offset = [], 0
        for i, (n, prim) in enumerate(zip(names, primals)):
            for path, leaf in jax.tree_util.tree_leaves_with_path(prim):
                leaves.append(Leaf(n + jax.tree_util.keystr(path), i, tuple(leaf.shape),
                                   np.dtype(leaf.dtype), offset, int(leaf.size)))
                offset += int(leaf.size)
        out = jax.eval_shape(fun, *primals)    # integer/bool output leaves: float0 cotangents
        try:       # one trace serves both questions: custom rules inside, and XLA options
            traced = jax.make_jaxpr(oracle_fun or fun)(*primals).jaxpr
            rules, options = independence.custom_rules(traced), options_for(traced)
            stops = independence.stop_gradients(traced)
            finest = max((np.dtype(l.dtype) for l in jax.tree.leaves(primals)), key=lambda d: -eps(d))
            lowp = independence.low_precision(traced, finest)
        except Exception:
            rules, options, stops, lowp = [], jit_options(oracle_fun or fun, *primals), 0, []
        ct, ct_text = make_cotangent(cotangent, out, rng_for(key, 0))
        y, hand_out, by_jax, flags = evaluate(fun, hand, oracle_fun, primals, ct, s.jit, options, s.rule)
        coarse = any(l.dtype != np.float64 for l in leaves)
        replay = (_replay.run(lambda p, c: evaluate(fun, hand, oracle_fun, p, c, s.jit, options, s.rule),
                              primals, ct, leaves, not rules)
                  if coarse and s.float64_replay and s.rtol is None and s.atol is None and not lowp else None)
        by_jax64 = (replay.jax if replay is not None and replay.jax is not None else
                    _replay.leaf_dict(_replay.run_jax(oracle_fun or fun, primals, ct), leaves)
                    if coarse and reference is not None and not rules else None)
        outputs = tuple((np.asarray(c, np.float64), np.asarray(v, np.float64))
                        for c, v in zip(jax.tree.leaves(ct), jax.tree.leaves(y)) if c.dtype != jax.dtypes.float0)
        flat_primals = tuple(np.asarray(l, np.float64) for l in jax.tree.leaves(primals))

    structure, hand_leaf, skip = match_hand(hand_out, primals, names, leaves, title, s.rule)
    for name, nonzero in flags.items():
        if any(bool(np.asarray(f)) for f in nonzero):
            structure.append(Row(name, "structure", "structure", Status.FAIL,
                                 note="the hand-written vjp returned a non-zero cotangent for this "
                                      "non-differentiable input (expected None, float0 or zeros)"))
    by_ref = call_reference(reference, primals, ct, names, leaves) if reference is not None else None
    fd = (FiniteDifferences(fun, primals, ct, s.step, s.cache_key, options, autodiff_fun=oracle_fun)
          if offset and not lowp else None)
    out_eps = max([eps(l.dtype) for l in jax.tree.leaves(y) if jnp.issubdtype(l.dtype, jnp.floating)], default=0.0)
    if fd is not None and out_eps > eps(np.float64):   # fun ran coarser: it measures g's sums
        fd.measure_rounding(sum(float(np.sum(c * v)) for c, v in outputs), out_eps)
    by_jax = dict(zip([l.name for l in leaves], (np.asarray(v, np.float64) for v in jax.tree.leaves(by_jax))))
    if len(by_jax) != len(leaves):  # jax.vjp always matches; guard against odd custom pytrees
        raise RuntimeError("check: jax.vjp returned a different number of leaves than the primals have")
    memo = []

    def coarse():
        if not memo:
            with x64_context((primals, ct)):
                got = _replay.run_at(lambda p, c: evaluate(fun, hand, oracle_fun, p, c, s.jit, options, s.rule),
                                     primals, ct, leaves, np.float32)
            memo.append(got)
            if got is not None and fd is not None and fd.coarse is None:
                fd.measure_rounding(got.g, eps(np.float32))
        return memo[0]
    return Witnesses(title, tuple(leaves), ct_text, hand_leaf, frozenset(skip), tuple(structure), by_jax, by_ref,
                     by_jax64, replay, fd, tuple(rules), stops, tuple(lowp), outputs, flat_primals, ref_note,
                     coarse)


def _plan(w, s, key):
    """Which leaves finite differences judge per element, the tolerances, and the blocks;
    then all finite differences of the check in one go (fewest padded chunks).

    Without an independent jax.vjp nothing else compares element by element: finite
    differences then go per element on every leaf up to localize_max elements (mode auto)."""
    per_element, spent = set(), 0
    budget, biggest = (s.full_budget, s.full_max) if w.independent else (s.localize_max, s.localize_max)
    for leaf in sorted(w.leaves, key=lambda l: l.size):
        if s.mode == "full" or (s.mode == "auto" and leaf.size <= biggest and spent + leaf.size <= budget):
            per_element.add(leaf.name)
            spent += leaf.size
    rngs = {leaf.name: rng_for(key, 1, k) for k, leaf in enumerate(w.leaves)}
    # a fun computing in a coarser dtype inside: the rule and jax.vjp round there too, each
    # where it casts, so they agree to a few of that dtype's eps, not to the primals'
    low_tol = max([LOW_PRECISION_ROUNDINGS * eps(d) for d in w.lowp], default=0.0)
    judged = [l for l in w.leaves if l.name in w.hand]
    rt = {l.name: s.rtol if s.rtol is not None else max(
        low_tol, dtype_rtol(max((l.dtype, w.hand[l.name][1]), key=eps))) for l in judged}
    rt_fd = {l.name: s.rtol if s.rtol is not None else max(RTOL_FD, rt[l.name]) for l in judged}
    blocks = {l.name: block_size(l.size, rt_fd[l.name], s.detect) for l in judged}
    if w.fd is not None:
        todo = [l for l in w.leaves if l.name not in w.skip]
        w.fd.prefetch(np.concatenate([np.arange(l.offset, l.offset + l.size) for l in todo
                                      if l.name in per_element] + [np.zeros(0, np.int64)]),
                      [(l.offset, l.size, s.directions, rngs[l.name], blocks[l.name]) for l in todo
                       if l.name not in per_element])
    return Plan(frozenset(per_element), rt, rt_fd, blocks, rngs, low_tol)


def _adjudicator(fd, leaf, h, j, floor, rt_fd, rng):
    """adjudicate(bad flat indices, h=, j=, floor=, rt_fd=) -> Bracket: what the finite
    differences say at the elements of `leaf` where two witnesses disagree (compare); the
    keywords let the float64 replay ask with its own values and tolerances."""
    from fnnet.check.kinks import joint_test

    def adjudicate(bad, h=h, j=j, floor=floor, rt_fd=rt_fd):
        c, f, b, tmin = fd.per_element(leaf.offset + bad)
        scale = max(np.abs(h[np.isfinite(h)]).max(initial=0.0), np.abs(j[np.isfinite(j)]).max(initial=0.0),
                    np.abs(c[np.isfinite(c)]).max(initial=0.0))
        fl_all = np.broadcast_to(np.asarray(floor, np.float64), leaf.shape).reshape(-1)
        tol = rt_fd * scale + fl_all[bad] + 2 * fd.noise(tmin)
        joint = lambda idx, hv: joint_test(fd, leaf.offset, idx, hv,
                                           np.full(len(idx), rt_fd * scale + 2 * fd.noise(tmin)) + fl_all[idx],
                                           rt_fd, rng)
        jumps = lambda sub: autodiff_kink(fd, leaf.offset + bad[sub], scale)
        hull = lambda sub, values: within_hull(fd, leaf.offset + bad[sub], values, tol[sub], rng)
        return Bracket(lo=np.minimum(f, b), hi=np.maximum(f, b), tol=tol, central=c, joint=joint, jumps=jumps,
                       hull=hull)
    return adjudicate


def _judge_leaf(w, plan, s, k, leaf, prior):
    """One leaf's rows: the rule against jax.vjp, the reference and finite differences, each
    status from fnnet.check.verdict; then the leaf rules (a stop_gradient surrogate) and the
    float64 replay. prior: the leaf's structure rows. Returns (rows, the leaf's floor).

    The floors also count the measured rounding of each entry's sums (compare.rounding_floor):
    from float64 autodiff in a coarse check, and in a float64 check from float32 autodiff,
    run only when the leaf fails without it."""
    name = leaf.name
    h_dtype = w.hand[name][1]
    dtype = max((leaf.dtype, h_dtype), key=eps)          # the coarser of the two
    j = w.by_jax[name]
    others = [a for i, a in enumerate(w.flat_primals) if i != k]
    other_max = max([1.0] + [float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) for a in others])
    floor = (s.atol if s.atol is not None else
             local_floor(dtype, w.flat_primals[k].reshape(leaf.shape), w.outputs, other_max))
    floor64 = local_floor(np.float64, w.flat_primals[k].reshape(leaf.shape), w.outputs, other_max)
    measure = s.atol is None and w.independent
    measured = measured64 = 0.0
    if measure and w.by_jax64 is not None and leaf.dtype != np.float64:
        pairs = [(j, w.by_jax64[name])]
        if w.replay is not None and name in w.replay.hand:
            pairs.append((w.hand[name][0], w.replay.hand[name]))
        measured = rounding_floor(pairs, w.by_jax64[name], leaf.dtype, dtype)
        measured64 = rounding_floor(pairs, w.by_jax64[name], leaf.dtype, np.float64)
    rows = _leaf_rows(w, plan, s, k, leaf, prior, dtype, floor + measured, floor64 + measured64)
    if measure and dtype == np.float64 and any(r.status == Status.FAIL for r in rows):
        coarse = w.coarse()
        if coarse is not None and name in coarse.leaves:
            h32, j32 = coarse.leaves[name]
            again = rounding_floor([(h32, w.hand[name][0]), (j32, j)], j, np.float32, np.float64)
            if again.any():
                floor = floor + again
                rows = _leaf_rows(w, plan, s, k, leaf, prior, dtype, floor, floor64)
    return rows, floor + measured


def _leaf_rows(w, plan, s, k, leaf, prior, dtype, floor, floor64):
    """_judge_leaf's rows at the given floors (per element)."""
    name, independent = leaf.name, w.independent
    h = w.hand[name][0]
    j = w.by_jax[name]
    rt, rt_fd = plan.rt[name], plan.rt_fd[name]
    adjudicate = _adjudicator(w.fd, leaf, h, j, floor, rt_fd, plan.rngs[name]) if w.fd is not None else None
    ref = None if w.by_ref is None else w.by_ref[name]
    rows = list(prior)

    res = compare(h, j, rt, floor, adjudicate,
                  majority=majority_fn(adjudicate, h, ref, rt, floor, j) if w.fd is not None and independent
                  else None)
    rows.append(oracle_row(name, s.oracle_text, "jax", res, independent, w.rules))
    jax_allowed = res.tol * max(np.abs(h[np.isfinite(h)]).max(initial=0.0),
                                np.abs(j[np.isfinite(j)]).max(initial=0.0)) if independent else -1.0
    if w.by_ref is None:
        rows.append(Row(name, "reference", "reference", decide(Evidence(present=False)), note=w.ref_note))
    else:
        yard = None if not independent else (j, dtype) if w.by_jax64 is None else (j, dtype, w.by_jax64[name])
        rows.append(oracle_row(name, "reference", "reference",
                               compare(h, ref, rt, floor, adjudicate, yardstick=yard), True, []))
    if w.lowp:
        rows.append(Row(name, "finite diff", "fd", decide(Evidence(present=False)), note=lowp_note(w.lowp)))
    fd_args = (name in plan.per_element, s.directions, plan.blocks[name], s.localize_max, plan.rngs[name])
    if w.fd is not None:
        rows.append(fd_row(w.fd, leaf, h, j, rt_fd, floor, jax_allowed, dtype, *fd_args, independent))
    if independent:
        rows = judge_leaf(rows, w.stops)
    # the replay adds rows only where the check's own dtype saw nothing wrong with the leaf;
    # where it did, the replay says whether the failure is the coarse dtype's alone
    rep64 = w.replay
    if rep64 is not None and name in rep64.hand and (w.fd is not None or w.by_ref is not None or independent):
        found = _replay.judge(leaf, rep64.hand[name], rep64.jax[name] if rep64.jax else None,
                              ref, w.fd, adjudicate, floor64, independent, fd_args, w.stops if independent else 0)
        if any(r.status == Status.FAIL for r in rows):
            rows = _replay.explain(rows, name, dtype, failed64=bool(found))
        else:
            rows.extend(found)
    return rows


def _report(w, plan, s, rows, names, seconds):
    """The Report: rows in leaf order (structure rows first within a leaf) under a header
    saying what the witnesses were."""
    leaves = w.leaves
    order = {l.name: k for k, l in reversed(list(enumerate(leaves)))}
    order.update({n: order.get(next((l.name for l in leaves if l.primal == i), ""), -1)
                  for i, n in enumerate(names) if n not in order})
    rows = sorted(rows, key=lambda r: order.get(r.primal, -1))
    dtypes = sorted({str(l.dtype) for l in leaves})
    fd = w.fd
    fd_text = (f"finite differences in float64, step {s.step:g}·max(1, |x|)" if fd is None or fd.fd_eps <= eps(np.float64)
               else f"finite differences limited to {sorted(map(str, fd.out_dtypes))} (fun's output under x64)")
    if any(l.name not in plan.per_element for l in leaves) and s.detect is not None:
        fd_text += (f"; directional leaves add block directions: a single entry off by more than "
                    f"rtol × block (>= {s.detect:g}) × the block's mean |hand·max(1, |x|)| is always caught")
    header = f"primals {'/'.join(dtypes)}; cotangent {s.cotangent_text or w.ct_text}; {fd_text}"
    if w.lowp:
        header += (f"; fun computes in {'/'.join(w.lowp)} inside: judged against jax.vjp (and the reference) "
                   f"at {plan.low_tol:.2g} relative, not by finite differences, not replayed in float64")
    if w.replay is not None:
        header += ("; the rule also replayed in float64 and judged at float64's tolerances" +
                   (f" (not replayed: {w.replay.why})" if w.replay.why else ""))
    return Report(w.title, tuple(rows), header, seconds)
