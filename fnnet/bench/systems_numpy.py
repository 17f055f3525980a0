"""NumPy systems: the seeds' own loops (numpy_seeds.py), and the `reference/` float64 twin.

* the seeds' loops (numpy_seeds.py): seed 001 (W1), seed 002 (W2), and their style with
  minibatches and a NumPy Adam (W3, W4), timed here in float64 and float32.
* reference: `reference.network.train_sgd` (W1, W2), or `reference.network.backward`
  plus the NumPy Adam of numpy_seeds.py (W3). The reference computes in float64 only.

BLAS threads: on a shared 2-core machine multi-threaded OpenBLAS spin-waits against the
other load and can be many times slower than one thread on these small matrices, so the
NumPy rows run with `blas_threads` BLAS threads (1 by default, via threadpoolctl); the
`numpy-seed[blas default]` row shows the untouched default.
"""
from __future__ import annotations

import contextlib

import numpy as np

from fnnet.bench.numpy_seeds import Adam, seed001_train, seed002_train, seed_style_train, sigmoid
from fnnet.bench.timing import Runner, median_time

# ---------------------------------------------------------------- runners


@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS threads to n (None: leave the default) for the duration."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                                     # sklearn brings it; be safe
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _thread_note(n):
    return "BLAS default threads" if n is None else f"BLAS {n} thread{'s' if n > 1 else ''}"


def seed_runner(workload, dtype, threads=1, variant="", timed_steps=None):
    """The seed's NumPy loop for `workload` in `dtype` ("float64" as published, or "float32")."""
    x, y = (a.astype(dtype) for a in workload.data())
    init = [(w.astype(dtype), b.astype(dtype)) for w, b in workload.init_params()]
    full = workload.batch_size is None
    if full and workload.activation == "sigmoid" and len(workload.sizes) == 4 and not workload.l2:
        def train(epochs):
            return seed001_train(x, y, init, workload.lr, epochs)
        what = "seed 001's MyNN loop (`-=` fix)"
    elif full and workload.activation == "relu" and len(workload.sizes) == 3:
        def train(epochs):
            return seed002_train(x, y, init, workload.lr, workload.l2, epochs)
        what = "seed 002's loop"
    else:
        what = f"seed-style NumPy loop + NumPy {workload.optimizer}"
        train = None
    if train is not None:
        steps = timed_steps or workload.steps

        def run():
            with blas_threads(threads), np.errstate(over="ignore"):
                return train(steps)
    else:
        steps = timed_steps or (workload.slow_steps if workload.slow_steps else None)

        def run():
            with blas_threads(threads), np.errstate(over="ignore"):
                return seed_style_train(x, y, init, workload, max_steps=steps)
    return Runner("numpy-seed", dtype, run, timed_steps=steps if steps and steps < workload.steps else None,
                  note=f"{what}; {_thread_note(threads)}", variant=variant)


def reference_runner(workload, threads=1):
    """reference/ (NumPy float64): train_sgd for SGD workloads, backward + NumPy Adam else."""
    from fnnet_reference import network as ref

    x, y = workload.data()
    layers = []
    for i, (w, b) in enumerate(workload.init_params()):
        layers.append({"kind": "dense", "w": w, "b": b})
        if i < len(workload.sizes) - 2:
            layers.append({"kind": workload.activation})
    if workload.optimizer == "sgd":
        steps = None

        def run():
            with blas_threads(threads):
                trained, _ = ref.train_sgd(layers, "softmax_cross_entropy", x, y, lr=workload.lr,
                                           epochs=workload.epochs, l2=workload.l2,
                                           batch_size=workload.batch_size)
            return trained
        note = "reference.network.train_sgd"
    else:
        steps = workload.slow_steps

        def run():
            current = [dict(l) for l in layers]
            dense = [l for l in current if l["kind"] == "dense"]
            for l in dense:
                l["w"], l["b"] = l["w"].copy(), l["b"].copy()
            adam = Adam([l["w"] for l in dense] + [l["b"] for l in dense], workload.lr)
            with blas_threads(threads):
                for start, size in workload.batches()[:steps]:
                    grads = ref.backward(current, "softmax_cross_entropy", x[start:start + size],
                                         y[start:start + size], workload.l2)
                    g = [gr for gr, l in zip(grads, current) if l["kind"] == "dense"]
                    adam.step([l["w"] for l in dense] + [l["b"] for l in dense],
                              [gi["w"] for gi in g] + [gi["b"] for gi in g])
            return current
        note = "reference.network.backward + NumPy Adam"

    def params(trained):
        return [(l["w"], l["b"]) for l in trained if l["kind"] == "dense"]

    return Runner("reference", "float64", run, result_params=params,
                  timed_steps=steps if steps and steps < workload.steps else None,
                  note=f"{note}; {_thread_note(threads)}")


def eval_accuracy(workload, params, rows=4096):
    """Fraction of the first `rows` training rows whose argmax logit is the label (float64)."""
    x, y = workload.data()
    a = x[:rows]
    for i, (w, b) in enumerate(params):
        a = a @ np.asarray(w, np.float64) + np.asarray(b, np.float64).reshape(1, -1)
        if i < len(params) - 1:
            a = sigmoid(a) if workload.activation == "sigmoid" else np.maximum(a, 0)
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(y[:rows], axis=1)))


def eval_loss(workload, params, rows=4096):
    """Softmax CE (+ ½λΣw²) of `params` on the first `rows` training rows, NumPy float64."""
    x, y = workload.data()
    x, y = x[:rows], y[:rows]
    a = x
    for i, (w, b) in enumerate(params):
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64).reshape(1, -1)
        z = a @ w + b
        if i == len(params) - 1:
            break
        a = sigmoid(z) if workload.activation == "sigmoid" else np.maximum(z, 0)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    l2 = 0.5 * workload.l2 * sum(float(np.sum(np.asarray(w, np.float64) ** 2)) for w, _ in params)
    return float(-(y * logp).sum() / len(x)) + l2


def matmul_ceiling(workload, repeats=7, threads=1, dtype="float32"):
    """GFLOP/s of the step's matmuls alone in NumPy (as systems_jax.matmul_ceiling)."""
    rows, sizes = workload.batch, workload.sizes
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((rows, a)).astype(dtype), rng.standard_normal((a, b)).astype(dtype),
             rng.standard_normal((rows, b)).astype(dtype), i > 0)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    flops = sum((6 if need_dx else 4) * rows * x.shape[1] * w.shape[1] for x, w, _, need_dx in mats)

    def step():
        for x, w, dy, need_dx in mats:
            np.dot(x, w)
            np.dot(x.T, dy)
            if need_dx:
                np.dot(dy, w.T)

    with blas_threads(threads):
        median, _ = median_time(step, repeats)
    return flops / median / 1e9
