#!/usr/bin/env python
"""Seed 002 reproduced: three gaussian clusters, a 2-5-3 ReLU network, softmax cross-entropy.

The post ("Building a Neural Network from Scratch in Python and in TensorFlow") trains
the same network twice on the same data (fnnet.datasets.blobs() replays it exactly:
np.random.seed(12), the post's means and covariances, its train_test_split):

  from scratch (NumPy)   weights N(0, 1), biases 0; softmax cross-entropy on the logits
                         + L2 ½·0.01·Σw² on the weights; full-batch gradient descent,
                         lr 0.01, 5001 steps. Reports: loss 2.9703 at step 0,
                         0.2274 at step 5000 (L2 term included), test accuracy 96.4%.
  TensorFlow twin        weights truncated normal (cut at 2σ), biases 0; no L2;
                         SGD lr 0.01 on minibatches of 100 taken at offsets
                         (step·100) mod (n - 100), in data order, 10001 steps.
                         Reports: minibatch loss 10.4225 at step 0, 0.1036 at step
                         10000, test accuracy 96.27%.

Both are rerun with fnnet and with the NumPy float64 reference from the same initial
weights. The offset minibatches cannot be expressed by fnnet.fit (which shuffles), so
the twin runs through a small optax loop over fnnet.value_and_grad (see
`train_offsets`). The post's random initial weights cannot be replayed (NumPy's and
TensorFlow's unseeded streams), so several jax.random keys show the spread.

    python scripts/seed002_blobs.py
    python scripts/seed002_blobs.py --quick --seeds 2
"""
from __future__ import annotations

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _seedlib as lib  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax import lax  # noqa: E402

import fnnet  # noqa: E402

LR, L2 = 0.01, 0.01
STEPS, TF_STEPS, BATCH = 5001, 10001, 100
QUICK_STEPS, QUICK_TF_STEPS = 501, 1001
LOSS = "softmax_cross_entropy"
POST = {"scratch": {"loss_first": 2.97031571897, "loss_last": 0.227432713332, "test_accuracy": 0.964},
        "tf": {"loss_first": 10.4225320816, "loss_last": 0.103610478342, "test_accuracy": 0.962666666667}}


def scratch_net():
    """2-5-3, ReLU, softmax CE on logits, L2 0.01 on weights, N(0, 1) weights, zero biases."""
    return fnnet.mlp([2, 5, 3], activation="relu", loss=LOSS, l2=L2, w_init="normal")


def tf_net():
    """The TensorFlow twin: truncated-normal weights, zero biases, no L2."""
    return fnnet.mlp([2, 5, 3], activation="relu", loss=LOSS, w_init="truncated_normal")


def offsets(n, steps, batch):
    """The post's minibatch starts: offset = (step · batch) mod (n - batch), step = 0, 1, ..."""
    return (np.arange(steps, dtype=np.int64) * batch) % (n - batch)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _offset_loop(net, optimizer, batch, params, x, y, starts):
    def step(carry, start):
        p, s = carry
        xb = lax.dynamic_slice_in_dim(x, start, batch)            # x[start : start + batch]
        yb = lax.dynamic_slice_in_dim(y, start, batch)
        value, grads = fnnet.value_and_grad(net, p, xb, yb)        # hand-written backward
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    (params, _), losses = lax.scan(step, (params, optimizer.init(params)), starts)
    return params, losses


def train_offsets(net, params, x, y, *, optimizer, steps, batch):
    """SGD on the post's offset minibatches -> (params, per-step minibatch loss [steps]).

    One jitted lax.scan over the steps; each loss is measured on the step's batch
    before its update, as the post prints it.
    """
    starts = jnp.asarray(offsets(len(x), steps, batch), jnp.int32)
    params, losses = _offset_loop(net, optimizer, batch, params, jnp.asarray(x), jnp.asarray(y), starts)
    return params, np.asarray(losses)


def reference_offsets(layers, x, y, *, lr, steps, batch):
    """The same loop in reference/: backward + sgd_step per offset minibatch."""
    import fnnet_reference as reference
    x = np.asarray(x, np.float64)
    first = last = None
    for i, start in enumerate(offsets(len(x), steps, batch)):
        xb, yb = x[start:start + batch], y[start:start + batch]
        if i == 0:
            first = reference.loss(layers, LOSS, xb, yb)
        if i == steps - 1:
            last = reference.loss(layers, LOSS, xb, yb)
        layers = reference.sgd_step(layers, reference.backward(layers, LOSS, xb, yb), lr)
    return layers, first, last


