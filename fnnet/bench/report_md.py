"""The files of `fnnet bench`: the results as JSON, and the Markdown report (header, targets,
one section per workload)."""
from __future__ import annotations

import json
import os

from fnnet.bench import memory
from fnnet.bench.report import BASE, row_id


def _f(v, fmt="{:.3g}", none="—"):
    return none if v is None else fmt.format(v)


def _secs(v):
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def measured(t):
    """A target's measured value as the report and the console show it (×, % or a ratio)."""
    if t["measured"] is None:
        return "—"
    if t["kind"] == "memory":
        return f"{t['measured']:.2f}×"
    if t["kind"] in ("peak", "overhead"):
        return f"{100 * t['measured']:+.1f}%" if t["kind"] == "overhead" else f"{100 * t['measured']:.1f}%"
    return f"{t['measured']:.2f}×" if t["kind"] == "speedup" else f"{t['measured']:.3f}"  # time ratios


def markdown(res):
    """The whole report: header, targets, one section per MLP workload, the network
    workloads (report_nets), then the notes."""
    from fnnet.bench import report_nets
    lines = _header(res) + _targets(res)
    for name, w in res["workloads"].items():
        lines += _workload_section(name, w)
    lines += report_nets.markdown(res)
    lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]] + [""]
    return "\n".join(lines)


def _header(res):
    """Machine, software, date, load, matmul peak, wall time, and how to read the tables."""
    m, cfg, peak = res["machine"], res["config"], res["peak"]
    return [
        f"# fnnet benchmark ({m['backend']})",
        "",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['platform']}",
        f"- **Software**: Python {m['python']}, jax {m['jax']} (jaxlib {m['jaxlib']}), numpy {m['numpy']}"
        f" ({', '.join(m['numpy_blas'] or ['BLAS ?'])}), optax {m['optax']}, torch {m['torch']}",
        f"- **Date**: {m['date']}; mode: {'quick' if cfg['quick'] else 'full'}, "
        f"{cfg['repeats']} interleaved repeats per system; NumPy BLAS and torch threads: "
        f"{cfg['threads'] or 'default'}; XLA_FLAGS={m['xla_flags'] or '(unset)'}; "
        f"load average at start / end: {m['load_start']} / {m['load_end']}",
        f"- **float32 matmul peak** (jitted {peak['n']}×{peak['n']} `jnp.dot`, median of "
        f"{len(peak['times_s'])}): **{peak['gflops']:.1f} GFLOP/s** (medians at start / end "
        f"{peak['start_gflops']:.1f} / {peak['end_gflops']:.1f}; best single call "
        f"{2 * peak['n'] ** 3 / min(peak['times_s']) / 1e9:.1f})",
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
    ]


def _targets(res):
    """The targets table; under --quick every target reads "not checked"."""
    lines = ["## Targets", "",
             "| workload | target | measured | met | detail |",
             "|---|---|---|---|---|"]
    for t in res["targets"]:
        met = "—" if t["met"] is None else ("**yes**" if t["met"] else "**no**")
        if res["config"]["quick"]:         # tiny workloads: nothing there is a measurement of a target
            met = "not checked (--quick)"
        lines.append(f"| {t['workload']} | {t['target']} | {measured(t)} | {met} | {t['detail']} |")
    return lines


def _workload_section(name, w):
    """One MLP workload: its load, FLOPs, matmul ceiling, HLO op counts, step memory and
    the table of systems."""
    from fnnet.bench.timing import load_line
    c = w["matmul_ceiling"]
    shapes = ", ".join(f"{s['shape']}: {s['gflops']:.0f}" for s in c["forward_matmuls"]) or "not measured"
    hlo = [f"{r['system']} {r['dtype']}: " + ", ".join(f"{k} {v}" for k, v in r["hlo_ops"].items())
           for r in w["rows"] if r.get("hlo_ops")]
    lines = [
        "",
        f"## {name}: {w['title']}",
        "",
        load_line(w),
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
        lines += memory.table(w["step_memory"]) + [""]
    lines += [
        "| system | dtype | median s | min–max s | compile s | × fnnet [CPU] | × same dtype | GFLOP/s | % peak | final loss | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return lines + [_system_row(r) for r in w["rows"]]


def _system_row(r):
    """One system's row: times, ratios to fnnet (with the range over repeats and the CPU-time
    ratio), throughput, final loss, and a note (bold when the time was extrapolated)."""
    label = r["system"] + (f" [{r['variant']}]" if r["variant"] else "")
    if r["status"] != "ok":
        return f"| {label} | {r['dtype']} | {r['status']} | | | | | | | | |"
    note = r["note"]
    if r["extrapolated_from_steps"]:
        note = f"**extrapolated from {r['extrapolated_from_steps']} of {r['steps']} steps**; " + note
    lo, hi = r.get("ratio_to_fnnet_range") or (None, None)
    acc = "" if r.get("final_accuracy") is None else f" (acc {100 * r['final_accuracy']:.1f}%)"
    ratio = _f(r["ratio_to_fnnet"], "{:.2f}")
    if lo is not None and r["repeats"] > 1 and row_id(r) != BASE:
        ratio += f" ({lo:.2f}–{hi:.2f})"
    if r.get("cpu_ratio_to_fnnet") and row_id(r) != BASE:
        ratio += f" [CPU {r['cpu_ratio_to_fnnet']:.2f}]"
    return (f"| {label} | {r['dtype']} | {_secs(r['median_s'])} | {_secs(r['min_s'])}–{_secs(r['max_s'])} | "
            f"{_secs(r['compile_s'])} | {ratio} | {_f(r['ratio_to_fnnet_same_dtype'], '{:.2f}')} | "
            f"{r['gflops']:.1f} | {100 * r['fraction_of_peak']:.1f}% | "
            f"{_f(r['final_loss'], '{:.6g}')}{acc} | {note} |")


def write(result, out_dir):
    """Write results-<backend>.json and .md into out_dir; returns (json path, md path)."""
    os.makedirs(out_dir, exist_ok=True)
    stem = f"results-{result['machine']['backend']}"
    jpath = os.path.join(out_dir, stem + ".json")
    mpath = os.path.join(out_dir, stem + ".md")
    write_text(jpath, json.dumps(result, indent=1) + "\n")
    write_text(mpath, markdown(result))
    return jpath, mpath


def write_text(path, text):
    """Write a report file atomically: an interrupted run never leaves half a JSON file."""
    from fnnet import atomic
    atomic.write(path, lambda f: f.write(text.encode("utf-8")), where="fnnet bench")


def write_result(out_dir, name, result, md, log):
    """A result as out_dir/name.json and its Markdown `md` as out_dir/name.md (each atomically,
    the folder made if missing); logs both paths and returns their common stem."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, name)
    write_text(stem + ".json", json.dumps(result, indent=1) + "\n")
    write_text(stem + ".md", md)
    log(f"wrote {stem}.json and {stem}.md")
    return stem
