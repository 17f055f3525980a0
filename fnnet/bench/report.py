"""Turn timings into rows and targets (report_md.py writes them as JSON and Markdown, machine.py
says what ran them).

Ratios are `median time of the system / median time of fnnet (float32)` on the same
workload in the same run: above 1 the system is slower than fnnet. A speed-up target is
checked against the baseline's fastest row (one thread, or the library's default threads). Each ratio also gets
the range of the per-repeat ratios (repeats are interleaved, so repeat i of two systems
ran seconds apart, under the same load).
"""
from __future__ import annotations

from fnnet.bench import memory
from fnnet.bench.machine import machine  # noqa: F401  (the CLI reads report.machine)

BASE = ("fnnet", "", "float32")                    # (system, variant, dtype) ratios refer to

TARGETS = [  # (workload, description, system(s), op, bound, kind)
    ("W1", "fnnet ≥ 10× faster than the seed's NumPy float64", ("numpy-seed", "", "float64"), ">=", 10.0, "speedup"),
    ("W1", "fnnet ≥ 2× faster than PyTorch eager", ("torch", "", "float32"), ">=", 2.0, "speedup"),
    ("W1", "fnnet ≥ 1.25× faster than jax.grad", ("jax.grad", "", "float32"), ">=", 1.25, "speedup"),
    ("W2", "fnnet not slower than jax.grad (time ratio ≤ 1.0)", ("jax.grad", "", "float32"), "<=", 1.0, "time_ratio"),
    ("W3", "fnnet not slower than jax.grad (time ratio ≤ 1.0)", ("jax.grad", "", "float32"), "<=", 1.0, "time_ratio"),
    ("W4", "fnnet not slower than jax.grad (time ratio ≤ 1.0)", ("jax.grad", "", "float32"), "<=", 1.0, "time_ratio"),
    ("W4", "fnnet step temporaries ≤ 0.6× jax.grad's", "jax.grad", "<=", 0.6, "memory"),
    ("W3", "bf16 matmuls (opt-in) faster than float32 fnnet (fnnet's time / bf16's ≥ 1.0)", ("fnnet", "bf16 matmuls", "float32"), ">=", 1.0, "time_ratio"),
    ("W1", "fnnet ≥ 60% of the float32 matmul peak", None, ">=", 0.60, "peak"),
    ("W3", "fnnet ≥ 85% of the float32 matmul peak", None, ">=", 0.85, "peak"),
    ("W3", "fnnet ≥ 2× faster than PyTorch eager", ("torch", "", "float32"), ">=", 2.0, "speedup"),
    ("W1", "fnnet.fit not slower than fit(grad=\"autodiff\") (time ratio ≤ 1.0)", ("fnnet.fit", "autodiff", "float32"), "<=", 1.0, "fit_ratio"),
    ("W1", "fnnet.fit ≤ 5% over the bare jitted scan", ("fnnet.fit", "", "float32"), "<=", 0.05, "overhead"),
    ("W2", "fnnet.fit ≤ 5% over the bare jitted scan", ("fnnet.fit", "", "float32"), "<=", 0.05, "overhead"),
    ("W3", "fnnet.fit ≤ 5% over the bare jitted scan", ("fnnet.fit", "", "float32"), "<=", 0.05, "overhead"),
]


def row_id(row):
    """A row's identity within a workload: (system, variant, dtype), as BASE."""
    return (row["system"], row["variant"], row["dtype"])


def rows_for(workload, runners, timings, missing, peak_gflops, eval_loss, eval_accuracy=None):
    """Rows for one workload: measured runners, then systems that could not run."""
    rows = []
    for r in runners:
        t = timings.get(r.key)
        row = {"system": r.system, "variant": r.variant, "dtype": r.dtype, "note": r.note,
               "extrapolated_from_steps": r.timed_steps, "steps": workload.steps, "hlo_ops": r.hlo}
        if isinstance(t, str) or t is None:
            row.update(status=f"error: {t}")
        else:
            med = t.median_s
            row.update(status="ok", repeats=len(t.times_s), median_s=med, min_s=min(t.times_s), max_s=max(t.times_s),
                       times_s=t.times_s, compile_s=t.compile_s, cpu_s=t.cpu_s, cpu_median_s=t.cpu_median_s,
                       gflops=workload.flops / med / 1e9,
                       fraction_of_peak=workload.flops / med / 1e9 / peak_gflops,
                       final_loss=eval_loss(workload, t.params) if t.params is not None else None,
                       final_accuracy=(eval_accuracy(workload, t.params)
                                       if t.params is not None and eval_accuracy else None))
        rows.append(row)
    for system, variant, dtype, why in missing:
        rows.append({"system": system, "variant": variant, "dtype": dtype, "status": why,
                     "note": why, "extrapolated_from_steps": None, "steps": workload.steps})
    ok = {row_id(r): r for r in rows if r["status"] == "ok"}
    base = ok.get(BASE)
    for r in rows:
        if r["status"] != "ok":
            continue
        same = ok.get(("fnnet", "", r["dtype"]))
        r["ratio_to_fnnet"] = r["median_s"] / base["median_s"] if base else None
        r["ratio_to_fnnet_same_dtype"] = r["median_s"] / same["median_s"] if same else None
        r["cpu_ratio_to_fnnet"] = (r["cpu_median_s"] / base["cpu_median_s"]
                                   if base and r.get("cpu_median_s") and base.get("cpu_median_s") else None)
        if base:
            per = [a / b for a, b in zip(r["times_s"], base["times_s"])]
            r["ratio_to_fnnet_range"] = [min(per), max(per)]
            r["ratio_to_fnnet_best"] = r["min_s"] / base["min_s"]     # best run / best run
    return rows


