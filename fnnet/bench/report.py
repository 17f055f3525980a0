"""Turn timings into rows, targets, JSON and a Markdown table.

Ratios are `median time of the system / median time of fnnet (float32)` on the same
workload in the same run: above 1 the system is slower than fnnet. A speed-up target is
checked against the baseline's fastest row (one thread, or the library's default threads). Each ratio also gets
the range of the per-repeat ratios (repeats are interleaved, so repeat i of two systems
ran seconds apart, under the same load).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics

BASE = ("fnnet", "", "float32")                    # (system, variant, dtype) ratios refer to

TARGETS = [  # (workload, description, system(s), op, bound, kind)
    ("W1", "fnnet ≥ 10× faster than the seed's NumPy float64", ("numpy-seed", "", "float64"), ">=", 10.0, "speedup"),
    ("W1", "fnnet ≥ 2× faster than PyTorch eager", ("torch", "", "float32"), ">=", 2.0, "speedup"),
    ("W1", "fnnet ≥ 1.25× faster than jax.grad", ("jax.grad", "", "float32"), ">=", 1.25, "speedup"),
    ("W2", "fnnet not slower than jax.grad (time ratio ≤ 1.0)", ("jax.grad", "", "float32"), "<=", 1.0, "time_ratio"),
    ("W3", "fnnet not slower than jax.grad (time ratio ≤ 1.0)", ("jax.grad", "", "float32"), "<=", 1.0, "time_ratio"),
    ("W4", "fnnet not slower than jax.grad (time ratio ≤ 1.0)", ("jax.grad", "", "float32"), "<=", 1.0, "time_ratio"),
    ("W4", "fnnet step temporaries ≤ 0.6× jax.grad's", "jax.grad", "<=", 0.6, "memory"),
    ("W3", "bf16 matmuls (opt-in) faster than float32 fnnet", ("fnnet", "bf16 matmuls", "float32"), "<=", 1.0, "time_ratio"),
    ("W1", "fnnet ≥ 60% of the float32 matmul peak", None, ">=", 0.60, "peak"),
    ("W3", "fnnet ≥ 85% of the float32 matmul peak", None, ">=", 0.85, "peak"),
    ("W3", "fnnet ≥ 2× faster than PyTorch eager", ("torch", "", "float32"), ">=", 2.0, "speedup"),
    ("W1", "fnnet.fit not slower than fit(grad=\"autodiff\") (time ratio ≤ 1.0)", ("fnnet.fit", "autodiff", "float32"), "<=", 1.0, "fit_ratio"),
    ("W1", "fnnet.fit ≤ 5% over the bare jitted scan", ("fnnet.fit", "", "float32"), "<=", 0.05, "overhead"),
    ("W2", "fnnet.fit ≤ 5% over the bare jitted scan", ("fnnet.fit", "", "float32"), "<=", 0.05, "overhead"),
    ("W3", "fnnet.fit ≤ 5% over the bare jitted scan", ("fnnet.fit", "", "float32"), "<=", 0.05, "overhead"),
]


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine(torch_info):
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import jax
    import jaxlib
    import numpy as np
    import optax
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = None
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:
        pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "usable_cores": usable,
        "platform": platform.platform(), "python": platform.python_version(),
        "jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": jax.default_backend(),
        "numpy": np.__version__, "optax": optax.__version__, "numpy_blas": blas,
        "torch": torch_info, "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _id(row):
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
    ok = {_id(r): r for r in rows if r["status"] == "ok"}
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
            detail = (f"{_mb(mem['fnnet']['temp_bytes'])} vs {_mb(mem[other]['temp_bytes'])} MB of "
                      f"temporaries (custom_vjp bridge {_mb(mem['custom_vjp']['temp_bytes'])} MB)")
            met = measured >= bound if op == ">=" else measured <= bound
            out.append({**entry, "measured": measured, "met": bool(met), "detail": detail})
            continue
        rows = {_id(r): r for r in w["rows"] if r["status"] == "ok"}
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
                status = next((r["status"] for r in w["rows"] if _id(r) == other), "not run")
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


def write(result, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    stem = f"results-{result['machine']['backend']}"
    jpath = os.path.join(out_dir, stem + ".json")
    mpath = os.path.join(out_dir, stem + ".md")
    with open(jpath, "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
        f.write("\n")
    with open(mpath, "w") as f:
        f.write(markdown(result))
    return jpath, mpath

# ---------------------------------------------------------------- Markdown


def _mb(b):
    return f"{b / 1e6:.1f}" if b >= 1e5 else f"{b / 1e6:.3f}"


def _memory_table(mem):
    kinds = mem["kinds"]
    ref = kinds["jax.grad"]
    what = {"fnnet": "fnnet.value_and_grad (hand-written)", "jax.grad": "jax.value_and_grad(fnnet.loss)",
            "custom_vjp": "jax.value_and_grad(fnnet.loss_with_manual_grad(net)): the bridge"}
    lines = [f"Step memory: one jitted step (gradient + optimizer update) at batch {mem['batch']}, "
             f"{mem['dtype']}, from `compiled.memory_analysis()`; peak = arguments + outputs − "
             f"aliased + temporaries (XLA's static estimate).", "",
             "| gradient | temporaries MB | peak MB | temp × jax.grad | peak × jax.grad |",
             "|---|---|---|---|---|"]
    for k, m in kinds.items():
        lines.append(f"| {what.get(k, k)} | {_mb(m['temp_bytes'])} | {_mb(m['peak_bytes'])} | "
                     f"{m['temp_bytes'] / max(ref['temp_bytes'], 1):.2f} | "
                     f"{m['peak_bytes'] / max(ref['peak_bytes'], 1):.2f} |")
    return lines


def _f(v, fmt="{:.3g}", none="—"):
    return none if v is None else fmt.format(v)


def _secs(v):
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _measured(t):
    if t["measured"] is None:
        return "—"
    if t["kind"] == "memory":
        return f"{t['measured']:.2f}×"
    if t["kind"] in ("peak", "overhead"):
        return f"{100 * t['measured']:+.1f}%" if t["kind"] == "overhead" else f"{100 * t['measured']:.1f}%"
    return f"{t['measured']:.2f}×" if t["kind"] == "speedup" else f"{t['measured']:.3f}"  # time ratios


def markdown(res):
    m, cfg = res["machine"], res["config"]
    torch = m["torch"]
    lines = [
        f"# fnnet benchmark ({m['backend']})",
        "",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['platform']}",
        f"- **Software**: Python {m['python']}, jax {m['jax']} (jaxlib {m['jaxlib']}), numpy {m['numpy']}"
        f" ({', '.join(m['numpy_blas'] or ['BLAS ?'])}), optax {m['optax']}, torch {torch}",
        f"- **Date**: {m['date']}; mode: {'quick' if cfg['quick'] else 'full'}, "
        f"{cfg['repeats']} interleaved repeats per system; NumPy BLAS and torch threads: "
        f"{cfg['threads'] or 'default'}; XLA_FLAGS={m['xla_flags'] or '(unset)'}; "
        f"load average at start / end: {m['load_start']} / {m['load_end']}",
        f"- **float32 matmul peak** (jitted {res['peak']['n']}×{res['peak']['n']} `jnp.dot`, median of "
        f"{len(res['peak']['times_s'])}): **{res['peak']['gflops']:.1f} GFLOP/s** (medians at start / end "
        f"{res['peak']['start_gflops']:.1f} / {res['peak']['end_gflops']:.1f}; best single call "
        f"{2 * res['peak']['n'] ** 3 / min(res['peak']['times_s']) / 1e9:.1f})",
        f"- **Wall time** of this run: {res['wall_s']:.0f} s",
        "",
        "Times are medians of the repeats, compile time excluded (shown apart). "
        "`× fnnet` = time / time of fnnet float32 (above 1: slower than fnnet); "
        "`× same dtype` compares with fnnet in the row's dtype; [CPU r] is the same ratio of "
        "process CPU seconds (all threads), which other processes' load moves much less than "
        "wall time. "
        "GFLOP/s counts the dense layers' model FLOPs: forward 2·rows·Σ d_in·d_out, "
        "backward 2× that, per epoch (see Notes).",
        "",
        "## Targets",
        "",
        "| workload | target | measured | met | detail |",
        "|---|---|---|---|---|",
    ]
    for t in res["targets"]:
        met = "—" if t["met"] is None else ("**yes**" if t["met"] else "**no**")
        lines.append(f"| {t['workload']} | {t['target']} | {_measured(t)} | {met} | {t['detail']} |")
    for name, w in res["workloads"].items():
        c = w["matmul_ceiling"]
        shapes = ", ".join(f"{s['shape']}: {s['gflops']:.0f}" for s in c["forward_matmuls"]) or "not measured"
        hlo = [f"{r['system']} {r['dtype']}: " + ", ".join(f"{k} {v}" for k, v in r["hlo_ops"].items())
               for r in w["rows"] if r.get("hlo_ops")]
        lines += [
            "",
            f"## {name}: {w['title']}",
            "",
            f"{w['description']}. Model FLOPs per run: {w['flops']:.4g} "
            f"(3 · 2 · {w['rows_per_epoch']} rows · {w['sum_din_dout']} · {w['epochs']} epoch(s)); "
            f"needed (no first-layer dL/dx): {w['needed_flops']:.4g}.",
            "",
            f"Matmul ceiling: the step's matmuls alone (forward, dW, dx at batch {c['rows']}; "
            f"{c['steps']} steps in a jitted scan), float32: XLA {c['gflops']:.1f} GFLOP/s = {100 * c['fraction_of_peak']:.0f}% of peak; "
            f"the same matmuls in NumPy {_f(c.get('numpy_gflops'), '{:.1f}')} GFLOP/s, in torch "
            f"{_f(c.get('torch_gflops'), '{:.1f} GFLOP/s', '(not installed)')} (their rows' threads). "
            f"Each forward matmul alone under XLA, GFLOP/s: {shapes}.",
            "",
            "Compiled training programs (XLA HLO op counts after fusion): " + "; ".join(hlo) + ".",
            "",
        ]
        if w.get("step_memory"):
            lines += _memory_table(w["step_memory"]) + [""]
        lines += [
            "| system | dtype | median s | min–max s | compile s | × fnnet (CPU time) | × same dtype | GFLOP/s | % peak | final loss | note |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in w["rows"]:
            label = r["system"] + (f" [{r['variant']}]" if r["variant"] else "")
            if r["status"] != "ok":
                lines.append(f"| {label} | {r['dtype']} | {r['status']} | | | | | | | | |")
                continue
            note = r["note"]
            if r["extrapolated_from_steps"]:
                note = f"**extrapolated from {r['extrapolated_from_steps']} of {r['steps']} steps**; " + note
            lo, hi = r.get("ratio_to_fnnet_range") or (None, None)
            acc = "" if r.get("final_accuracy") is None else f" (acc {100 * r['final_accuracy']:.1f}%)"
            ratio = _f(r["ratio_to_fnnet"], "{:.2f}")
            if lo is not None and r["repeats"] > 1 and _id(r) != BASE:
                ratio += f" ({lo:.2f}–{hi:.2f})"
            if r.get("cpu_ratio_to_fnnet") and _id(r) != BASE:
                ratio += f" [CPU {r['cpu_ratio_to_fnnet']:.2f}]"
            lines.append(
                f"| {label} | {r['dtype']} | {_secs(r['median_s'])} | {_secs(r['min_s'])}–{_secs(r['max_s'])} | "
                f"{_secs(r['compile_s'])} | {ratio} | {_f(r['ratio_to_fnnet_same_dtype'], '{:.2f}')} | "
                f"{r['gflops']:.1f} | {100 * r['fraction_of_peak']:.1f}% | "
                f"{_f(r['final_loss'], '{:.6g}')}{acc} | {note} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]] + [""]
    return "\n".join(lines)
