"""JAX systems: fnnet's hand-written backward, fnnet.fit, and jax.grad of fnnet.loss.

    fnnet     jit(lax.scan over steps of fnnet.value_and_grad + optax update), params and
              optimizer state donated; compiled ahead of time (.lower().compile()), so
              compile time is measured apart and never inside a timed run.
    jax.grad  the same scan with jax.value_and_grad(fnnet.loss) as the gradient.
    fnnet.fit fnnet.fit itself; it compiles inside its first call, an untimed warm-up whose
              trace + lower + compile seconds jax.monitoring reports. It shuffles with its key, so for
              W3 its batches differ from the bare scan's (data order); the work is equal.

The bare scans take minibatches in data order with lax.dynamic_slice and, as fit does,
one more, smaller step on the n % batch left-over rows.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import fnnet
from fnnet.bench.timing import Runner, median_time
from fnnet.layers.dense import xt_matmul


def network(workload):
    if workload.network is not None:
        return workload.network()
    return fnnet.mlp(list(workload.sizes), activation=workload.activation,
                     loss="softmax_cross_entropy", l2=workload.l2)


def params_for(net, workload, dtype):
    """The workload's shared initial weights as fnnet params (a tuple, one entry per layer)."""
    if workload.network is not None:                 # not an MLP: fnnet's own init
        return fnnet.init(net, jax.random.key(0), dtype)
    dense = iter(workload.init_params())
    out = []
    for layer in net.layers:
        if isinstance(layer, fnnet.Dense):
            w, b = next(dense)
            out.append(fnnet.DenseParams(jnp.asarray(w, dtype), jnp.asarray(b, dtype)))
        else:
            out.append(())
    return tuple(out)


def dense_params(params):
    return [(np.asarray(p.w), np.asarray(p.b)) for p in params if isinstance(p, fnnet.DenseParams)]


def result_params(workload):
    """Final params for the report's NumPy loss (MLPs only: other nets report no final loss)."""
    return dense_params if workload.network is None else (lambda _: None)


def optimizer(workload):
    if workload.optimizer == "sgd":
        return optax.sgd(workload.lr)
    if workload.optimizer == "adam":
        return optax.adam(workload.lr)
    raise ValueError(f"unknown optimizer {workload.optimizer!r}")


def grad_fn(net, kind):
    """(params, xb, yb) -> (loss, grads)."""
    if kind == "fnnet":
        return lambda p, xb, yb: fnnet.value_and_grad(net, p, xb, yb)      # hand-written
    if kind == "jax.grad":
        return lambda p, xb, yb: jax.value_and_grad(lambda q: fnnet.loss(net, q, xb, yb))(p)
    raise ValueError(kind)


def make_train(workload, opt, value_and_grad):
    """train(params, opt_state, x, y) -> (params, opt_state, last step's loss)."""
    n, k = workload.n, workload.batch
    full, rem = n // k, n % k

    def step(p, s, xb, yb):
        value, g = value_and_grad(p, xb, yb)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    def train(params, opt_state, x, y):
        def epoch(carry, _):
            p, s = carry
            if full == 1 and rem == 0:                               # full batch: one step
                p, s, value = step(p, s, x, y)
                return (p, s), value

            def body(c, i):
                xb = lax.dynamic_slice_in_dim(x, i * k, k)
                yb = lax.dynamic_slice_in_dim(y, i * k, k)
                q, t, v = step(*c, xb, yb)
                return (q, t), v

            (p, s), values = lax.scan(body, (p, s), jnp.arange(full))
            value = values[-1]
            if rem:                                                  # the left-over rows
                p, s, value = step(p, s, x[full * k:], y[full * k:])
            return (p, s), value

        (params, opt_state), values = lax.scan(epoch, (params, opt_state), None,
                                               length=workload.epochs)
        return params, opt_state, values[-1]

    return train


def _timed_compile(jitted, *args):
    import time
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


HLO_OPS = ("dot", "transpose", "copy", "fusion", "reduce", "exponential")


def hlo_stats(compiled):
    """Op counts of a compiled XLA program (after fusion): what the CPU actually runs."""
    import collections
    import re
    ops = collections.Counter(re.findall(r"= [^=]*? ([a-z][\w-]*)\(", compiled.as_text()))
    return {op: ops[op] for op in HLO_OPS}


def scan_runner(workload, dtype, kind, matmul_dtype=None):
    """kind "fnnet" (hand-written backward) or "jax.grad" (autodiff of fnnet.loss);
    matmul_dtype "bfloat16": every Dense multiplies in bf16 (fnnet.with_matmul_dtype)."""
    net = network(workload)
    if matmul_dtype is not None:
        net = fnnet.with_matmul_dtype(net, matmul_dtype)
    opt = optimizer(workload)
    x_np, y_np = workload.data()
    x, y = jnp.asarray(x_np, dtype), jnp.asarray(y_np, dtype)
    init = params_for(net, workload, dtype)
    train = jax.jit(make_train(workload, opt, grad_fn(net, kind)), donate_argnums=(0, 1))
    compiled, compile_s = _timed_compile(train, init, opt.init(init), x, y)
    state = {}

    def reset():
        p = jax.tree.map(lambda a: jnp.array(a, copy=True), init)
        state["args"] = jax.block_until_ready((p, opt.init(p)))

    def run():
        return jax.block_until_ready(compiled(*state.pop("args"), x, y))

    what = "fnnet.value_and_grad (hand-written)" if kind == "fnnet" else "jax.value_and_grad(fnnet.loss)"
    if matmul_dtype is not None:
        what += f" with {matmul_dtype} matmuls (float32 params and accumulation)"
    keep = result_params(workload)
    return Runner(kind, jnp.dtype(dtype).name, run, result_params=lambda out: keep(out[0]),
                  reset=reset, compile_s=compile_s, hlo=hlo_stats(compiled),
                  variant="" if matmul_dtype is None else "bf16 matmuls",
                  note=f"jit(lax.scan) of {what} + optax.{workload.optimizer}, donated carry")


