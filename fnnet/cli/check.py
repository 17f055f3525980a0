"""`fnnet check`: the four-way gradient check of every built-in layer and loss and the seeds' nets.

For each public layer and loss (fnnet/cli/check_cases.py; `--list` names them and the cases
that check each, `--only NAME[,NAME]` selects by any of them), the L2 penalty, each of the
seeds' networks and fnnet's custom_vjp bridge (loss_with_manual_grad, by check_custom_vjp),
in float64 and float32, the hand-written backward is compared with
jax.vjp, with the NumPy float64 twin in reference/ and with float64 finite differences
(fnnet.check). Inputs include relu kinks (exact zeros and |x| below the FD step),
saturated sigmoids and tanh (|x| = 40, 20) and softmax logits spread over ±1000.
Prints one row per case with the largest relative error against each oracle, the total
time, and exits 1 if anything failed. `--self-test` judges the checker itself instead: a
battery of correct and buggy hand-written rules (fnnet/check/selftest.py). `--plot DIR`
draws each case's per-leaf heatmap of |actual - expected| / tol (report.plot), `--json DIR`
writes each case's report as JSON for CI (fnnet.check.ci).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

import jax
import numpy as np

from fnnet.cli.check_cases import cases as _cases, covered, public_names

DTYPES = {"float64": np.float64, "float32": np.float32}


def _names(case) -> set:
    """What `--only` matches a case by: its subjects' layer and loss class names and loss
    names (lower case), e.g. {"dense", "tanh", "softmaxcrossentropy", "softmax_cross_entropy"}."""
    subjects = case[3] if len(case) > 3 else ()
    return {n.lower() for n in covered(subjects)}


def select(cases, only):
    """The cases `only` names, in their order: each word (commas split words) is a layer or
    loss name in any case (Conv2D, gelu, SequenceCrossEntropy, mse), which selects every case
    that checks it, or part of a case's name. A word that selects nothing is a ValueError
    naming the valid names."""
    if not only:
        return list(cases)
    words = [w.strip() for item in only for w in item.split(",") if w.strip()]
    chosen = set()
    for word in words:
        hits = {i for i, c in enumerate(cases) if word.lower() in _names(c) or word.lower() in c[0].lower()}
        if not hits:
            raise ValueError(f"--only {word!r} names no layer, loss or case; valid: "
                             f"{', '.join(public_names())}, or part of a case name (fnnet check --list)")
        chosen |= hits
    return [c for i, c in enumerate(cases) if i in chosen]


def list_cases(out=None):
    """Print each public layer/loss with the cases that check it, then every case."""
    out = sys.stdout if out is None else out
    cases = _cases(np.random.default_rng(0))
    print("layers and losses (fnnet check --only NAME[,NAME]; any letter case):", file=out)
    for name in public_names():
        which = [c[0] for c in cases if name.lower() in _names(c)]
        print(f"  {name:<26} {'; '.join(which) or 'NO CASE'}", file=out)
    print(f"cases ({len(cases)}, each in float64 and float32; --only also takes part of a name):", file=out)
    for c in cases:
        print(f"  {c[0]}", file=out)


def _warned(report):
    """True when a row says "warn": the report passes, with a note to read (an oracle outvoted)."""
    return any(r.status == "warn" for r in report.rows)


def _fmt(v):
    return "n/a" if v is None else f"{v:.1e}"


def run(dtypes=("float64", "float32"), only=None, verbose=False, jobs=1, out=None, plot_dir=None, json_dir=None):
    """Run the cases; print the table to `out` (default stdout); return (ok, rows, seconds).
    plot_dir: each case's report.plot as DIR/<case>-<dtype>.png (where the error lies);
    json_dir: each case's report as DIR/<case>-<dtype>.json (fnnet.check.ci)."""
    from fnnet import check
    from fnnet.check import ci

    out = sys.stdout if out is None else out
    t0, cpu0 = time.perf_counter(), time.process_time()
    cases = select(_cases(np.random.default_rng(0)), only)
    header = ("primitive", "dtype", "jax", "reference", "fd", "kinks", "time", "result")
    widths = (34, 7, 8, 9, 8, 5, 6, 6)
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    print("fnnet check: hand-written backward vs oracle, max relative error per oracle "
          "(jax.vjp / reference/ NumPy float64 / finite differences in float64)", file=out)
    print(line(header), file=out)
    print(line(["-" * w for w in widths]), file=out)

    def one(name, dt, build):
        # float64 cases need x64; float32 cases run as a user without x64 would run them
        # (jax's x64 switch is thread-local, so cases can run side by side)
        with jax.enable_x64(dt == "float64"):
            fn, args, kwargs = build(DTYPES[dt])
            t = time.perf_counter()
            report = getattr(check, fn)(*args, **kwargs)
        return report, time.perf_counter() - t

    ok, rows = True, []
    todo = [(case[0], dt, case[2]) for case in cases for dt in dtypes]
    # jobs > 1: XLA compiles with the GIL released, so threads overlap one case's compilation
    # with another's tracing. Rows are printed in order either way.
    pool = concurrent.futures.ThreadPoolExecutor(jobs) if jobs > 1 else None
    results = ([pool.submit(one, *case) for case in todo] if pool else (one(*case) for case in todo))
    try:
        for (name, dt, _), result in zip(todo, results):
            report, secs = result.result() if pool else result
            row = (name, dt, _fmt(report.max_rel_err("jax")), _fmt(report.max_rel_err("reference")),
                   _fmt(report.max_rel_err("fd")), report.kinks, f"{secs:.2f}",
                   "FAIL" if not report.ok else "warn" if _warned(report) else "ok")
            rows.append((row, report))
            ok &= report.ok
            print(line(row), file=out, flush=True)
            stem = ci.file_name(f"{name}-{dt}")
            if json_dir is not None:
                ci.save_json(report, json_dir, stem)
            if plot_dir is not None:
                os.makedirs(plot_dir, exist_ok=True)
                try:
                    report.plot(os.path.join(plot_dir, stem + ".png"))
                except ValueError as e:        # only directional rows: nothing per element to draw
                    print(f"  (no plot: {e})", file=out)
            if verbose or not report.ok or _warned(report):      # a warning's note must be read
                print("\n" + str(report) + "\n", file=out)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n_fail = sum(not r.ok for _, r in rows)
    n_warn = sum(r.ok and _warned(r) for _, r in rows)
    warned = f", {n_warn} passed with warnings (notes above)" if n_warn else ""
    print(f"\n{len(rows)} checks, {n_fail} failed{warned}, total {seconds:.1f} s wall "
          f"({cpu:.1f} s CPU; wall exceeds CPU when the machine is shared)", file=out)
    return ok, rows, seconds


