"""The GPT-vs-torch workload: the same GPT, weights, tokens and AdamW in fnnet, jax.grad and PyTorch.

    fnnet bench --workloads GPT-torch --gpt-configs S,M,L,XL --out runs/gpt

Configs (vocab 103 = the pydoc corpus's, pre-LN, biases, tied head, 4 heads below C 256, else C/64):
    S  T64  L2 C64  B32   (the README model)      M  T128 L4 C128 B8
    L  T128 L4 C256 B8                            XL T256 L6 C384 B8
    tiny T16 L1 C16 B4 (--quick, and the tests)

Systems (ms per training step, every one from the same initial params on the same batches):
    fnnet.fit           fnnet.fit(net, params, ids, targets, AdamW, batch B): its lax.scan
    fnnet jit step      a user's own jax.jit(step) of fnnet.value_and_grad + optax, called per batch
                        (under the process's XLA_FLAGS: `import fnnet` turns XLA:CPU's
                        concurrency-optimized scheduler off; with FNNET_CPU_MALLOC=1 glibc malloc and
                        CPU dispatch keep each call's block of temporaries, fnnet/_xla_cpu.py; the table records
                        fnnet.XLA_FLAGS_STATUS and XLA_FLAGS, the row fnnet.MALLOC_STATUS)
    jax.grad jit step   the same user step with jax.value_and_grad(fnnet.loss)
    torch eager         fnnet/bench/gpt_torch_model.py, torch.optim.AdamW (same hyperparameters)
    torch.compile       torch.compile of that module; if it fails, the row says why

Under load the torch rows are the first to break: torch's OpenMP threads wait at every
parallel region's barrier for a descheduled peer, so with 2 threads at load 8 on 2 cores an
S step read 240-670 ms against 60 ms with 1 thread (22 ms with 2 threads on the quiet
machine). A table measured at load > 1 is marked not publishable for this reason too.

Tokens are uniform random ids (seeded): the time of a step does not depend on them, and every
config gets enough. The first step's loss of every system is recorded: equal losses are the
evidence that the systems train the same model.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from fnnet.bench.timing import PUBLISHABLE_LOAD, Runner, load_line, load_record, measure, settle

VOCAB = 103


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    context: int
    layers: int
    dim: int
    batch: int
    heads: int = 4

    def describe(self):
        return f"T{self.context} L{self.layers} C{self.dim} H{self.heads} B{self.batch}"


CONFIGS = {c.name: c for c in (
    Config("tiny", 16, 1, 16, 4, heads=2),
    Config("S", 64, 2, 64, 32),
    Config("M", 128, 4, 128, 8),
    Config("L", 128, 4, 256, 8),
    Config("XL", 256, 6, 384, 8, heads=6),
)}
SYSTEMS = ("fnnet.fit", "fnnet jit step", "jax.grad jit step",
           "torch eager", "torch.compile")
def parse_configs(text):
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise ValueError(f"unknown GPT config(s) {bad or text!r}; known: {', '.join(CONFIGS)}")
    return [CONFIGS[n] for n in names]


def data(cfg, steps, seed=0):
    """(ids, targets) [steps·B, T] int32: uniform random tokens, targets the next id."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, VOCAB, size=(steps * cfg.batch, cfg.context + 1), dtype=np.int32)
    return seq[:, :-1].copy(), seq[:, 1:].copy()


def _setup(cfg):
    import jax
    import jax.numpy as jnp

    import fnnet
    net = fnnet.gpt(VOCAB, cfg.context, cfg.layers, cfg.heads, cfg.dim)
    params = fnnet.init(net, jax.random.key(0), jnp.float32)
    return net, params


def _optimizer():
    import optax
    return optax.adamw(1e-3)        # b1 0.9, b2 0.999, eps 1e-8, weight decay 1e-4 on every param


