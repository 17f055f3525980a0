"""The nets' part of the report (workloads_nets.py): rows, fnnet / jax.grad ratios, targets,
step memory, final losses, and their Markdown.

Ratios here are `fnnet's time / jax.grad's time` (below 1: the hand-written backward is
faster), per step of fnnet.fit, medians of interleaved repeats in one run; the CPU ratio is
the same for process CPU seconds, which other processes' load moves much less.
"""
from __future__ import annotations

import statistics

from fnnet.bench.memory import mb


def workload_out(w, runners, timings, missing, losses, memory, extra):
    rows = []
    for r in runners:
        t = timings.get(r.key)
        row = {"system": r.system, "variant": r.variant, "dtype": r.dtype, "note": r.note}
        if isinstance(t, str) or t is None:
            row.update(status=f"error: {t}")
        else:
            row.update(status="ok", repeats=len(t.times_s), median_s=t.median_s, min_s=min(t.times_s),
                       max_s=max(t.times_s), times_s=t.times_s, cpu_s=t.cpu_s, cpu_median_s=t.cpu_median_s,
                       compile_s=t.compile_s, step_ms=1e3 * t.median_s / w.steps,
                       final_loss=losses.get(r.system))
        rows.append(row)
    for system, why in missing:
        rows.append({"system": system, "variant": "", "dtype": "float32", "status": why, "note": why})
    out = {"title": w.title, "origin": w.origin, "description": w.describe(), "target": w.target,
           "rows_per_epoch": w.n, "batch": w.batch, "epochs": w.epochs, "steps": w.steps,
           "eval_rows": min(w.eval_rows, w.n), "rows": rows, "step_memory": memory, **extra}
    out["comparison"] = compare(rows, memory)
    return out


def compare(rows, memory):
    """fnnet vs jax.grad: time, CPU time, temporaries, final losses (None where a row is missing)."""
    ok = {r["system"]: r for r in rows if r["status"] == "ok"}
    f, a = ok.get("fnnet"), ok.get("jax.grad")
    c = {"time_ratio": None, "time_ratio_range": None, "time_ratio_best": None, "cpu_ratio": None,
         "loss_abs_diff": None, "loss_rel_diff": None}
    if f and a:
        per = [x / y for x, y in zip(f["times_s"], a["times_s"])]
        c.update(time_ratio=f["median_s"] / a["median_s"], time_ratio_range=[min(per), max(per)],
                 time_ratio_best=f["min_s"] / a["min_s"])
        if f.get("cpu_median_s") and a.get("cpu_median_s"):
            c["cpu_ratio"] = f["cpu_median_s"] / a["cpu_median_s"]
        if f.get("final_loss") is not None and a.get("final_loss") is not None:
            d = abs(f["final_loss"] - a["final_loss"])
            c.update(loss_abs_diff=d, loss_rel_diff=d / max(abs(a["final_loss"]), 1e-30))
    c["temp_ratio"] = memory["fnnet"]["temp_bytes"] / max(memory["jax.grad"]["temp_bytes"], 1)
    c["peak_ratio"] = memory["fnnet"]["peak_bytes"] / max(memory["jax.grad"]["peak_bytes"], 1)
    return c


def targets(nets_out):
    """A time target per net (issues 8, 9) and, for the GPT, a step-temporaries target."""
    out = []
    for name, w in nets_out.items():
        c = w["comparison"]
        entry = {"workload": name, "target": "fnnet not slower than jax.grad (ratio ≤ 1.0)", "op": "<=",
                 "bound": 1.0, "kind": "time_ratio", "measured": c["time_ratio"]}
        if c["time_ratio"] is None:
            out.append({**entry, "met": None, "detail": "fnnet or jax.grad row missing"})
        else:
            lo, hi = c["time_ratio_range"]
            detail = f"per-repeat {lo:.3f}–{hi:.3f}; best runs {c['time_ratio_best']:.3f}"
            if c["cpu_ratio"] is not None:
                detail += f"; CPU-time ratio {c['cpu_ratio']:.3f}"
            out.append({**entry, "met": bool(c["time_ratio"] <= 1.0), "detail": detail})
        if w.get("recompute_step_memory") is not None:               # the GPT
            m = w["step_memory"]
            out.append({"workload": name, "target": "fnnet step temporaries below jax.grad's", "op": "<",
                        "bound": 1.0, "kind": "memory", "measured": c["temp_ratio"],
                        "met": bool(c["temp_ratio"] < 1.0),
                        "detail": f"{mb(m['fnnet']['temp_bytes'])} vs {mb(m['jax.grad']['temp_bytes'])} MB "
                                  f"of temporaries at batch {w['batch']}"})
    return out


def _f(v, fmt):
    return "—" if v is None else fmt.format(v)