_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_compile_log = []


def _on_event(event, duration, **_):
    if _compile_log and event in _COMPILE_EVENTS:
        _compile_log[-1].append(duration)


jax.monitoring.register_event_duration_secs_listener(_on_event)


def compile_seconds(fn):
    """(fn(), seconds jax spent tracing, lowering and compiling during that call)."""
    _compile_log.append([])
    try:
        out = fn()
    finally:
        spent = _compile_log.pop()
    return out, sum(spent)


def fit_runner(workload, dtype, grad="manual"):
    """fnnet.fit(..., grad=grad): "manual" (hand-written) or "autodiff" (jax.grad of the loss)."""
    net = network(workload)
    opt = optimizer(workload)                      # one object: fit's jit cache keys on it
    x_np, y_np = workload.data()
    x, y = jnp.asarray(x_np, dtype), jnp.asarray(y_np, dtype)
    init = params_for(net, workload, dtype)
    minibatch = workload.batch < workload.n
    key = jax.random.key(0) if minibatch else None

    def run():
        params, *_ = fnnet.fit(net, init, x, y, optimizer=opt, epochs=workload.epochs,
                              batch_size=workload.batch_size, key=key, grad=grad)
        return jax.block_until_ready(params)

    note = "fnnet.fit" + (" (shuffled each epoch with its key)" if minibatch else " (full batch)")
    if grad != "manual":
        note += f", grad={grad!r}"
    runner = Runner("fnnet.fit", jnp.dtype(dtype).name, run, result_params=result_params(workload),
                    note=note, variant="" if grad == "manual" else grad)

    def warmup():                                  # fit compiles inside its first call
        _, runner.compile_s = compile_seconds(run)
    runner.warmup = warmup
    return runner


def matmul_peak(n=2048, repeats=7, dtype=jnp.float32):
    """GFLOP/s of a jitted n×n · n×n jnp.dot: median of `repeats` calls after a warm-up."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n)), dtype)
    b = jnp.asarray(rng.standard_normal((n, n)), dtype)
    f, _ = _timed_compile(jax.jit(jnp.dot), a, b)
    med, times = median_time(lambda: f(a, b).block_until_ready(), repeats)
    return {"n": n, "dtype": jnp.dtype(dtype).name, "median_s": med, "times_s": times,
            "gflops": 2 * n ** 3 / med / 1e9}


def matmul_ceiling(workload, repeats=7, dtype=jnp.float32, per_shape=True, seconds=0.5):
    """What the step's matmuls alone reach: every dense layer's forward x·W, dW = xᵀ·dy and
    dx = dy·Wᵀ (not for the first layer) at the step's batch size, run as the training runs
    them: in a jitted lax.scan over steps, no activations, loss or update. Each step's inputs
    move by a scalar carried from the previous step's outputs (their sums, a read of every
    output), so that XLA can neither hoist the matmuls out of the loop nor drop them.
    GFLOP/s over the needed matmul FLOPs; per_shape adds each forward matmul alone.
    dW is built as Dense.backward builds it (fnnet.layers.dense.xt_matmul, materialized
    transposes): the folded `x.T @ dy` takes XLA:CPU's slow dot emitter and would
    understate the ceiling."""
    rng = np.random.default_rng(0)
    rows = workload.batch
    sizes = workload.sizes
    mats, need = [], []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        mats.append(tuple(jnp.asarray(rng.standard_normal(shape), dtype)
                          for shape in ((rows, d_in), (d_in, d_out), (rows, d_out))))
        need.append(i > 0)
    flops = sum((6 if nd else 4) * rows * w.shape[0] * w.shape[1] for (_, w, _), nd in zip(mats, need))
    steps = int(min(max(seconds * 100e9 / flops, 2), 2000 * seconds))   # ~`seconds` at 100 GFLOP/s

    def loop(mats):
        def body(c, _):
            total = jnp.zeros((), dtype)
            for (x, w, dy), need_dx in zip(mats, need):
                x, dy = x + c, dy + c
                dw = xt_matmul(x, dy)                                 # as Dense.backward
                outs = [x @ w, dw] + ([dy @ w.T] if need_dx else [])   # fwd, dL/dW, dL/dx
                total = total + sum(o.sum() for o in outs)
            return total * 1e-30, None
        return lax.scan(body, jnp.zeros((), dtype), None, length=steps)[0]

    f, _ = _timed_compile(jax.jit(loop), mats)
    med, _ = median_time(lambda: f(mats).block_until_ready(), repeats)
    shapes = []
    for (x, w, _) in (mats if per_shape else ()):          # each forward matmul alone
        g, _ = _timed_compile(jax.jit(jnp.matmul), x, w)
        t, _ = median_time(lambda: g(x, w).block_until_ready(), repeats)
        shapes.append({"shape": f"{rows}x{x.shape[1]} · {x.shape[1]}x{w.shape[1]}",
                       "gflops": 2 * rows * x.shape[1] * w.shape[1] / t / 1e9})
    return {"rows": rows, "steps": steps, "median_s": med, "flops": flops * steps,
            "gflops": flops * steps / med / 1e9, "forward_matmuls": shapes}

