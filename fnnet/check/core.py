"""check_vjp: one hand-written vjp against jax.vjp, a reference and float64 finite differences."""
from __future__ import annotations

import time

import jax
import numpy as np

from fnnet.check import independence, nondiff as _nd, replay as _replay
from fnnet.check.evaluate import evaluate, lowp_note
from fnnet.check.compare import RTOL_FD, compare, eps, local_floor, rtol as dtype_rtol
from fnnet.check.fd import FiniteDifferences
from fnnet.check.fdcompare import block_size
from fnnet.check.hull import within_hull
from fnnet.check.kinks import cross_primal_row
from fnnet.check.smoothness import autodiff_kink
from fnnet.check.xla import jit_options, options_for
from fnnet.check.inputs import (Leaf, as_primal, call_reference, make_cotangent, match_hand,
                                 primal_names, rng_for, x64_context)
from fnnet.check.report import Report, Row
from fnnet.check.rows import fd_row, majority_fn, oracle_row, stopped_rows
from fnnet.check.verdict import Evidence, Status, decide

MODES = ("auto", "directional", "full")
LOW_PRECISION_ROUNDINGS = 8   # eps of a coarser internal dtype allowed between the rule and jax.vjp


def check_vjp(fun, vjp, *primals, cotangent=None, key=None, reference=None, nondiff=(), mode="auto",
              names=None, directions=4, detect=1e-3, full_max=2000, full_budget=1024, localize_max=50_000,
              step=1e-6, rtol=None, atol=None, jit=True, float64_replay=True, title=None):
    """Compare a hand-written vjp with jax.vjp, an optional reference and finite differences.

    fun(*primals) -> y: pure JAX (y an array or pytree of floating arrays).
    vjp(*primals, cotangent) -> tuple with one cotangent per primal, each of its primal's
        tree, shapes and dtype (e.g. (DenseParams(dw, db), dx)); see nondiff for the others.
    cotangent: tree of y; default standard normal drawn from `key`.
    key: jax.random key or int seed (default key(0)); cotangent and directions derive from it.
    reference: callable like vjp but on NumPy float64 arrays, or None (reported "n/a").
    nondiff: positions (int) or names (str) of primals held fixed and not differentiated:
        integer indices, bool masks, PRNG keys, static config (jax.custom_vjp's
        nondiff_argnums). Primals whose leaves are all non-floating are nondiff without
        being named. They go unchanged to fun, vjp, the reference and every witness; the
        vjp returns None/float0/zeros for them, or cotangents for the others only
        (fnnet.check.nondiff).
    mode: "auto": per element for leaves of <= full_max elements, smallest first, while the
        check's per-element total stays <= full_budget (each element costs two evaluations
        of fun); the other leaves directional. When jax.vjp is not an independent witness
        (fun contains a user custom rule) localize_max stands for both limits. "full": always per element. "directional":
        `directions` random directions per leaf plus block directions (detect).
    detect: directional power: block directions (random ±1 on blocks of detect / rtol
        elements, at most 256 blocks) always catch a single entry whose error exceeds
        detect × the mean |hand_k · max(1, |x_k|)| over its block; None: random only.
        A failing direction is re-run per element on its block (or the whole leaf, if it has
        <= localize_max elements) to find the index.
    step: finite-difference step, scaled per element by max(1, |x_i|).
    rtol, atol: override the dtype-aware relative tolerance (every row, finite differences
        included) and the resolution floor (fnnet.check.compare); None keeps the defaults.
    jit: evaluate fun, vjp and jax.vjp inside one jax.jit (one compilation instead of one
        per eager op); jit=False runs them eagerly, exactly as given.
    float64_replay: a rule checked in a coarser dtype is also run with its inputs in float64
        and judged at float64's tolerances (fnnet/check/replay.py): a bug smaller than
        float32 resolves still fails. False: judge at the check's own dtype only.
    names: display names of the primals (default: fun's parameter names).
    Returns a Report; never raises for a wrong answer (raise_if_failed() does), but raises
    ValueError/TypeError when the vjp's output cannot be matched to the primals at all.
    """
    return run_check(fun, vjp, *primals, cotangent=cotangent, key=key, reference=reference, nondiff=nondiff,
                     mode=mode, names=names, directions=directions, detect=detect, full_max=full_max,
                     full_budget=full_budget, localize_max=localize_max, step=step, rtol=rtol, atol=atol,
                     jit=jit, float64_replay=float64_replay, title=title)


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
    nd_pos, why = _nd.positions(nondiff, names, primals)
    n = len(primals)
    hand = lambda p, ct: (vjp(*p, ct), {})
    oracle_fun_d, nd_rows = oracle_fun, []
    if nd_pos:
        diff_pos = [i for i in range(n) if i not in why]
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
        hand = lambda dp, ct, names=names: _nd.pick(vjp(*full(dp), ct), n, diff_pos, nd_pos, names, rule)
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
    report = _check(fun, hand, primals, names, cotangent, key, reference, mode, directions, detect,
                    full_max, full_budget, localize_max, step, rtol, atol, jit, title, cache_key,
                    cotangent_text, oracle_fun_d, oracle_text, rule, float64_replay)
    if nd_rows:
        report = Report(report.title, tuple(nd_rows) + report.rows, report.header, report.seconds)
    return report


