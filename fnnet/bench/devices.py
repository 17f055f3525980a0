"""`fnnet bench --devices N --layouts`: each way fit splits a run over N devices, against one.

For each workload (an MLP, a GPT) and each layout

    data          jax.make_mesh((N,), ("data",))            params replicated, batch split
    fsdp          jax.make_mesh((N,), ("fsdp",))            params + optimizer state split
    data x fsdp   jax.make_mesh((2, N/2), ("data", "fsdp"))
    data x model  jax.make_mesh((2, N/2), ("data", "model"))  tensor parallel, batch over "data"

it measures, in float64 with Adam:
  equality      fnnet.fit for a few full-batch steps on the mesh against fnnet.fit without
                one: the params' largest relative difference (each leaf against its scale)
  live bytes    the params and Adam's state placed as fit places them: the bytes of the
                addressable shards each device holds (the largest over devices), and the
                share of the one-device bytes
  compiled step one jitted training step (the layout's value_and_grad + the Adam update,
                params and state donated, as in fit): compiled.memory_analysis() per
                device (arguments, outputs, temporaries) and the collectives in its HLO
  step time     the median over repeats of that step's time (compile excluded), and its
                ratio to the same step on one device

On a CPU-only machine the N devices are simulated (jax_num_cpu_devices): they share the
same cores, so the times measure the overhead of splitting, never a speedup, and on a
shared machine they move with its load (recorded at the start and the end).
Writes OUT/devices-<backend>.json and OUT/devices-<backend>.md, each atomically.
"""
from __future__ import annotations

import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

import fnnet
from fnnet.bench import report, report_md, timing
from fnnet.train import fsdp, sharding, tensor_parallel

LAYOUTS = ("data", "fsdp", "data x fsdp", "data x model")
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
WORKLOADS = ("mlp", "gpt")
EPOCHS = 3                 # full-batch fit steps behind the equality figure
DTYPE = jnp.float64