def self_test(dtypes=("float64", "float32"), only=None, verbose=False, out=None):
    """`fnnet check --self-test`: the checker's own battery (fnnet.check.selftest), correct and
    buggy hand-written rules in each dtype; prints per family the bugs caught and the false
    alarms, then the totals; returns the selftest Result."""
    from fnnet.check import selftest

    out = sys.stdout if out is None else out
    words = [w.strip() for item in (only or ()) for w in item.split(",") if w.strip()]
    rules = selftest.select(words) if words else selftest.battery()
    print(f"fnnet check --self-test: {len(rules)} hand-written rules (correct and buggy) judged by "
          f"fnnet.check in {'/'.join(dtypes)}", file=out)
    show = (lambda text: print("\n" + text + "\n", file=out)) if verbose else None
    result = selftest.run(rules, dtypes, verbose=show)
    print(result.text(), file=out)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="fnnet check",
        description="Four-way gradient check of every built-in layer and loss (fnnet check --list), "
                    "the L2 penalty, the seeds' networks, a CNN and a tiny GPT, in float64 and "
                    "float32: hand-written "
                    "backward vs jax.vjp, vs the NumPy float64 twin in reference/, vs float64 "
                    "finite differences. Exits 1 on any failure.")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                        help="precision of the primals (default: both)")
    parser.add_argument("--only", action="append", metavar="NAME[,NAME]",
                        help="run only the cases of these layers or losses (any letter case: Conv2D, "
                             "gelu, mse), or whose name contains NAME; repeatable")
    parser.add_argument("--list", action="store_true",
                        help="print every layer and loss with the cases that check it, and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every full report")
    parser.add_argument("--self-test", action="store_true",
                        help="judge the checker itself: a battery of correct and buggy hand-written rules "
                             "(fnnet/check/selftest.py; --only selects families by name); exits 1 on any "
                             "missed bug or false alarm")
    parser.add_argument("--plot", metavar="DIR", default=None,
                        help="draw each case's per-leaf heatmap of |actual - expected| / tol into "
                             "DIR/<case>-<dtype>.png (where the error lies)")
    parser.add_argument("--json", metavar="DIR", default=None,
                        help="write each case's report as DIR/<case>-<dtype>.json, for CI")
    parser.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="cases checked side by side in threads (default: 2, or 1 on one core)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.list:
        list_cases()
        return 0
    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    if args.self_test:
        from fnnet.check import selftest
        try:
            if args.only:
                selftest.select([w for item in args.only for w in item.split(",") if w.strip()])
        except ValueError as e:
            print(f"fnnet check: {e}", file=sys.stderr)
            return 2
        return 0 if self_test(dtypes, args.only, args.verbose).ok else 1
    try:
        select(_cases(np.random.default_rng(0)), args.only)   # a bad name: before any output
    except ValueError as e:
        print(f"fnnet check: {e}", file=sys.stderr)
        return 2
    ok, _, _ = run(dtypes, args.only, args.verbose, args.jobs, plot_dir=args.plot, json_dir=args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