def spread(values):
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}


def fmt_spread(s, f=lib.pct):
    return f"{f(s['mean'])} [{f(s['min'])}, {f(s['max'])}]"


def main(argv=None) -> int:
    p = lib.parser(__doc__)
    p.add_argument("--seeds", type=int, default=5,
                   help="initial weights from jax.random.key(0 .. N-1) for the spread (default 5; "
                        "key 0 is also the run compared with the reference)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    lib.enable_x64()
    import fnnet.datasets
    import fnnet_reference as reference

    dtype = np.dtype(args.dtype)
    steps, tf_steps = (QUICK_STEPS, QUICK_TF_STEPS) if args.quick else (STEPS, TF_STEPS)
    xtr, ytr, xte, yte = fnnet.datasets.blobs(dtype=dtype)
    n = len(xtr)
    print(f"seed 002: blobs(), {n} train / {len(xte)} test points, 3 classes"
          + ("   (--quick: fewer steps, not the post's result)" if args.quick else ""))
    print(lib.wrap(
        "Initial weights: the post drew them from NumPy's and TensorFlow's unseeded generators, "
        f"which cannot be replayed; here they come from jax.random.key(0 .. {args.seeds - 1}) with "
        "the post's distributions. Key 0 is the run also made by the reference, from the same weights."))

    results = {"seed": "002", "quick": args.quick, "dtype": args.dtype, "post": POST, "seeds": args.seeds}

    # -- from scratch: N(0, 1), L2, full batch -----------------------------------------------------
    net = scratch_net()
    sgd = optax.sgd(LR)          # one object for every run: fit's compiled loop is cached by it
    print(f"\n[from scratch] {net}\nfull-batch SGD lr {LR}, {steps} steps")
    runs, times = [], []
    for s in range(args.seeds):
        p0 = fnnet.init(net, jax.random.key(s), dtype)
        with lib.Stopwatch() as t:
            params, hist, *_ = fnnet.fit(net, p0, xtr, ytr, optimizer=sgd, epochs=steps)
            lib.block(params)
        times.append(t.seconds)
        runs.append({"key": s, "loss_first": float(hist.loss[0]), "loss_last": float(hist.loss[-1]),
                     "train_accuracy": fnnet.accuracy(net, params, xtr, ytr),
                     "test_accuracy": fnnet.accuracy(net, params, xte, yte)})
        if s == 0:
            main_params, main_p0 = params, p0
    fn = dict(runs[0], seconds=times[0], warm_seconds=float(np.mean(times[1:])) if len(times) > 1 else None,
              test_accuracy_spread=spread([r["test_accuracy"] for r in runs]),
              loss_last_spread=spread([r["loss_last"] for r in runs]), runs=runs)
    ref = None
    if not args.no_reference:
        with lib.blas_threads(args.blas_threads), lib.Stopwatch() as t:
            layers, rh = reference.train_sgd(lib.to_reference(net, main_p0), LOSS, xtr, ytr,
                                             lr=LR, epochs=steps, l2=L2)
        ref = {"loss_first": rh[0], "loss_last": rh[-1], "seconds": t.seconds,
               "train_accuracy": reference.accuracy(layers, LOSS, xtr, ytr),
               "test_accuracy": reference.accuracy(layers, LOSS, xte, yte),
               "max_abs_weight_diff": lib.max_weight_diff(net, main_params, layers)}
    results["scratch"] = {"fnnet": fn, "reference": ref}

    # -- the TensorFlow twin: truncated normal, offset minibatches, no L2 ---------------------------
    net_tf = tf_net()
    print(f"\n[TensorFlow twin] {net_tf}\nSGD lr {LR} on minibatches of {BATCH} at offsets "
          f"(step·{BATCH}) mod ({n} - {BATCH}), {tf_steps} steps")
    runs_tf, times_tf = [], []
    for s in range(args.seeds):
        p0 = fnnet.init(net_tf, jax.random.key(s), dtype)
        with lib.Stopwatch() as t:
            params, losses = train_offsets(net_tf, p0, xtr, ytr, optimizer=sgd, steps=tf_steps, batch=BATCH)
            lib.block(params)
        times_tf.append(t.seconds)
        runs_tf.append({"key": s, "loss_first": float(losses[0]), "loss_last": float(losses[-1]),
                        "train_accuracy": fnnet.accuracy(net_tf, params, xtr, ytr),
                        "test_accuracy": fnnet.accuracy(net_tf, params, xte, yte)})
        if s == 0:
            tf_params, tf_p0 = params, p0
    fn_tf = dict(runs_tf[0], seconds=times_tf[0],
                 warm_seconds=float(np.mean(times_tf[1:])) if len(times_tf) > 1 else None,
                 test_accuracy_spread=spread([r["test_accuracy"] for r in runs_tf]),
                 loss_last_spread=spread([r["loss_last"] for r in runs_tf]), runs=runs_tf)
    ref_tf = None
    if not args.no_reference:
        with lib.blas_threads(args.blas_threads), lib.Stopwatch() as t:
            layers, first, last = reference_offsets(lib.to_reference(net_tf, tf_p0), xtr, ytr,
                                                    lr=LR, steps=tf_steps, batch=BATCH)
        ref_tf = {"loss_first": first, "loss_last": last, "seconds": t.seconds,
                  "train_accuracy": reference.accuracy(layers, LOSS, xtr, ytr),
                  "test_accuracy": reference.accuracy(layers, LOSS, xte, yte),
                  "max_abs_weight_diff": lib.max_weight_diff(net_tf, tf_params, layers)}
    results["tf_twin"] = {"fnnet": fn_tf, "reference": ref_tf}

    # -- output -------------------------------------------------------------------------------------
    def rows_for(post, f, r, last_step, what):
        g = (lambda k, fm=lib.num: fm(r[k]) if r else lib.NOT_RUN)
        warm = f"; later keys {lib.secs(f['warm_seconds'])} each" if f["warm_seconds"] else ""
        return [
            (f"{what} loss at step 0", f"{post['loss_first']:.4f} (its own init)", lib.num(f["loss_first"]), g("loss_first")),
            (f"{what} loss at step {last_step}", f"{post['loss_last']:.4f}", lib.num(f["loss_last"]), g("loss_last")),
            ("train accuracy", lib.NOT_REPORTED, lib.pct(f["train_accuracy"]), g("train_accuracy", lib.pct)),
            ("test accuracy", lib.pct(post["test_accuracy"]), lib.pct(f["test_accuracy"]), g("test_accuracy", lib.pct)),
            (f"test accuracy, {args.seeds} keys: mean [min, max]", f"{lib.pct(post['test_accuracy'])} (1 init)",
             fmt_spread(f["test_accuracy_spread"]), lib.NOT_RUN),
            (f"loss at step {last_step}, {args.seeds} keys", f"{post['loss_last']:.4f} (1 init)",
             fmt_spread(f["loss_last_spread"], lib.num), lib.NOT_RUN),
            ("max |fnnet - reference|, weights", "—", "—", g("max_abs_weight_diff")),
            ("wall time (key 0)", "—", f"{lib.secs(f['seconds'])} (incl. jit{warm})", g("seconds", lib.secs)),
        ]

    print("\n" + lib.table(lib.columns(args.dtype), rows_for(POST["scratch"], fn, ref, steps - 1, "training"),
                           title=f"from scratch: N(0, 1) weights, L2 {L2}, full batch, {steps} steps"))
    print("\n" + lib.table(lib.columns(args.dtype), rows_for(POST["tf"], fn_tf, ref_tf, tf_steps - 1, "minibatch"),
                           title=f"TensorFlow twin: truncated normal, batches of {BATCH} at offsets, {tf_steps} steps"))
    per_key = [(r["key"], lib.pct(r["test_accuracy"]), lib.num(r["loss_last"]),
                lib.pct(q["test_accuracy"]), lib.num(q["loss_last"])) for r, q in zip(runs, runs_tf)]
    print("\n" + lib.table(("key", "scratch test acc", "scratch loss", "TF twin test acc", "TF twin loss"),
                           per_key, title="per initial key (fnnet)"))
    print("\n" + lib.wrap(
        f"The test set has {len(xte)} points, so one point is {100 / len(xte):.3f}%: the post's 96.4% is "
        f"{round(0.964 * len(xte))} right and its TensorFlow 96.27% is {round(0.962666666667 * len(xte))}. "
        "The losses at step 0 depend on the initial draw alone (the post's 10.42 for the TF twin is one "
        "truncated-normal draw; 2.97 one N(0, 1) draw). The post's from-scratch run computes in float64 "
        "(float32 data times float64 weights), its TensorFlow run in float32."))
    lib.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