def runners(cfg, steps, systems, torch_threads, log):
    """[Runner] (run() trains `steps` steps and returns the first step's loss), [(system, why)]."""
    import jax
    import jax.numpy as jnp
    import optax

    import fnnet
    net, init = _setup(cfg)
    ids, tgt = data(cfg, steps)
    jids, jtgt = jnp.asarray(ids), jnp.asarray(tgt)
    B = cfg.batch
    batches = [(jids[i * B:(i + 1) * B], jtgt[i * B:(i + 1) * B]) for i in range(steps)]
    out, missing = [], []

    if "fnnet.fit" in systems:
        opt_fit = _optimizer()

        def run_fit():
            res = fnnet.fit(net, init, jids, jtgt, optimizer=opt_fit, epochs=1, batch_size=B,
                            key=jax.random.key(1))
            jax.block_until_ready(res)
            return None                  # fit reports no per-step loss here: see the jit rows
        out.append(Runner("fnnet.fit", "float32", run_fit, warmup=run_fit, note="fnnet.fit, key(1) shuffles the same windows"))

    def user_step(grad):
        opt = _optimizer()
        if grad == "fnnet":
            vg = lambda p, x, y: fnnet.value_and_grad(net, p, x, y)              # noqa: E731
        else:
            vg = jax.value_and_grad(lambda p, x, y: fnnet.loss(net, p, x, y))   # noqa: E731

        def step(p, s, x, y):
            loss, g = vg(p, x, y)
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s, loss
        jstep = jax.jit(step)

        def run():
            p, s, first = init, opt.init(init), None
            for x, y in batches:
                p, s, loss = jstep(p, s, x, y)
                first = loss if first is None else first
            jax.block_until_ready(p)
            return float(first)
        return run

    for system, grad in (("fnnet jit step", "fnnet"), ("jax.grad jit step", "jax.grad")):
        if system in systems:
            fn = user_step(grad)
            out.append(Runner(system, "float32", fn, warmup=fn, note=f"glibc malloc: {fnnet.MALLOC_STATUS}"))

    torch_systems = [s for s in ("torch eager", "torch.compile") if s in systems]
    if torch_systems:
        try:
            import torch
        except ImportError as e:
            missing += [(s, f"not installed ({e.name}); pip install 'fnnet[bench]'") for s in torch_systems]
            return out, missing
        tids, ttgt = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(tgt.astype(np.int64))
        tb = [(tids[i * B:(i + 1) * B], ttgt[i * B:(i + 1) * B]) for i in range(steps)]
        for system in torch_systems:
            try:
                out.append(_torch_runner(system, init, cfg, tb, torch_threads))
            except Exception as e:                   # torch.compile may lack a compiler here
                missing.append((system, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
                log(f"    {system}: {missing[-1][1]}")
    return out, missing


def _torch_runner(system, init, cfg, batches, threads):
    import torch

    from fnnet.bench.gpt_torch_model import build
    default = torch.get_num_threads()

    model = build(init, cfg.heads)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # compiled once: reset() restores the weights in place, so no timed run recompiles
    loss_fn = torch.compile(model.loss) if system == "torch.compile" else model.loss
    state = {}

    def reset():
        with torch.no_grad():
            model.load_state_dict(initial)
        state["opt"] = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                         weight_decay=1e-4)

    def run():
        torch.set_num_threads(threads or default)
        try:
            opt, first = state["opt"], None
            for x, y in batches:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(x, y)
                loss.backward()
                opt.step()
                first = float(loss.detach()) if first is None else first
            return first
        finally:
            torch.set_num_threads(default)

    reset()
    t0 = time.perf_counter()
    run()                        # compiles; raises here, not in the timed runs, if torch.compile cannot compile
    # warmup (after every runner is built): torch's first step after another module was
    # compiled is slow (measured: 10x the next ones), outside the timed runs
    return Runner(system, "float32", run, reset=reset, compile_s=time.perf_counter() - t0, warmup=run,
                  note=f"{threads or default} intra-op threads")


def run_config(cfg, steps, repeats, systems, torch_threads, log, settle_s=0.0):
    """One table: every system timed `repeats` times interleaved -> JSON-ready dict. The load
    is read before set-up and after the last run, each after up to `settle_s` seconds of quiet
    (timing.settle: the benchmark's own threads must leave the average first)."""
    load_before, _ = settle(settle_s)
    rs, missing = runners(cfg, steps, systems, torch_threads, log)
    timings = measure(rs, repeats, steps, log)
    load_after, settled_s = settle(settle_s)
    rows = []
    for r in rs:
        t = timings[r.key]
        if isinstance(t, str):
            rows.append({"system": r.system, "status": f"failed: {t}"})
            continue
        rows.append({"system": r.system, "status": "ok", "ms_per_step": 1e3 * t.median_s / steps,
                     "ms_per_step_runs": [1e3 * x / steps for x in t.times_s],
                     "cpu_ms_per_step": 1e3 * t.cpu_median_s / steps,
                     "first_loss": t.params, "note": r.note})
    rows += [{"system": s, "status": why} for s, why in missing]
    by = {r["system"]: r for r in rows if r["status"] == "ok"}
    ratios = {}
    for ours in ("fnnet.fit", "fnnet jit step"):
        for theirs in ("torch eager", "torch.compile", "jax.grad jit step"):
            if ours in by and theirs in by:
                ratios[f"{theirs} / {ours}"] = by[theirs]["ms_per_step"] / by[ours]["ms_per_step"]
    return {"config": dataclasses.asdict(cfg), "describe": cfg.describe(), "steps": steps,
            "repeats": repeats, **load_record(load_before, load_after, settled_s), "rows": rows, "speedups": ratios}


def markdown(tables):
    lines = ["## GPT vs PyTorch (same model, weights, tokens, AdamW)", "",
             "ms per training step, median of interleaved repeats; speedup = their time / fnnet's "
             "(above 1: fnnet faster). A table is publishable only if the 1-minute load average "
             f"was <= {PUBLISHABLE_LOAD:g} before it and again after it, once its own threads had "
             "stopped long enough to leave the average (nothing else running).", ""]
    for t in tables:
        lines += [f"### {t['config']['name']}: {t['describe']}, {t['steps']} steps x {t['repeats']} repeats",
                  "", load_line(t), "",
                  "| system | ms/step | CPU ms/step | first-step loss | status |", "|---|---|---|---|---|"]
        for r in t["rows"]:
            if r["status"] == "ok":
                loss = "" if r["first_loss"] is None else f"{r['first_loss']:.6f}"
                lines.append(f"| {r['system']} | {r['ms_per_step']:.2f} | {r['cpu_ms_per_step']:.2f} | {loss} | ok |")
            else:
                lines.append(f"| {r['system']} | | | | {r['status']} |")
        lines.append("")
        for k, v in t["speedups"].items():
            lines.append(f"- {k}: {v:.2f}x")
        if not t["publishable"]:
            lines.append("- under load, multi-threaded torch waits at OpenMP barriers for descheduled "
                         "threads: its rows are the least trustworthy here")
        lines.append("")
    return "\n".join(lines) + "\n"


def run(configs, steps, repeats, systems, torch_threads, log, settle_s=0.0):
    """-> (list of tables, Markdown)."""
    tables = []
    for cfg in configs:
        log(f"== GPT-torch {cfg.name}: {cfg.describe()}")
        tables.append(run_config(cfg, steps, repeats, systems, torch_threads, log, settle_s))
    return tables, markdown(tables)


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()
