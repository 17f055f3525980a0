"""The compiled training step's memory: fnnet's backward vs jax.grad vs the custom_vjp bridge.

Bytes come from `compiled.memory_analysis()` of one jitted step (deterministic for a
given XLA, no timing); the bench reports them per workload beside the timings.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import fnnet
from fnnet.bench.systems_jax import grad_fn, network, optimizer, params_for

MEMORY_KINDS = ("fnnet", "jax.grad", "custom_vjp")


def step_memory(workload, dtype="float32"):
    """Bytes of one compiled training step (value and grad + the optimizer update) at the
    workload's batch size, from `compiled.memory_analysis()`, for each gradient:
      fnnet       fnnet.value_and_grad (hand-written backward)
      jax.grad    jax.value_and_grad(fnnet.loss)
      custom_vjp  jax.value_and_grad(fnnet.loss_with_manual_grad(net)) (the bridge)
    -> {kind: {temp_bytes, argument_bytes, output_bytes, alias_bytes, peak_bytes}};
    peak_bytes = arguments + outputs - aliased + temporaries, XLA's static estimate.
    """
    net = network(workload)
    opt = optimizer(workload)
    x_np, y_np = workload.data()
    xb = jnp.asarray(x_np[:workload.batch], dtype)
    yb = jnp.asarray(y_np[:workload.batch], dtype)
    params = params_for(net, workload, dtype)
    bridge = fnnet.loss_with_manual_grad(net)
    grads = {"fnnet": grad_fn(net, "fnnet"), "jax.grad": grad_fn(net, "jax.grad"),
             "custom_vjp": lambda p, xb, yb: jax.value_and_grad(bridge)(p, xb, yb)}
    out = {}
    for kind in MEMORY_KINDS:
        value_and_grad = grads[kind]

        def step(p, s, xb, yb):
            value, g = value_and_grad(p, xb, yb)
            updates, s = opt.update(g, s, p)
            return optax.apply_updates(p, updates), s, value

        m = jax.jit(step).lower(params, opt.init(params), xb, yb).compile().memory_analysis()
        out[kind] = {"temp_bytes": int(m.temp_size_in_bytes),
                     "argument_bytes": int(m.argument_size_in_bytes),
                     "output_bytes": int(m.output_size_in_bytes),
                     "alias_bytes": int(m.alias_size_in_bytes),
                     "peak_bytes": int(m.argument_size_in_bytes + m.output_size_in_bytes
                                       - m.alias_size_in_bytes + m.temp_size_in_bytes)}
    return {"batch": workload.batch, "dtype": jnp.dtype(dtype).name, "kinds": out}


def mb(b):
    return f"{b / 1e6:.1f}" if b >= 1e5 else f"{b / 1e6:.3f}"


def table(mem):
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
        lines.append(f"| {what.get(k, k)} | {mb(m['temp_bytes'])} | {mb(m['peak_bytes'])} | "
                     f"{m['temp_bytes'] / max(ref['temp_bytes'], 1):.2f} | "
                     f"{m['peak_bytes'] / max(ref['peak_bytes'], 1):.2f} |")
    return lines
