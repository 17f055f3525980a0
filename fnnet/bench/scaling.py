"""`fnnet bench --devices 1,2,4,8`: fnnet.fit's throughput per device count.

For each workload, one row per device count k: fnnet.fit(mesh=jax.make_mesh((k,),
("data",)) over the first k devices) against plain fnnet.fit (no mesh), interleaved
repeats, medians, compile excluded (one untimed warm-up per row). The training data is
placed on each mesh before timing, so the rows time training only.

On a CPU-only machine the k devices are simulated (jax_num_cpu_devices): they share the
same cores, so the table measures the cost of splitting and all-reducing, not a speedup.
Writes OUT/scaling-<backend>.json and OUT/scaling-<backend>.md.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

import fnnet
from fnnet.bench import report, report_md, timing
from fnnet.bench import systems_jax as sj
from fnnet.train import sharding


def fit_runner(workload, dtype, mesh):
    """A Runner training `workload` with fnnet.fit, data-parallel over `mesh` (None: plain)."""
    net = sj.network(workload)
    opt = sj.optimizer(workload)
    x_np, y_np = workload.data()
    x, y = jnp.asarray(x_np, dtype), jnp.asarray(y_np, dtype)
    init = sj.params_for(net, workload, dtype)
    if mesh is not None:                         # placed once, outside the timed runs
        dp = sharding.setup(net, mesh)
        x, y, init = sharding.replicate(dp, (x, y, init))
    key = jax.random.key(0) if workload.batch < workload.n else None

    def run():
        params, *_ = fnnet.fit(net, init, x, y, optimizer=opt, epochs=workload.epochs,
                              batch_size=workload.batch_size, key=key, mesh=mesh)
        return jax.block_until_ready(params)

    k = "no mesh" if mesh is None else f"{mesh.size} device{'s' if mesh.size > 1 else ''}"
    runner = timing.Runner("fnnet.fit", jnp.dtype(dtype).name, run,
                           result_params=sj.result_params(workload), variant=k)

    def warmup():
        _, runner.compile_s = sj.compile_seconds(run)
    runner.warmup = warmup
    return runner


def run(counts, workloads, repeats, out_dir, log=print, dtype="float32"):
    """counts: device counts, e.g. [1, 2, 4, 8]; workloads: fnnet.bench.workloads objects."""
    devices = jax.devices()
    result = {"machine": {**report.machine("n/a"), "devices": [str(d) for d in devices[:max(counts)]]},
              "simulated": devices[0].platform == "cpu", "dtype": dtype, "load_start": timing.loadavg(), "repeats": repeats, "workloads": {}}
    for w in workloads:
        log(f"== {w.name} ({w.title}): {w.describe()}")
        runners = [fit_runner(w, dtype, None)]
        runners += [fit_runner(w, dtype, jax.make_mesh((k,), ("data",), devices=devices[:k]))
                    for k in counts]
        timings = timing.measure(runners, repeats, w.steps, log)     # warm-up (compile) first
        base = timings[runners[0].key]
        rows, ref = [], None
        for r, k in zip(runners, [None, *counts]):
            t = timings[r.key]
            if isinstance(t, str):
                rows.append({"devices": k, "error": t})
                continue
            p = np.concatenate([np.ravel(a) for a in jax.tree.leaves(t.params)])
            ref = p if ref is None else ref
            rows.append({"devices": k, "median_s": t.median_s, "times_s": t.times_s,
                         "compile_s": t.compile_s, "examples_per_s": w.n * w.epochs / t.median_s,
                         "vs_no_mesh": t.median_s / base.median_s,
                         "per_step_overhead_ms": 1e3 * (t.median_s - base.median_s) / w.steps,
                         "max_rel_diff_params": float(np.abs(p - ref).max() / np.abs(ref).max())})
        result["workloads"][w.name] = {"title": w.title, "description": w.describe(),
                                       "steps": w.steps, "rows": rows}
    result["load_end"] = timing.loadavg()
    report_md.write_result(out_dir, f"scaling-{result['machine']['backend']}", result, markdown(result), log)
    return result


def markdown(result):
    m = result["machine"]
    kind = ("simulated CPU devices sharing the same cores: this measures the overhead of "
            "splitting the batch and all-reducing the gradients, not a speedup"
            if result["simulated"] else "real devices")
    lines = [f"# fnnet.fit data-parallel throughput ({m['backend']})", "",
             f"{m.get('cpu', '')}, {m.get('usable_cores', '?')} usable cores, jax {m.get('jax')}; "
             f"{result['dtype']}, medians of {result['repeats']} interleaved repeats, compile "
             f"excluded; load average {result['load_start']} at the start, {result['load_end']} at "
             f"the end. Devices: {kind}.", ""]
    for name, w in result["workloads"].items():
        lines += [f"## {name}: {w['title']} ({w['description']})", "",
                  "| devices | time (s) | examples/s | × no mesh | overhead per step (ms) | params vs no mesh (max rel) |",
                  "|---|---|---|---|---|---|"]
        for r in w["rows"]:
            k = "no mesh" if r["devices"] is None else str(r["devices"])
            if "error" in r:
                lines.append(f"| {k} | {r['error']} | | | | |")
                continue
            lines.append(f"| {k} | {r['median_s']:.3g} | {r['examples_per_s']:.3g} | "
                         f"{r['vs_no_mesh']:.2f} | {r['per_step_overhead_ms']:+.3f} | "
                         f"{r['max_rel_diff_params']:.1e} |")
        lines.append("")
    return "\n".join(lines)
