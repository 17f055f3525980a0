#!/usr/bin/env python
"""A/B of fnnet's memory setting (glibc malloc and CPU dispatch, fnnet/_xla_cpu.py) on a
user's own jitted step (a GPT config, or a small MLP whose batch the host slices from NumPy
before each call: what asynchronous dispatch would overlap) and the same steps in fit's lax.scan.

mallopt is process-wide, so each side runs in its own child process, the children
alternating (A B A B ...): "setting on" imports fnnet with FNNET_CPU_MALLOC=1, "fnnet default"
is a plain `import fnnet` (off). Each child times both a per-call jax.jit step and the same steps in
one lax.scan (what fit runs) and reports per step: wall ms, process CPU ms (user + system,
both threads), system ms and minor page faults, and the child's peak RSS. CPU and fault counts survive a loaded
machine far better than wall time; the minimum over pairs is printed.

    python scripts/bench_malloc.py [--pairs 3] [--steps 8] [--config M|L|XL|MLP]
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import jax, jax.numpy as jnp, optax
import fnnet
import numpy as np
from fnnet.bench.gpt_torch import CONFIGS, VOCAB, data
steps = int(sys.argv[2])
if sys.argv[1] == "MLP":            # a small step whose batch the host slices from NumPy each call
    net, batch = fnnet.mlp([64, 256, 256, 10]), 32
    rng = np.random.default_rng(0)
    Xh = rng.normal(size=(steps * batch, 64)).astype(np.float32)
    Yh = np.eye(10, dtype=np.float32)[rng.integers(0, 10, steps * batch)]
else:
    cfg = CONFIGS[sys.argv[1]]
    net, batch = fnnet.gpt(VOCAB, cfg.context, cfg.layers, cfg.heads, cfg.dim), cfg.batch
    Xh, Yh = data(cfg, steps)
p0 = fnnet.init(net, jax.random.key(0)); opt = optax.adamw(1e-3); s0 = opt.init(p0)
X, Y = jnp.asarray(Xh).reshape(steps, batch, *Xh.shape[1:]), jnp.asarray(Yh).reshape(steps, batch, *Yh.shape[1:])
def step(p, s, x, y):
    loss, g = fnnet.value_and_grad(net, p, x, y)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss
jstep = jax.jit(step)
@jax.jit
def scanned(p, s, X, Y):
    def body(c, xy):
        p, s, l = step(*c, *xy)
        return (p, s), l
    return jax.lax.scan(body, (p, s), (X, Y))
def per_call():
    p, s = p0, s0
    for i in range(steps):
        rows = slice(i * batch, (i + 1) * batch)          # the host's work for the next batch
        p, s, _ = jstep(p, s, Xh[rows], Yh[rows])
    jax.block_until_ready(p)
def in_scan():
    jax.block_until_ready(scanned(p0, s0, X, Y))
out = {"status": fnnet.MALLOC_STATUS}
for name, f in (("jit step", per_call), ("scan", in_scan)):
    f()
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    f()
    wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    out[name] = {"ms": 1e3 * wall / steps,
                 "cpu_ms": 1e3 * (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / steps,
                 "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / steps,
                 "faults": (r1.ru_minflt - r0.ru_minflt) / steps}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--config", default="M", help="a GPT config (S, M, L, XL) or MLP (64-256-256-10, batch 32)")
    a = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sides = {"setting on": {"FNNET_CPU_MALLOC": "1"}, "fnnet default": {}}
    out = {k: [] for k in sides}
    load0 = os.getloadavg()
    for _ in range(a.pairs):
        for name, extra in sides.items():
            env = {**{k: v for k, v in os.environ.items() if k != "FNNET_CPU_MALLOC"}, **extra, "PYTHONPATH": root}
            r = subprocess.run([sys.executable, "-c", CHILD, a.config, str(a.steps)], env=env,
                               capture_output=True, text=True, check=True)
            out[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(name, out[name][-1], flush=True)
    load1 = os.getloadavg()
    print(f"config {a.config}, {a.steps} steps, {a.pairs} pairs; 1-minute load before {load0[0]:.2f}, "
          f"after {load1[0]:.2f}; minimum over pairs, per step:")
    for name, runs in out.items():
        for prog in ("jit step", "scan"):
            best = {k: min(r[prog][k] for r in runs) for k in ("ms", "cpu_ms", "sys_ms", "faults")}
            print(f"  {name:13s} {prog:8s} wall {best['ms']:7.2f} ms  CPU {best['cpu_ms']:7.2f} ms  "
                  f"system {best['sys_ms']:6.2f} ms  minor faults {best['faults']:8.0f}  ({runs[0]['status']})")
        print(f"  {name:13s} peak RSS of the child {max(r['peak_rss_mb'] for r in runs):.0f} MB")


if __name__ == "__main__":
    main()
