"""`fnnet bench` / `python scripts/bench.py`: run the workloads, write JSON and Markdown."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, NamedTuple

from fnnet.bench.notes import notes

SYSTEMS = ("numpy-seed", "reference", "fnnet", "fnnet.fit", "jax.grad", "torch")

EPILOG = """\
systems (one row per system and dtype):
  numpy-seed  the seed's own NumPy loop (W1: seed 001, W2: seed 002; W3: the same style
              with a NumPy Adam), float64 as published and float32
  reference   reference/ (NumPy float64 twin): train_sgd, or backward + NumPy Adam
  fnnet       jit(lax.scan) of fnnet.value_and_grad (hand-written backward) + optax;
              W3 adds "fnnet [bf16 matmuls]": the same with fnnet.with_matmul_dtype(net,
              "bfloat16") (bf16 operands, float32 params and accumulation; opt-in)
  fnnet.fit   fnnet.fit itself (its overhead over the bare scan above), and
              fnnet.fit(..., grad="autodiff") in the row "fnnet.fit [autodiff]"
  jax.grad    the same scan with jax.value_and_grad(fnnet.loss)
  torch       PyTorch eager on CPU (optional: pip install 'fnnet[bench]')

workloads:
  W1  seed 001 digits: 64-128-128-10 sigmoid/softmax CE, SGD lr 0.5, 1500 full-batch epochs
  W2  seed 002 blobs: 2-5-3 relu/softmax CE + L2 0.01, SGD lr 0.01, 5001 full-batch steps
  W3  784-1024-1024-10 relu, synthetic 60000x784, Adam 1e-3, batch 256, one epoch
      (its NumPy/reference rows time a few steps and extrapolate, labelled as such)
  W4  deep ReLU: 512-(512 x 20)-10, synthetic 8192x512, SGD lr 0.01, batch 1024, one epoch
      (where the step's activation memory differs: see the step memory table)
  CNN fnnet.cnn() on the digits [n, 8, 8, 1], Adam 1e-3, batch 64, 3 epochs
  GPT fnnet.gpt(103, 64, 2 layers, 4 heads, dim 64) on 2048 pydoc-text windows, AdamW, batch 32
  L-conv, L-maxpool, L-avgpool, L-batchnorm, L-dropout, L-elu, L-silu, L-softplus, L-gelu,
  L-layernorm, L-rmsnorm: one layer in a small digits classifier, and L-relu, the
      control (the Dense(256) + ReLU classifier the row nets share); run only when named,
      or all of them with --workloads layers
  (more are registered with fnnet.bench.workloads.register)
  GPT-torch  only when named: fnnet.gpt vs PyTorch eager and torch.compile, the same config,
      weights, tokens and AdamW; fnnet through fit and through a user's own jax.jit step,
      and jax.grad's jit step; configs from --gpt-configs (S, M, L, XL; --quick: tiny);
      torch uses as many intra-op threads as the process may use cores (as XLA does);
      writes OUT/gpt-torch-<backend>.json and .md (fnnet/bench/gpt_torch.py)
  CNN, GPT and L-*: fnnet = fnnet.fit (hand-written backward), jax.grad =
  fnnet.fit(grad="autodiff"), same params, key and batches; other systems: "not applicable"

step memory: compiled.memory_analysis() of one jitted step (value and grad + optimizer
update) at the workload's batch, for fnnet, jax.grad and the custom_vjp bridge
(jax.value_and_grad of fnnet.loss_with_manual_grad(net)).

Writes OUT/results-<backend>.json and OUT/results-<backend>.md, OUT being --out or, by
default, a new folder fnnet-bench-<UTC date-time> in the current directory (never the
repository's committed bench/ results unless --out names them). Every table records the
load average before it and after it, each read once the load has had up to 150 s of quiet to
fall (a benchmark's own threads lift the average it is judged by; see timing.settle), and is
marked "not publishable" when the 1-minute load was still above 1 (something else was
running). Speed targets are checked in the report, never asserted in tests; a --quick run
reports them as "not checked" (its tiny workloads measure nothing publishable).
"""


def parser():
    p = argparse.ArgumentParser(
        prog="fnnet bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Side-by-side training benchmark: the same workload, the same initial "
                    "weights, timed in one process for NumPy (the seeds), reference/, fnnet, "
                    "fnnet.fit, jax.grad and PyTorch.")
    p.add_argument("--quick", action="store_true",
                   help="tiny epochs and a small W3 (a few seconds; for tests)")
    p.add_argument("--workloads", default=None,
                   help="comma list of names or aliases ('layers' = every L-*) "
                        "(default: W1,W2,W3,W4,CNN,GPT)")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma list (default: all: {','.join(SYSTEMS)})")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per system, interleaved; the median is reported (default 3, quick 1)")
    p.add_argument("--out", default=None,
                   help="output folder (default: a new fnnet-bench-<UTC date-time>/ here)")
    p.add_argument("--gpt-configs", default=None,
                   help="GPT-torch configs, comma list of tiny,S,M,L,XL (default S,M,L,XL; quick: tiny)")
    p.add_argument("--threads", default="1",
                   help="BLAS threads of the NumPy rows and intra-op threads of torch: a number, "
                        "or 'default' (default: 1, see the report's notes; 'default threads' "
                        "rows show the libraries' own setting)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--devices", default=None, metavar="1,2,4,...",
                   help="instead of the systems table: fnnet.fit's throughput data-parallel over "
                        "each device count (simulated CPU devices on a CPU-only machine: they share "
                        "its cores, so this shows overhead, not speedup); default workloads W1,W3; "
                        "writes OUT/scaling-<backend>.md")
    p.add_argument("--layouts", action="store_true",
                   help="with --devices N (even, >= 4): instead, each way fit splits a run over N devices "
                        "(data, fsdp, data x fsdp, data x model) against one device: equality, params and "
                        "optimizer bytes per device, the compiled step's memory and collectives, step time "
                        "(fnnet/bench/devices.py); workloads mlp,gpt; writes OUT/devices-<backend>.md")
    return p


def _split(text, known, what):
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise SystemExit(f"fnnet bench: unknown {what} {bad or text!r}; known: {', '.join(known)}")
    return items


def plan(w, systems, threads, quick, torch_ok, torch_why):
    """[(system, variant, dtype, factory)] for one workload; factory() -> Runner, or a
    string saying why the system cannot run ("not installed").

    threads: BLAS threads of the NumPy rows and torch's intra-op threads (None: their
    defaults); when set, a "default threads" row of numpy-seed and torch, timed over a
    few steps and extrapolated, shows what the untouched defaults do.
    """
    from fnnet.bench import systems_jax as sj
    from fnnet.bench import systems_numpy as sn
    from fnnet.bench import systems_torch as st

    few = w.slow_steps if w.batch_size is not None else (2 if quick else 30)
    systems = [s for s in systems if w.runs(s)]
    out = []
    if "numpy-seed" in systems:
        for dt in ("float64", "float32"):
            out.append(("numpy-seed", "", dt, lambda dt=dt: sn.seed_runner(w, dt, threads)))
        if threads is not None:
            out.append(("numpy-seed", "default threads", "float64",
                        lambda: sn.seed_runner(w, "float64", None, "default threads", timed_steps=few)))
    if "reference" in systems:
        out.append(("reference", "", "float64", lambda: sn.reference_runner(w, threads)))
    for dt in w.dtypes:
        if "fnnet" in systems:
            out.append(("fnnet", "", dt, lambda dt=dt: sj.scan_runner(w, dt, "fnnet")))
        if "jax.grad" in systems:
            out.append(("jax.grad", "", dt, lambda dt=dt: sj.scan_runner(w, dt, "jax.grad")))
    if "fnnet" in systems and w.bf16_row:
        out.append(("fnnet", "bf16 matmuls", "float32",
                    lambda: sj.scan_runner(w, "float32", "fnnet", matmul_dtype="bfloat16")))
    if "fnnet.fit" in systems:
        out.append(("fnnet.fit", "", "float32", lambda: sj.fit_runner(w, "float32")))
        out.append(("fnnet.fit", "autodiff", "float32", lambda: sj.fit_runner(w, "float32", "autodiff")))
    if "torch" in systems:
        variants = [("", dt, threads, None) for dt in w.dtypes]
        if threads is not None:
            variants.append(("default threads", "float32", None, few))
        for variant, dt, n, k in variants:
            factory = (lambda dt=dt, n=n, variant=variant, k=k: st.torch_runner(w, dt, n, variant, k)) \
                if torch_ok else torch_why
            out.append(("torch", variant, dt, factory))
    return out


def main(argv=None) -> int:
    try:
        args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:                          # --help, or a usage error
        return e.code if isinstance(e.code, int) else 2
    return run(args)


def _scaling(args, log) -> int:
    """`--devices 1,2,4,8`: fnnet/bench/scaling.py (needs the devices before JAX starts)."""
    from fnnet.train.sharding import data_mesh
    try:
        counts = sorted({int(c) for c in args.devices.split(",") if c.strip()})
        if not counts or counts[0] < 1:
            raise ValueError(f"--devices must be positive integers, got {args.devices!r}")
        data_mesh(counts[-1])
        from fnnet.bench import scaling, workloads
        names = _split(args.workloads or "W1,W3", workloads.names("mlp"), "workload(s)")
        wls = workloads.get(names, args.quick)
    except (SystemExit, ValueError) as e:
        print(e if isinstance(e, SystemExit) else f"fnnet bench: {e}", file=sys.stderr)
        return 2
    scaling.run(counts, wls, args.repeats or (1 if args.quick else 3), args.out, log)
    return 0


def _layouts(args, log) -> int:
    """`--devices N --layouts`: fnnet/bench/devices.py (needs the devices before JAX starts)."""
    from fnnet.train.sharding import data_mesh
    try:
        if not args.devices.strip().isdigit():
            raise ValueError(f"--devices {args.devices!r} --layouts: one device count, e.g. --devices 8")
        n = int(args.devices)
        data_mesh(n)
        from fnnet.bench import devices
        devices.meshes(n)
        names = _split(args.workloads or ",".join(devices.WORKLOADS), devices.WORKLOADS, "workload(s)")
    except (SystemExit, ValueError) as e:
        print(e if isinstance(e, SystemExit) else f"fnnet bench: {e}", file=sys.stderr)
        return 2
    devices.run(n, names, args.quick, args.out, log, args.repeats)
    return 0


def default_out():
    """A folder name of its own per run: fnnet-bench-<UTC date-time>."""
    return "fnnet-bench-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def _split_gpt_torch(text):
    """"W1,GPT-torch" -> ("W1", True); the GPT-vs-torch workload is not a registered one."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    rest = [t for t in items if t != "GPT-torch"]
    return (",".join(rest) if rest else None), len(rest) != len(items)


def _gpt_torch(args, log) -> int:
    """`--workloads GPT-torch`: fnnet/bench/gpt_torch.py's tables -> OUT/gpt-torch-<backend>.*"""
    from fnnet.bench import gpt_torch, report, report_md, systems_torch, timing
    from fnnet.bench import systems_jax as sj
    import fnnet
    try:
        configs = gpt_torch.parse_configs(args.gpt_configs or ("tiny" if args.quick else "S,M,L,XL"))
    except ValueError as e:
        print(f"fnnet bench: {e}", file=sys.stderr)
        return 2
    repeats = args.repeats or (1 if args.quick else 5)
    steps = 2 if args.quick else 20
    threads = gpt_torch.default_threads()
    torch_ok, torch_info = systems_torch.available()
    peak_n, peak_reps = (256, 3) if args.quick else (2048, 7)
    load0 = timing.loadavg()
    peak = sj.matmul_peak(peak_n, peak_reps)
    settle_s = 0.0 if args.quick else timing.SETTLE_S
    tables, md = gpt_torch.run(configs, steps, repeats, gpt_torch.SYSTEMS, threads, log, settle_s)
    result = {"machine": {**report.machine(f"{torch_info} ({threads} threads)" if torch_ok else torch_info),
                          "load_start": load0, "load_end": timing.loadavg(),
                          "fnnet_xla_flags_status": fnnet.XLA_FLAGS_STATUS},
              "config": {"quick": args.quick, "repeats": repeats, "steps": steps,
                         "configs": [c.name for c in configs], "torch_threads": threads},
              "peak": peak, "tables": tables}
    m = result["machine"]
    head = (f"# fnnet bench: GPT vs PyTorch ({m['backend']})\n\n- {m['cpu']}, {m['usable_cores']} usable cores; "
            f"jax {m['jax']}, torch {m['torch']}; {m['date']}\n- XLA_FLAGS={m['xla_flags'] or '(unset)'} "
            f"(import fnnet: {m['fnnet_xla_flags_status']}); float32 matmul peak "
            f"({peak_n}x{peak_n} jnp.dot) {peak['gflops']:.1f} GFLOP/s\n\n")
    report_md.write_result(args.out, f"gpt-torch-{m['backend']}", result, head + md, log)
    return 0


def run(args) -> int:
    """The run, as named steps: the GPT-vs-torch tables (if named), the options, the matmul
    peak, each workload measured with the load around it, the peak again, then the report."""
    t_start = time.perf_counter()
    if args.out is None:
        args.out = default_out()
    args.workloads, want_gpt_torch = _split_gpt_torch(args.workloads)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    log(f"fnnet bench: writing to {args.out}/")
    if want_gpt_torch:
        rc = _gpt_torch(args, log)
        if rc or args.workloads is None:
            return rc
    from fnnet.bench import timing              # numpy only: the load is read before jax starts
    load_start = timing.loadavg()
    import jax
    jax.config.update("jax_enable_x64", True)        # float64 rows; float32 rows stay float32
    from fnnet.bench import systems_jax as sj, systems_torch

    if args.devices is not None:
        return _layouts(args, log) if args.layouts else _scaling(args, log)
    if args.layouts:
        print("fnnet bench: --layouts measures the layouts over --devices N; give --devices too", file=sys.stderr)
        return 2
    try:
        opts = _options(args)
    except (SystemExit, ValueError) as e:
        print(e if isinstance(e, SystemExit) else f"fnnet bench: {e}", file=sys.stderr)
        return 2
    torch_ok, torch_info = systems_torch.available()
    if not torch_ok and "torch" in opts.systems:
        log(f"note: PyTorch {torch_info}: its rows are marked 'not installed'")
    torch_label = f"{torch_info} ({systems_torch.threads()} threads)" if torch_ok else "not installed"

    peak_n, peak_reps = (256, 3) if args.quick else (2048, 7)
    log(f"float32 matmul peak ({peak_n}x{peak_n} jnp.dot) ...")
    peak_start = sj.matmul_peak(peak_n, peak_reps)
    log(f"  {peak_start['gflops']:.1f} GFLOP/s")
    out_w, nets_out = {}, {}
    for w in opts.workloads:
        log(f"== {w.name} ({w.title}): {w.describe()}")
        if w.kind == "net":                          # CNN, GPT, L-*: fnnet.fit vs fit(grad="autodiff")
            nets_out[w.name] = _measure_net(w, opts, log)
        else:
            out_w[w.name] = _measure_mlp(w, args, opts, torch_ok, log)
    peak_end = sj.matmul_peak(peak_n, peak_reps)
    peak = max(peak_start, peak_end, key=lambda p: p["gflops"])
    peak = {**peak, "start_gflops": peak_start["gflops"], "end_gflops": peak_end["gflops"]}

    result = _result(args, opts, out_w, nets_out, peak, torch_label, load_start)
    result["wall_s"] = time.perf_counter() - t_start
    _write_and_print(result, args, log)
    return 0


class _Options(NamedTuple):
    names: list        # workload names, expanded
    systems: list      # systems to time
    workloads: list    # the Workload objects (quick sizes under --quick)
    threads: Any       # intra-op threads, or None for each library's default
    repeats: int
    settle_s: float    # longest quiet wait before each load reading (timing.settle); 0 under --quick


def _options(args) -> _Options:
    """The validated options (ValueError / SystemExit with the message for a bad one)."""
    from fnnet.bench import workloads
    names = workloads.expand(args.workloads) if args.workloads else list(workloads.default_names())
    systems = _split(args.systems, SYSTEMS, "system(s)")
    wls = workloads.get(names, args.quick)
    threads = None if args.threads == "default" else int(args.threads)
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        raise ValueError("--repeats must be >= 1")
    from fnnet.bench import timing
    return _Options(names, systems, wls, threads, repeats, 0.0 if args.quick else timing.SETTLE_S)


def _measure_net(w, opts, log) -> dict:
    """A network workload: fnnet.fit vs fit(grad="autodiff"), with the load around it."""
    from fnnet.bench import systems_nets, timing
    load_before, _ = timing.settle(opts.settle_s)
    out = systems_nets.run(w, opts.systems, opts.repeats, log)
    load_after, settled_s = timing.settle(opts.settle_s)
    return {**out, **timing.load_record(load_before, load_after, settled_s)}


def _measure_mlp(w, args, opts, torch_ok, log) -> dict:
    """An MLP workload: every system's runner timed interleaved, the matmul ceilings of its
    shapes, the step memory, and the load before and after."""
    from fnnet.bench import memory as bench_memory, systems_numpy, systems_torch, timing
    from fnnet.bench import systems_jax as sj
    load_before, _ = timing.settle(opts.settle_s)
    runners, missing = [], []
    for system, variant, dt, factory in plan(w, opts.systems, opts.threads, args.quick, torch_ok,
                                             "not installed"):
        if isinstance(factory, str):
            missing.append((system, variant, dt, factory))
            continue
        try:
            r = factory()
            runners.append(r)
            if r.compile_s is not None:
                log(f"    {r.key:<34} compiled in {r.compile_s:.2f} s")
        except Exception as e:                   # e.g. reference/ not importable
            missing.append((system, variant, dt, f"error: {type(e).__name__}: {e}"))
            log(f"    {system}/{dt}: {type(e).__name__}: {e}")
    timings = timing.measure(runners, opts.repeats, w.steps, log)
    reps = 3 if args.quick else 7
    ceiling = sj.matmul_ceiling(w, reps, per_shape=not args.quick, seconds=0.02 if args.quick else 0.5)
    ceiling["numpy_gflops"] = systems_numpy.matmul_ceiling(w, reps, opts.threads)
    ceiling["torch_gflops"] = systems_torch.matmul_ceiling(w, reps, opts.threads) if torch_ok else None
    log("    step memory (compiled.memory_analysis) ...")
    memory = bench_memory.step_memory(w, "float32")
    load_after, settled_s = timing.settle(opts.settle_s)
    return {"runners": runners, "timings": timings, "missing": missing, "ceiling": ceiling, "workload": w,
            "memory": memory, "load": timing.load_record(load_before, load_after, settled_s)}


def _result(args, opts, out_w, nets_out, peak, torch_label, load_start) -> dict:
    """The JSON-ready result: machine, config, peak, each workload's rows, targets, notes."""
    from fnnet.bench import report, report_nets, timing
    from fnnet.bench.systems_numpy import eval_accuracy, eval_loss
    workloads_out = {}
    for name, d in out_w.items():
        w, ceiling = d["workload"], d["ceiling"]
        ceiling["fraction_of_peak"] = ceiling["gflops"] / peak["gflops"]
        rows = report.rows_for(w, d["runners"], d["timings"], d["missing"], peak["gflops"], eval_loss,
                               eval_accuracy)
        workloads_out[name] = {
            "title": w.title, "origin": w.origin, "description": w.describe(),
            "sizes": list(w.sizes), "rows_per_epoch": w.n, "batch": w.batch, "epochs": w.epochs,
            "steps": w.steps, "sum_din_dout": sum(a * b for a, b in zip(w.sizes[:-1], w.sizes[1:])),
            "flops": w.flops, "needed_flops": w.needed_flops,
            "flops_formula": "3 * 2 * rows_per_epoch * sum(d_in*d_out) * epochs",
            "matmul_ceiling": ceiling, "step_memory": d["memory"], "rows": rows, **d["load"],
        }
    result = {
        "machine": {**report.machine(torch_label), "load_start": load_start, "load_end": timing.loadavg()},
        "config": {"quick": args.quick, "repeats": opts.repeats, "workloads": opts.names,
                   "systems": opts.systems, "threads": opts.threads},
        "peak": peak,
        "workloads": workloads_out,
        "nets": nets_out,
    }
    result["targets"] = (report.targets(workloads_out) if workloads_out else []) + report_nets.targets(nets_out)
    result["notes"] = notes(result, opts.threads)
    return result


def _write_and_print(result, args, log):
    """results.json and results.md into args.out, then each headline target's line
    (not judged under --quick, whose sizes are not the targets')."""
    from fnnet.bench import report_md
    jpath, mpath = report_md.write(result, args.out)
    log(f"wrote {jpath} and {mpath} ({result['wall_s']:.0f} s)")
    for t in result["targets"]:
        met = ("n/a" if t["met"] is None else ("MET" if t["met"] else "MISSED")) if not args.quick \
            else "quick: not checked"
        log(f"  [{met}] {t['workload']}: {t['target']}: {report_md.measured(t)}  {t['detail']}")


if __name__ == "__main__":
    sys.exit(main())
