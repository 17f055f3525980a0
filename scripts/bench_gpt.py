"""GPT step time and compiled memory: fnnet's hand-written backward vs jax.grad of the same forward.

    PYTHONPATH=$PWD python scripts/bench_gpt.py            # the README model (2 layers, dim 64, T 64)
    PYTHONPATH=$PWD python scripts/bench_gpt.py --quick    # smaller, for a smoke run

Reports, for one training step (loss + gradients + AdamW update) under jax.jit:
  * median wall time of each, measured interleaved (A B A B ...) in one process, and the ratio;
  * `compiled.memory_analysis()` temp bytes (the scratch XLA allocates: the residuals
    autodiff keeps, or the caches the hand-written backward keeps) and argument/output bytes;
  * the same for CausalSelfAttention alone (forward + backward) keeping the probabilities
    [B, H, T, T] (recompute=False) or only the row logsumexp (recompute=True).
Nothing here is asserted; numbers are what this machine measured.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnnet


def _mem(compiled):
    m = compiled.memory_analysis()
    return dict(temp=int(m.temp_size_in_bytes), args=int(m.argument_size_in_bytes), out=int(m.output_size_in_bytes))


def gpt_steps(vocab, context, layers, heads, dim, batch, recompute=False):
    net = fnnet.gpt(vocab, context, layers, heads, dim, recompute=recompute)
    params = fnnet.init(net, jax.random.key(0))
    opt = optax.adamw(1e-3)
    state = opt.init(params)
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(0, vocab, (batch, context)), jnp.int32)
    targets = jnp.asarray(rng.integers(0, vocab, (batch, context)), jnp.int32)

    def make(grad_fn):
        def step(p, s, x, y):
            loss, g = grad_fn(p, x, y)
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s, loss
        return jax.jit(step, donate_argnums=(0, 1))

    manual = make(lambda p, x, y: fnnet.value_and_grad(net, p, x, y))
    autodiff = make(jax.value_and_grad(lambda p, x, y: fnnet.loss(net, p, x, y)))
    return net, params, state, ids, targets, {"hand-written": manual, "jax.grad": autodiff}


def time_interleaved(steps, params, state, ids, targets, repeats, inner):
    """Median seconds per step of each, alternating A B A B so load drifts hit both."""
    carries = {k: jax.tree.map(jnp.copy, (params, state)) for k in steps}
    compiled, mem = {}, {}
    for k, f in steps.items():
        t0 = time.perf_counter()
        lowered = f.lower(*carries[k], ids, targets)
        compiled[k] = lowered.compile()
        mem[k] = _mem(compiled[k])
        print(f"  compiled {k} in {time.perf_counter() - t0:.1f} s")
    times = {k: [] for k in steps}
    for k in steps:                                         # warm up
        p, s, l = compiled[k](*carries[k], ids, targets)
        l.block_until_ready()
        carries[k] = (p, s)
    for _ in range(repeats):
        for k in steps:
            p, s = carries[k]
            t0 = time.perf_counter()
            for _ in range(inner):
                p, s, l = compiled[k](p, s, ids, targets)
            l.block_until_ready()
            times[k].append((time.perf_counter() - t0) / inner)
            carries[k] = (p, s)
    return {k: float(np.median(v)) for k, v in times.items()}, mem


def attention_memory(batch, heads, context, dim):
    """temp bytes of jit(forward + backward) of one CausalSelfAttention, both cache choices."""
    x = jax.ShapeDtypeStruct((batch, context, dim), jnp.float32)
    dy = x
    out = {}
    for recompute in (False, True):
        layer = fnnet.CausalSelfAttention(heads, dim, recompute=recompute)
        p = jax.eval_shape(lambda: layer.init(jax.random.key(0), (context, dim))[0])

        def fb(p, x, dy, layer=layer):
            _, cache = layer.forward(p, x)
            return layer.backward(p, cache, dy)

        def cache_bytes(p, x, layer=layer):
            return layer.forward(p, x)[1]
        cache = jax.eval_shape(cache_bytes, p, x)
        out[recompute] = dict(temp=_mem(jax.jit(fb).lower(p, x, dy).compile())["temp"],
                              cache=sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(cache)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    size = dict(vocab=103, context=64, layers=2, heads=4, dim=64, batch=32)
    if args.quick:
        size = dict(vocab=50, context=32, layers=1, heads=2, dim=32, batch=8)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float32; gpt {size}")
    for recompute in (False, True):
        print(f"GPT training step (AdamW), attention recompute={recompute}:")
        _, params, state, ids, targets, steps = gpt_steps(**size, recompute=recompute)
        med, mem = time_interleaved(steps, params, state, ids, targets, args.repeats, inner=5)
        for k in steps:
            print(f"  {k:<12} {med[k] * 1e3:8.2f} ms/step   temp {mem[k]['temp']:>11,} B   "
                  f"args {mem[k]['args']:>10,} B")
        print(f"  ratio hand-written / jax.grad: time {med['hand-written'] / med['jax.grad']:.3f}, "
              f"temp bytes {mem['hand-written']['temp'] / mem['jax.grad']['temp']:.3f}")
    b, h, t, c = (8, 4, 256, 128) if not args.quick else (2, 2, 64, 32)
    att = attention_memory(b, h, t, c)
    print(f"CausalSelfAttention alone, forward+backward, x [{b}, {t}, {c}], {h} heads, float32:")
    for recompute, m in att.items():
        what = "keeps m [B,H,T,1], recomputes p" if recompute else "keeps p [B,H,T,T]"
        print(f"  recompute={recompute!s:<5} ({what}): cache {m['cache']:>11,} B, jit temp {m['temp']:>11,} B")


if __name__ == "__main__":
    main()
