#!/usr/bin/env python
"""A/B of XLA:CPU's concurrency-optimized scheduler on a user's own jitted GPT step.

XLA reads XLA_FLAGS once per process, so each side runs in its own child process, the
children alternating (A B A B ...): "fnnet default" is a plain `import fnnet` (which turns
the scheduler off, fnnet/_xla_cpu.py), "scheduler on" the same with FNNET_XLA_FLAGS=0.
Prints ms per step of each child and the ratio of the medians. Also checks that the two
compiled programs differ (the flag took effect) and that jax.jit(compiler_options=...)
does not change the program (why fnnet sets the process flag instead).

    python scripts/bench_xla_scheduler.py [--pairs 3] [--steps 20] [--config S]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import hashlib, json, sys, time
import jax, jax.numpy as jnp, numpy as np, optax
import fnnet
from fnnet.bench.gpt_torch import CONFIGS, VOCAB, data
cfg, steps = CONFIGS[sys.argv[1]], int(sys.argv[2])
net = fnnet.gpt(VOCAB, cfg.context, cfg.layers, cfg.heads, cfg.dim)
p0 = fnnet.init(net, jax.random.key(0)); opt = optax.adamw(1e-3)
ids, tgt = data(cfg, 1)
x, y = jnp.asarray(ids), jnp.asarray(tgt)
def step(p, s, x, y):
    loss, g = fnnet.value_and_grad(net, p, x, y)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss
f = jax.jit(step)
s0 = opt.init(p0)
text = lambda **kw: jax.jit(step, **kw).lower(p0, s0, x, y).compile().as_text()
h = hashlib.md5(text().encode()).hexdigest()
h_opt = hashlib.md5(text(compiler_options={"xla_cpu_enable_concurrency_optimized_scheduler": False}).encode()).hexdigest()
p, s, _ = f(p0, s0, x, y); jax.block_until_ready(p)
t = time.perf_counter()
for _ in range(steps):
    p, s, _ = f(p, s, x, y)
jax.block_until_ready(p)
print(json.dumps({"ms": 1e3 * (time.perf_counter() - t) / steps, "hlo": h, "hlo_compiler_options": h_opt,
                  "status": fnnet.XLA_FLAGS_STATUS}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--config", default="S")
    a = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sides = {"fnnet default": {}, "scheduler on": {"FNNET_XLA_FLAGS": "0"}}
    out = {k: [] for k in sides}
    with open("/proc/loadavg") as f:
        load0 = " ".join(f.read().split()[:3])
    for _ in range(a.pairs):
        for name, extra in sides.items():
            env = {**os.environ, **extra, "PYTHONPATH": root}
            env.pop("XLA_FLAGS", None)
            r = subprocess.run([sys.executable, "-c", CHILD, a.config, str(a.steps)], env=env,
                               capture_output=True, text=True, check=True)
            out[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(name, out[name][-1], flush=True)
    with open("/proc/loadavg") as f:
        load1 = " ".join(f.read().split()[:3])
    med = {k: statistics.median(d["ms"] for d in v) for k, v in out.items()}
    print(f"config {a.config}: median ms/step {med}; scheduler on / fnnet default = "
          f"{med['scheduler on'] / med['fnnet default']:.2f}; load before {load0}, after {load1}")
    on, off = out["scheduler on"][0], out["fnnet default"][0]
    print(f"flag changes the program: {on['hlo'] != off['hlo']}; "
          f"jax.jit(compiler_options=) changes it: {on['hlo'] != on['hlo_compiler_options']}")


if __name__ == "__main__":
    main()
