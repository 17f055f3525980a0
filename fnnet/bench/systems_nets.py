"""The nets' two systems (workloads_nets.py): fnnet.fit with the hand-written backward and
fnnet.fit(grad="autodiff"), jax.grad of the same forward; their step memory; final losses.

    fnnet     fnnet.fit(net, params, x, y, grad="manual", key=key(1)[, state=])
    jax.grad  the same call with grad="autodiff": jax.value_and_grad of fnnet.loss
              (fnnet/train/loop.py's comparison path), so both take the same shuffled batches,
              the same dropout masks (step i of epoch e draws fold_in(fold_in(key, e), i + 1))
              and thread BatchNorm's state the same way.

fit compiles inside its first call: an untimed warm-up whose trace + lower + compile seconds
jax.monitoring reports (systems_jax.compile_seconds). Step memory compiles one jitted step
(gradient + optimizer update) of each at the workload's batch and reads
`compiled.memory_analysis()`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnnet
from fnnet.bench.systems_jax import compile_seconds
from fnnet.bench.timing import Runner
from fnnet.state import is_stateful, is_stochastic

GRADS = {"fnnet": "manual", "jax.grad": "autodiff"}
NOT_APPLICABLE = ("numpy-seed", "reference", "fnnet.fit", "torch")
WHY = {"numpy-seed": "not applicable: the seeds are MLPs", "reference": "not applicable: reference/ has no training loop for this net",
       "fnnet.fit": "not applicable: the fnnet row is fnnet.fit", "torch": "not applicable: no torch twin"}


def _stateful(net):
    return any(is_stateful(layer) for layer in net.layers)


def _stochastic(net):
    return any(is_stochastic(layer) for layer in net.layers)


def setup(w, net=None):
    """(net, params, layer state or None, x, y): the same initial params for both systems."""
    net = w.network() if net is None else net
    x, y = w.data()
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    params = fnnet.init(net, jax.random.key(0), jnp.float32)
    state = fnnet.init_state(net, jnp.float32) if _stateful(net) else None
    return net, params, state, x, y


def fit_runner(w, system):
    """system "fnnet" (grad="manual") or "jax.grad" (grad="autodiff") -> Runner whose result
    is (params, layer state or None)."""
    net, init, state, x, y = setup(w)
    opt = w.optimizer()                        # one object per runner: fit's jit cache keys on it
    grad = GRADS[system]
    kw = {} if state is None else {"state": state}

    def run():
        out = fnnet.fit(net, init, x, y, optimizer=opt, epochs=w.epochs, batch_size=w.batch,
                        key=jax.random.key(1), grad=grad, **kw)
        return jax.block_until_ready((out.params, out.state))

    note = f"fnnet.fit(grad={grad!r}), {w.opt_name}, key(1)" + (", BatchNorm state threaded" if state is not None else "")
    runner = Runner(system, "float32", run, note=note)

    def warmup():                              # fit compiles inside its first call
        _, runner.compile_s = compile_seconds(run)
    runner.warmup = warmup
    return runner


def final_losses(w, results):
    """{system: loss of its trained params on the first eval_rows training rows, eval mode}
    for results {system: (params, layer state or None)}. One jitted evaluation serves every
    system (the same net and shapes): one compile, not one per eager op and system."""
    net = w.network()
    x, y = w.data()
    x, y = jnp.asarray(x[:w.eval_rows]), jnp.asarray(y[:w.eval_rows])

    @jax.jit
    def value(params, state, x, y):
        if state is None:
            return fnnet.loss(net, params, x, y, train=False)
        return fnnet.loss(net, params, x, y, train=False, state=state)[0]
    return {system: float(value(params, state, x, y)) for system, (params, state) in results.items()}


def _bytes(compiled):
    m = compiled.memory_analysis()
    return {"temp_bytes": int(m.temp_size_in_bytes), "argument_bytes": int(m.argument_size_in_bytes),
            "output_bytes": int(m.output_size_in_bytes), "alias_bytes": int(m.alias_size_in_bytes),
            "peak_bytes": int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
                              + m.temp_size_in_bytes)}


def step_memory(w, net=None):
    """{system: bytes} of one jitted training step at the workload's batch: the gradient fit
    uses (fnnet/train/loop.py's step_value_and_grad, which threads state and key) + the update."""
    from fnnet.train.loop import step_value_and_grad
    net, params, state, x, y = setup(w, net)
    opt = w.optimizer()
    xb, yb = x[:w.batch], y[:w.batch]
    st = () if state is None else state
    key = jax.random.key(2) if _stochastic(net) else None
    out = {}
    for system, grad in GRADS.items():
        def step(p, s, st, xb, yb, grad=grad):
            value, g, new = step_value_and_grad(net, grad, p, xb, yb, st, key)
            updates, s = opt.update(g, s, p)
            return optax.apply_updates(p, updates), s, new, value
        out[system] = _bytes(jax.jit(step).lower(params, opt.init(params), st, xb, yb).compile())
    return out


def attention_memory(batch, heads, context, dim):
    """CausalSelfAttention alone, jit(forward + backward), float32: {recompute: {temp, cache}}
    bytes; recompute=False keeps p [B, H, T, T], True only the row logsumexp [B, H, T, 1]."""
    x = jax.ShapeDtypeStruct((batch, context, dim), jnp.float32)
    out = {}
    for recompute in (False, True):
        layer = fnnet.CausalSelfAttention(heads, dim, recompute=recompute)
        p = jax.eval_shape(lambda layer=layer: layer.init(jax.random.key(0), (context, dim))[0])

        def fb(p, x, dy, layer=layer):
            _, cache = layer.forward(p, x)
            return layer.backward(p, cache, dy)

        cache = jax.eval_shape(lambda p, x, layer=layer: layer.forward(p, x)[1], p, x)
        out[str(recompute)] = {
            "temp_bytes": _bytes(jax.jit(fb).lower(p, x, x).compile())["temp_bytes"],
            "cache_bytes": sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(cache))}
    return {"shape": {"batch": batch, "heads": heads, "context": context, "dim": dim}, "recompute": out}


def run(w, systems, repeats, log):
    """Time the workload's systems (interleaved repeats) -> a JSON-ready dict (report_nets.py)."""
    from fnnet.bench import report_nets, timing
    runners, missing = [], []
    for system in systems:
        if system in GRADS:
            r = fit_runner(w, system)
            runners.append(r)
        else:
            missing.append((system, WHY.get(system, "not applicable")))
    timings = timing.measure(runners, repeats, w.steps, log)
    for r in runners:
        if r.compile_s is not None:
            log(f"    {r.key:<34} compiled in {r.compile_s:.2f} s")
    losses = final_losses(w, {r.system: timings[r.system + "/float32"].params
                              for r in runners if not isinstance(timings[r.system + "/float32"], str)})
    log("    step memory (compiled.memory_analysis) ...")
    memory = step_memory(w)
    extra = {}
    if w.recompute_network is not None:
        extra["recompute_step_memory"] = step_memory(w, w.recompute_network())
    if w.attention_shape is not None:
        extra["attention_memory"] = attention_memory(*w.attention_shape)
    return report_nets.workload_out(w, runners, timings, missing, losses, memory, extra)