def _secs(v):
    return "—" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def max_loss_diff(nets_out):
    diffs = [(w["comparison"]["loss_abs_diff"], w["comparison"]["loss_rel_diff"], n)
             for n, w in nets_out.items() if w["comparison"]["loss_abs_diff"] is not None]
    return max(diffs) if diffs else None


def markdown(res):
    nets = res.get("nets") or {}
    if not nets:
        return []
    lines = ["", "## Nets: fnnet's hand-written backward vs jax.grad of the same forward", "",
             "Both rows are `fnnet.fit` (grad=\"manual\" and grad=\"autodiff\"), float32, from the same "
             "params with the same key (the same shuffled batches and dropout masks) and the same "
             "BatchNorm state; the NumPy, reference and torch systems have no such nets. "
             "`time ratio` = fnnet's median / jax.grad's (below 1: fnnet faster), per-repeat range in "
             "brackets; CPU = the same for process CPU seconds. Temporaries: `compiled.memory_analysis()` "
             "of one jitted step (gradient + update) at the batch. Final loss: the trained params on the "
             "first training rows, eval mode.", "",
             "| workload | steps | fnnet ms/step | jax.grad ms/step | time ratio | CPU ratio | "
             "temporaries MB fnnet / jax.grad | final loss fnnet / jax.grad | abs. diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, w in nets.items():
        ok = {r["system"]: r for r in w["rows"] if r["status"] == "ok"}
        f, a, c, m = ok.get("fnnet", {}), ok.get("jax.grad", {}), w["comparison"], w["step_memory"]
        rng = c["time_ratio_range"]
        ratio = _f(c["time_ratio"], "{:.3f}") + (f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng and len(f.get("times_s", [])) > 1 else "")
        lines.append(
            f"| {name} | {w['steps']} | {_f(f.get('step_ms'), '{:.2f}')} | {_f(a.get('step_ms'), '{:.2f}')} | "
            f"{ratio} | {_f(c['cpu_ratio'], '{:.3f}')} | {mb(m['fnnet']['temp_bytes'])} / "
            f"{mb(m['jax.grad']['temp_bytes'])} ({c['temp_ratio']:.2f}×) | "
            f"{_f(f.get('final_loss'), '{:.6g}')} / {_f(a.get('final_loss'), '{:.6g}')} | "
            f"{_f(c['loss_abs_diff'], '{:.2g}')} |")
    worst = max_loss_diff(nets)
    if worst is not None:
        lines += ["", f"Largest final-loss difference between the two systems: {worst[0]:.3g} "
                      f"({worst[1]:.2g} relative, {worst[2]}); float32 rounding of two gradient programs "
                      f"compounds over the steps."]
    ratios = [w["comparison"]["time_ratio"] for w in nets.values() if w["comparison"]["time_ratio"]]
    if len(ratios) > 1:
        lines += [f"Median time ratio over these {len(ratios)} nets: {statistics.median(ratios):.3f}."]
    for name, w in nets.items():
        lines += section(name, w)
    return lines


def section(name, w):
    from fnnet.bench.timing import load_line
    lines = ["", f"### {name}: {w['title']}", "", f"{w['description']}. {w['origin']}.", "",
             load_line(w), "",
             "| system | dtype | median s | min–max s | compile s | ms/step | final loss | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in w["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['system']} | {r['dtype']} | {r['status']} | | | | | |")
            continue
        lines.append(f"| {r['system']} | {r['dtype']} | {_secs(r['median_s'])} | {_secs(r['min_s'])}–"
                     f"{_secs(r['max_s'])} | {_secs(r['compile_s'])} | {r['step_ms']:.2f} | "
                     f"{_f(r['final_loss'], '{:.6g}')} | {r['note']} |")
    lines += ["", "| step memory | temporaries MB | peak MB |", "|---|---|---|"]
    for k, m in w["step_memory"].items():
        lines.append(f"| {k} | {mb(m['temp_bytes'])} | {mb(m['peak_bytes'])} |")
    for k, m in (w.get("recompute_step_memory") or {}).items():
        lines.append(f"| {k}, attention recompute=True | {mb(m['temp_bytes'])} | {mb(m['peak_bytes'])} |")
    att = w.get("attention_memory")
    if att:
        s = att["shape"]
        lines += ["", f"CausalSelfAttention alone, jit(forward + backward), x [{s['batch']}, {s['context']}, "
                      f"{s['dim']}], {s['heads']} heads, float32:", "",
                  "| recompute | keeps | cache MB | temporaries MB |", "|---|---|---|---|"]
        for rc, m in att["recompute"].items():
            keeps = "row logsumexp [B, H, T, 1], recomputes p" if rc == "True" else "p [B, H, T, T]"
            lines.append(f"| {rc} | {keeps} | {mb(m['cache_bytes'])} | {mb(m['temp_bytes'])} |")
    return lines