def _check(fun, hand, primals, names, cotangent, key, reference, mode, directions, detect, full_max,
           full_budget, localize_max, step, user_rtol, user_atol, jit, title, cache_key, cotangent_text,
           oracle_fun, oracle_text, rule="the hand-written vjp", float64_replay=True):
    t0 = time.perf_counter()
    title = title or getattr(fun, "__name__", "fun")
    if isinstance(key, int):
        key = jax.random.key(key)
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
        y, hand_out, by_jax, flags = evaluate(fun, hand, oracle_fun, primals, ct, jit, options, rule)
        coarse = any(l.dtype != np.float64 for l in leaves)
        rep64 = (_replay.run(lambda p, c: evaluate(fun, hand, oracle_fun, p, c, jit, options, rule),
                             primals, ct, leaves, not rules)
                 if coarse and float64_replay and user_rtol is None and user_atol is None and not lowp else None)
        by_jax64 = (rep64.jax if rep64 is not None and rep64.jax is not None else
                    _replay.leaf_dict(_replay.run_jax(oracle_fun or fun, primals, ct), leaves)
                    if coarse and reference is not None and not rules else None)
        outputs = [(np.asarray(c, np.float64), np.asarray(v, np.float64))
                   for c, v in zip(jax.tree.leaves(ct), jax.tree.leaves(y)) if c.dtype != jax.dtypes.float0]
        flat_primals = [np.asarray(l, np.float64) for l in jax.tree.leaves(primals)]

    independent = not rules
    rows, hand_leaf, skip = match_hand(hand_out, primals, names, leaves, title, rule)
    for name, nonzero in flags.items():
        if any(bool(np.asarray(f)) for f in nonzero):
            rows.append(Row(name, "structure", "structure", Status.FAIL,
                            note="the hand-written vjp returned a non-zero cotangent for this "
                                 "non-differentiable input (expected None, float0 or zeros)"))
    by_ref = call_reference(reference, primals, ct, names, leaves) if reference is not None else None
    fd = FiniteDifferences(fun, primals, ct, step, cache_key, options) if offset and not lowp else None
    jax_leaves = dict(zip([l.name for l in leaves], (np.asarray(v, np.float64) for v in jax.tree.leaves(by_jax))))
    if len(jax_leaves) != len(leaves):  # jax.vjp always matches; guard against odd custom pytrees
        raise RuntimeError("check: jax.vjp returned a different number of leaves than the primals have")

    # Without an independent jax.vjp nothing else compares element by element: finite
    # differences then go per element on every leaf up to localize_max elements (mode auto).
    per_element, spent = set(), 0
    budget, biggest = (full_budget, full_max) if independent else (localize_max, localize_max)
    for leaf in sorted(leaves, key=lambda l: l.size):
        if mode == "full" or (mode == "auto" and leaf.size <= biggest and spent + leaf.size <= budget):
            per_element.add(leaf.name)
            spent += leaf.size
    rngs = {leaf.name: rng_for(key, 1, k) for k, leaf in enumerate(leaves)}
    # a fun computing in a coarser dtype inside: the rule and jax.vjp round there too, each
    # where it casts, so they agree to a few of that dtype's eps, not to the primals'
    low_tol = max([LOW_PRECISION_ROUNDINGS * eps(d) for d in lowp], default=0.0)
    rt_of = lambda l: user_rtol if user_rtol is not None else max(
        low_tol, dtype_rtol(max((l.dtype, hand_leaf[l.name][1]), key=eps)))
    rtfd_of = lambda l: user_rtol if user_rtol is not None else max(RTOL_FD, rt_of(l))
    blocks = {l.name: block_size(l.size, rtfd_of(l), detect) for l in leaves if l.name in hand_leaf}
    if fd is not None:   # all finite differences of the check in one go (fewest padded chunks)
        todo = [l for l in leaves if l.name not in skip]
        fd.prefetch(np.concatenate([np.arange(l.offset, l.offset + l.size) for l in todo
                                    if l.name in per_element] + [np.zeros(0, np.int64)]),
                    [(l.offset, l.size, directions, rngs[l.name], blocks[l.name]) for l in todo
                     if l.name not in per_element])

    per_element_leaves = []      # (leaf, hand, rt_fd, floor): the joint kink test across leaves
    for k, leaf in enumerate(leaves):
        if leaf.name in skip:
            continue
        h, h_dtype = hand_leaf[leaf.name]
        j = jax_leaves[leaf.name]
        dtype = max((leaf.dtype, h_dtype), key=eps)          # the coarser of the two
        rt, rt_fd = rt_of(leaf), rtfd_of(leaf)
        others = [a for i, a in enumerate(flat_primals) if i != k]
        other_max = max([1.0] + [float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) for a in others])
        floor = (user_atol if user_atol is not None else
                 local_floor(dtype, flat_primals[k].reshape(leaf.shape), outputs, other_max))

        def adjudicate(bad, leaf=leaf, h=h, j=j, floor=floor, rt_fd=rt_fd):
            from fnnet.check.kinks import joint_test
            c, f, b, tmin = fd.per_element(leaf.offset + bad)
            scale = max(np.abs(h[np.isfinite(h)]).max(initial=0.0), np.abs(j[np.isfinite(j)]).max(initial=0.0),
                        np.abs(c[np.isfinite(c)]).max(initial=0.0))
            fl = np.broadcast_to(np.asarray(floor, np.float64), leaf.shape).reshape(-1)[bad]
            tol = rt_fd * scale + fl + 2 * fd.noise(tmin)
            joint = lambda idx, hv: joint_test(fd, leaf.offset, idx, hv,
                                               np.full(len(idx), rt_fd * scale + 2 * fd.noise(tmin))
                                               + np.broadcast_to(np.asarray(floor, np.float64), leaf.shape)
                                               .reshape(-1)[idx], rt_fd, rngs[leaf.name])
            jumps = lambda sub: autodiff_kink(fd, leaf.offset + bad[sub], scale)
            hull = lambda sub, values: within_hull(fd, leaf.offset + bad[sub], values, tol[sub], rngs[leaf.name])
            return dict(lo=np.minimum(f, b), hi=np.maximum(f, b), tol=tol, central=c, joint=joint, jumps=jumps,
                        hull=hull)

        adj = adjudicate if fd is not None else None
        ref = None if by_ref is None else by_ref[leaf.name]
        res = compare(h, j, rt, floor, adj,
                      majority=majority_fn(adj, h, ref, rt, floor, j) if fd is not None and independent else None)
        rows.append(oracle_row(leaf.name, oracle_text, "jax", res, independent, rules))
        jax_allowed = res["tol"] * max(np.abs(h[np.isfinite(h)]).max(initial=0.0),
                                       np.abs(j[np.isfinite(j)]).max(initial=0.0)) if independent else -1.0
        if by_ref is None:
            rows.append(Row(leaf.name, "reference", "reference", decide(Evidence(present=False)), note=ref_note))
        else:
            yard = None if not independent else (j, dtype) if by_jax64 is None else (j, dtype, by_jax64[leaf.name])
            res_r = compare(h, ref, rt, floor, adj, yardstick=yard)
            rows.append(oracle_row(leaf.name, "reference", "reference", res_r, True, []))
        if fd is not None and leaf.name in per_element:
            per_element_leaves.append((leaf, h, rt_fd, floor))
        if lowp:
            rows.append(Row(leaf.name, "finite diff", "fd", decide(Evidence(present=False)), note=lowp_note(lowp)))
        if fd is not None:
            rows.append(fd_row(fd, leaf, h, j, rt_fd, floor, jax_allowed, dtype, leaf.name in per_element,
                               directions, blocks[leaf.name], localize_max, rngs[leaf.name], independent))
        if independent:
            rows[:] = stopped_rows(rows, leaf.name, stops)
        # the replay adds rows only where the check's own dtype saw nothing wrong with the leaf;
        # where it did, the replay says whether the failure is the coarse dtype's alone
        if rep64 is not None and leaf.name in rep64.hand and (fd is not None or by_ref is not None or independent):
            floor64 = local_floor(np.float64, flat_primals[k].reshape(leaf.shape), outputs, other_max)
            found = _replay.judge(leaf, rep64.hand[leaf.name], rep64.jax[leaf.name] if rep64.jax else None,
                                  ref, fd, adjudicate, floor64, independent,
                                  (leaf.name in per_element, directions, blocks[leaf.name], localize_max,
                                   rngs[leaf.name]), stops if independent else 0)
            if any(r.status == "FAIL" for r in rows if r.primal == leaf.name):
                rows[:] = _replay.explain(rows, leaf.name, dtype, failed64=bool(found))
            else:
                rows.extend(found)

    joint = cross_primal_row(fd, per_element_leaves, rng_for(key, 5)) if fd is not None else None
    if joint is not None:
        rows.append(joint)
    order = {l.name: k for k, l in reversed(list(enumerate(leaves)))}
    order.update({n: order.get(next((l.name for l in leaves if l.primal == i), ""), -1)
                  for i, n in enumerate(names) if n not in order})
    rows.sort(key=lambda r: order.get(r.primal, -1))    # leaf order; structure rows first within a leaf
    dtypes = sorted({str(l.dtype) for l in leaves})
    fd_text = (f"finite differences in float64, step {step:g}·max(1, |x|)" if fd is None or fd.fd_eps <= eps(np.float64)
               else f"finite differences limited to {sorted(map(str, fd.out_dtypes))} (fun's output under x64)")
    if any(l.name not in per_element for l in leaves) and detect is not None:
        fd_text += (f"; directional leaves add block directions: a single entry off by more than "
                    f"rtol × block (>= {detect:g}) × the block's mean |hand·max(1, |x|)| is always caught")
    header = f"primals {'/'.join(dtypes)}; cotangent {cotangent_text or ct_text}; {fd_text}"
    if lowp:
        header += (f"; fun computes in {'/'.join(lowp)} inside: judged against jax.vjp (and the reference) "
                   f"at {low_tol:.2g} relative, not by finite differences, not replayed in float64")
    if rep64 is not None:
        header += ("; the rule also replayed in float64 and judged at float64's tolerances" +
                   (f" (not replayed: {rep64.why})" if rep64.why else ""))
    return Report(title, tuple(rows), header, time.perf_counter() - t0)