def targets(workloads_out):
    out = []
    for wname, desc, other, op, bound, kind in TARGETS:
        w = workloads_out.get(wname)
        entry = {"workload": wname, "target": desc, "op": op, "bound": bound, "kind": kind}
        if w is None:
            out.append({**entry, "measured": None, "met": None, "detail": "workload not run"})
            continue
        if kind == "memory":                         # compiled step bytes, not timing
            mem = w["step_memory"]["kinds"]
            measured = mem["fnnet"]["temp_bytes"] / mem[other]["temp_bytes"]
            detail = (f"{memory.mb(mem['fnnet']['temp_bytes'])} vs {memory.mb(mem[other]['temp_bytes'])} MB of "
                      f"temporaries (custom_vjp bridge {memory.mb(mem['custom_vjp']['temp_bytes'])} MB)")
            met = measured >= bound if op == ">=" else measured <= bound
            out.append({**entry, "measured": measured, "met": bool(met), "detail": detail})
            continue
        rows = {row_id(r): r for r in w["rows"] if r["status"] == "ok"}
        base = rows.get(BASE)
        if base is None:
            out.append({**entry, "measured": None, "met": None, "detail": "fnnet float32 row missing"})
            continue
        detail = ""
        if kind == "peak":
            measured = base["fraction_of_peak"]
            ceil = w["matmul_ceiling"]["fraction_of_peak"]
            detail = (f"{base['gflops']:.1f} GFLOP/s (best run {w['flops'] / base['min_s'] / 1e9:.1f}); "
                      f"the same step's matmuls alone reach {100 * ceil:.0f}% of peak")
        else:
            o = rows.get(other)
            if kind == "speedup":                    # against the baseline's fastest thread setting
                same = [r for r in rows.values() if (r["system"], r["dtype"]) == (other[0], other[2])]
                o = min(same, key=lambda r: r["median_s"]) if same else None
            if o is None:
                status = next((r["status"] for r in w["rows"] if row_id(r) == other), "not run")
                out.append({**entry, "measured": None, "met": None, "detail": f"{other[0]}: {status}"})
                continue
            lo, hi = o["ratio_to_fnnet_range"]
            best = o["ratio_to_fnnet_best"]
            if kind == "speedup":                    # other's time / fnnet's time
                measured = o["ratio_to_fnnet"]
                detail = f"per-repeat {lo:.2f}–{hi:.2f}; best runs {best:.2f}"
                detail += f"; vs {o['system']}{' [' + o['variant'] + ']' if o['variant'] else ''} {o['dtype']}"
                if o["extrapolated_from_steps"]:
                    detail += f"; {other[0]} extrapolated from {o['extrapolated_from_steps']} steps"
            elif kind == "time_ratio":               # fnnet's time / other's time
                measured = 1.0 / o["ratio_to_fnnet"]
                detail = f"per-repeat {1 / hi:.3f}–{1 / lo:.3f}; best runs {1 / best:.3f}"
            if kind in ("speedup", "time_ratio") and o.get("cpu_ratio_to_fnnet"):
                c = o["cpu_ratio_to_fnnet"]
                detail += f"; CPU-time ratio {c if kind == 'speedup' else 1 / c:.3f}"
            elif kind == "fit_ratio":                # fnnet.fit's time / fit(grad="autodiff")'s
                f = rows.get(("fnnet.fit", "", "float32"))
                if f is None:
                    out.append({**entry, "measured": None, "met": None, "detail": "fnnet.fit row missing"})
                    continue
                per = [a / b for a, b in zip(f["times_s"], o["times_s"])]
                measured = f["median_s"] / o["median_s"]
                detail = f"per-repeat {min(per):.3f}–{max(per):.3f}; best runs {f['min_s'] / o['min_s']:.3f}"
            else:                                    # overhead of other over fnnet
                measured = o["ratio_to_fnnet"] - 1.0
                detail = (f"per-repeat {100 * (lo - 1):+.1f}% to {100 * (hi - 1):+.1f}%; "
                          f"best runs {100 * (best - 1):+.1f}%")
        met = measured >= bound if op == ">=" else measured <= bound
        out.append({**entry, "measured": measured, "met": bool(met), "detail": detail})
    return out