def meshes(n):
    """{layout: jax.sharding.Mesh} over the first n devices; n even and >= 4 (the 2-D
    layouts are 2 x n/2)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
        raise ValueError(f"--devices {n} --layouts: the device count must be even and >= 4 "
                         f"(the two-axis layouts are 2 x N/2)")
    devices = jax.devices()[:n]
    shapes = {"data": ((n,), ("data",)), "fsdp": ((n,), ("fsdp",)),
              "data x fsdp": ((2, n // 2), ("data", "fsdp")), "data x model": ((2, n // 2), ("data", "model"))}
    return {k: jax.make_mesh(s, a, devices=devices) for k, (s, a) in shapes.items()}


def workload(name, quick, n):
    """(description, net, params, x, y) of a workload; sizes divisible by n (the batch
    over every device, widths and heads over the model axis n/2)."""
    rng = np.random.default_rng(0)
    if name == "mlp":
        width, rows = (32, 64) if quick else (512, 512)
        net = fnnet.mlp([64, width, width, 10], activation="tanh", loss="softmax_cross_entropy")
        x, y = rng.standard_normal((rows, 64)), rng.integers(0, 10, rows)
        what = f"mlp [64, {width}, {width}, 10] tanh, full batch of {rows}"
    elif name == "gpt":
        layers, heads, dim, context, rows = (1, 4, 16, 8, 16) if quick else (2, 8, 64, 32, 64)
        net = fnnet.gpt(64, context, layers, heads, dim)
        ids = rng.integers(0, 64, (rows, context + 1))
        x, y = ids[:, :-1], ids[:, 1:]
        what = f"gpt(layers={layers}, heads={heads}, dim={dim}, context={context}), vocab 64, batch of {rows}"
    else:
        raise ValueError(f"fnnet bench --layouts: unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    params = fnnet.init(net, jax.random.key(0), dtype=DTYPE)
    x = jnp.asarray(x, DTYPE) if name == "mlp" else jnp.asarray(x, jnp.int32)
    return what, net, params, x, jnp.asarray(y, jnp.int32)


def placed(layout, mesh, net, optimizer, params, x, y):
    """(step, params, opt_state, x, y): the jitted step of `layout` (None: one device) and
    its arguments placed as fit places them (the batch replicated: fit gathers it from the
    replicated training set)."""
    params = jax.tree.map(lambda a: jnp.array(a, copy=True), params)   # the step donates its inputs
    opt_state = optimizer.init(params)
    if layout is None:
        def value_and_grad(p, xb, yb):
            return fnnet.value_and_grad(net, p, xb, yb)
    elif layout == "data x model":
        tp = tensor_parallel.setup(net, mesh)
        params, opt_state = tp.shard(params, opt_state)
        value_and_grad = tp.value_and_grad
    elif "fsdp" in layout:
        fs = fsdp.setup(net, mesh)
        params = fsdp.place(fs, params)
        opt_state = fsdp.init_opt_state(fs, optimizer, params)

        def value_and_grad(p, xb, yb):
            return fsdp.value_and_grad(fs, net, p, xb, yb)
    else:
        dp = sharding.setup(net, mesh)
        params, opt_state = sharding.replicate(dp, (params, opt_state))

        def value_and_grad(p, xb, yb):
            return sharding.value_and_grad(dp, lambda *a: fnnet.value_and_grad(*a), net, p, xb, yb)
    if mesh is not None:
        x, y = jax.device_put((x, y), NamedSharding(sharding.auto_axes(mesh), P()))

    def step(p, s, xb, yb):
        value, grads = value_and_grad(p, xb, yb)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value
    return jax.jit(step, donate_argnums=(0, 1)), params, opt_state, x, y


def live_bytes(tree):
    """{device id: bytes of the tree's shards on that device}."""
    out = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            out[shard.device.id] = out.get(shard.device.id, 0) + shard.data.nbytes
    return out


def collectives(text):
    """{op: count} of the collectives in compiled HLO text (async -start forms included)."""
    return {op: len(re.findall(rf"\b{op}(?:-start)?\(", text)) for op in COLLECTIVES}


def rel_diff(a, b):
    """The largest relative difference between two trees, each leaf against its scale."""
    worst = 0.0
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        worst = max(worst, float(np.abs(u - v).max() / max(np.abs(u).max(), np.abs(v).max(), 1e-300)))
    return worst


def measure(layout, mesh, net, params, x, y, repeats, steps, reference):
    """One row: equality, live and compiled bytes per device, collectives, step time."""
    optimizer = optax.adam(1e-3)
    row = {"layout": layout or "one device",
           "mesh": None if mesh is None else dict(zip(mesh.axis_names, map(int, mesh.devices.shape)))}
    r = fnnet.fit(net, params, x, y, optimizer=optimizer, epochs=EPOCHS, mesh=mesh)
    row["params_vs_one_device"] = None if reference is None else rel_diff(r.params, reference)
    step, p, s, xb, yb = placed(layout, mesh, net, optimizer, params, x, y)
    per_device = live_bytes((p, s))
    row["live_bytes_per_device"] = max(per_device.values())
    row["live_bytes_by_device"] = {str(k): v for k, v in sorted(per_device.items())}
    compiled = step.lower(p, s, xb, yb).compile()
    stats = compiled.memory_analysis()
    row["compiled"] = {"argument_bytes": stats.argument_size_in_bytes, "output_bytes": stats.output_size_in_bytes,
                       "temp_bytes": stats.temp_size_in_bytes, "alias_bytes": stats.alias_size_in_bytes}
    row["collectives"] = collectives(compiled.as_text())
    p, s, _ = jax.block_until_ready(step(p, s, xb, yb))          # warm-up (compiled above)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            p, s, _ = step(p, s, xb, yb)
        jax.block_until_ready((p, s))
        times.append((time.perf_counter() - t) / steps)
    row["step_ms"] = 1e3 * statistics.median(times)
    return row, r.params


def run(n, names, quick, out_dir, log=print, repeats=None):
    """Every layout of every workload on n devices -> the result dict, written to out_dir."""
    layouts = meshes(n)
    repeats = repeats or (1 if quick else 5)
    steps = 2 if quick else 10
    devices = jax.devices()
    result = {"machine": {**report.machine("n/a"), "devices": [str(d) for d in devices[:n]]},
              "simulated": devices[0].platform == "cpu", "dtype": jnp.dtype(DTYPE).name,
              "optimizer": "adam(1e-3)", "fit_steps": EPOCHS, "repeats": repeats, "steps_per_repeat": steps,
              "load_start": timing.loadavg(), "workloads": {}}
    for name in names:
        what, net, params, x, y = workload(name, quick, n)
        log(f"== {name}: {what}")
        one, reference = measure(None, None, net, params, x, y, repeats, steps, None)
        rows = [one]
        for layout, mesh in layouts.items():
            row, _ = measure(layout, mesh, net, params, x, y, repeats, steps, reference)
            row["live_share"] = row["live_bytes_per_device"] / one["live_bytes_per_device"]
            row["step_vs_one_device"] = row["step_ms"] / one["step_ms"]
            rows.append(row)
            log(f"   {layout:13s} params vs one device {row['params_vs_one_device']:.1e}, "
                f"{row['live_bytes_per_device']} bytes per device ({100 * row['live_share']:.1f}%), "
                f"{row['step_ms']:.2f} ms per step")
        result["workloads"][name] = {"description": what, "rows": rows}
    result["load_end"] = timing.loadavg()
    report_md.write_result(out_dir, f"devices-{result['machine']['backend']}", result, markdown(result), log)
    return result


def markdown(result):
    m = result["machine"]
    kind = ("simulated CPU devices sharing the same cores: the times measure the overhead of "
            "splitting, not a speedup" if result["simulated"] else "real devices")
    lines = [f"# fnnet.fit over {len(m['devices'])} devices, each layout ({m['backend']})", "",
             f"{m.get('cpu', '')}, {m.get('usable_cores', '?')} usable cores, jax {m.get('jax')}; "
             f"{result['dtype']}, {result['optimizer']}; equality after {result['fit_steps']} full-batch "
             f"fit steps; step time: median of {result['repeats']} repeats of {result['steps_per_repeat']} "
             f"steps, compile excluded; load average {result['load_start']} at the start, "
             f"{result['load_end']} at the end. Devices: {kind}.", ""]
    ops = ", ".join(f"{o}" for o in COLLECTIVES[:3])
    for name, w in result["workloads"].items():
        lines += [f"## {name}: {w['description']}", "",
                  f"| layout | mesh | params vs one device | params + Adam bytes per device (live) | share | "
                  f"compiled step per device: arguments / temporaries | collectives ({ops}; others) | "
                  f"step (ms) | × one device |", "|---|---|---|---|---|---|---|---|---|"]
        for r in w["rows"]:
            mesh = "1 device" if r["mesh"] is None else " × ".join(f"{k} {v}" for k, v in r["mesh"].items())
            c, k = r["collectives"], r["compiled"]
            others = sum(c[o] for o in COLLECTIVES[3:])
            eq = "—" if r["params_vs_one_device"] is None else f"{r['params_vs_one_device']:.1e}"
            share = f"{100 * r['live_share']:.1f}%" if "live_share" in r else "100%"
            ratio = f"{r['step_vs_one_device']:.2f}" if "step_vs_one_device" in r else "1"
            lines.append(f"| {r['layout']} | {mesh} | {eq} | {r['live_bytes_per_device']:,} | {share} | "
                         f"{k['argument_bytes']:,} / {k['temp_bytes']:,} | "
                         f"{c['all-reduce']}, {c['all-gather']}, {c['reduce-scatter']}; {others} | "
                         f"{r['step_ms']:.2f} | {ratio} |")
        lines.append("")
    return "\n".join(lines)
