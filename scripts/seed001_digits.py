#!/usr/bin/env python
"""Seed 001 reproduced: the 8x8 digits, a 64-128-128-10 sigmoid network, softmax cross-entropy.

The post ("Neural Networks from Scratch. Easy vs hard") trains the same network twice:

  the hard way (NumPy)  x/16, split test_size=0.1, random_state=20 (fnnet.datasets.digits());
                        weights np.random.randn (N(0, 1)), biases 0; sigmoid, sigmoid,
                        softmax + cross-entropy with the fused delta (a3 - y)/n;
                        full-batch gradient descent, lr 0.5, 1500 epochs.
  the easy way (Keras)  raw pixels, split random_state=42; Keras 2 defaults of 2018:
                        glorot_uniform weights, zero biases, Adadelta() (lr 1.0, rho 0.95,
                        epsilon 1e-7), batch 64 shuffled each epoch, 50 epochs.

It prints training and test accuracy for both, but its text gives no numbers.

Both are rerun with fnnet and with the NumPy float64 reference from the same initial
weights (the reference has no Adadelta, so this script adds ten lines of NumPy Adadelta
over reference.backward, fed the same shuffled batches as fnnet.fit). The Keras twin
trains on the raw 0..16 pixels, as the post's Keras listing does (the hard way divides
them by 16).

The post's final listing has bugs that this script does not copy: from line 65 on it
ASSIGNS the updates (`self.b3 = self.lr * ...`, `self.w2 = ...`, `self.b2 = ...`,
`self.w1 = ...`, `self.b1 = ...`) instead of subtracting them (`-=`), which would
replace the weights by their scaled gradients every epoch; and its `sigmoid_derv(s)`
computes s(1 - s), right only because it is always fed the activation a = σ(z), not z
as the chain-rule text says. fnnet reproduces the intended algorithm (w -= lr·dw with
the true σ'(z) = a(1 - a)).

    python scripts/seed001_digits.py
    python scripts/seed001_digits.py --quick
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _seedlib as lib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import fnnet  # noqa: E402

SIZES = [64, 128, 128, 10]
LOSS = "softmax_cross_entropy"
LR, EPOCHS, QUICK_EPOCHS = 0.5, 1500, 100
# Keras 2.2 `Adadelta()`: lr=1.0, rho=0.95, epsilon=None -> K.epsilon() = 1e-7, decay=0.
# optax.adadelta(learning_rate, rho, eps, weight_decay) computes the same update:
#   E[g²] ← ρE[g²] + (1-ρ)g²;  u = g·sqrt(E[u²] + ε)/sqrt(E[g²] + ε);  E[u²] ← ρE[u²] + (1-ρ)u²;
#   p ← p - lr·u  (E[u²] accumulates u before the learning rate, in both).
# optax's own defaults differ (rho 0.9, eps 1e-6, and no learning rate), so all three are given.
KERAS = dict(learning_rate=1.0, rho=0.95, eps=1e-7)
KERAS_BATCH, KERAS_EPOCHS, KERAS_QUICK_EPOCHS, KERAS_SPLIT = 64, 50, 5, 42


def scratch_net():
    """Dense(128)-Sigmoid-Dense(128)-Sigmoid-Dense(10), softmax CE on logits, N(0, 1) weights."""
    return fnnet.mlp(SIZES, activation="sigmoid", loss=LOSS, w_init="normal")


def keras_net():
    """The same network with Keras' default initializers: glorot_uniform weights, zero biases."""
    return fnnet.mlp(SIZES, activation="sigmoid", loss=LOSS, w_init="glorot_uniform")


def epoch_orders(key, n, epochs):
    """The example order fnnet.fit uses in each epoch: permutation(fold_in(key, e), n)."""
    return [np.asarray(jax.random.permutation(jax.random.fold_in(key, e), n)) for e in range(epochs)]


def reference_adadelta(layers, x, y, orders, *, batch, learning_rate, rho, eps):
    """Adadelta on reference.backward's gradients, over the given per-epoch orders.

    Each epoch: the full batches of `batch` examples in order, then the remainder as one
    smaller batch (fnnet.fit's rule, and Keras'). Returns (layers, per-epoch mean loss).
    """
    import fnnet_reference as reference
    x = np.asarray(x, np.float64)
    layers = [dict(l) for l in layers]
    acc_g = [{k: np.zeros_like(l[k]) for k in ("w", "b")} if l["kind"] == "dense" else {} for l in layers]
    acc_u = [{k: np.zeros_like(v) for k, v in a.items()} for a in acc_g]
    history = []
    for order in orders:
        losses = []
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            losses.append(reference.loss(layers, LOSS, x[idx], y[idx]))
            grads = reference.backward(layers, LOSS, x[idx], y[idx])
            for layer, g, eg, eu in zip(layers, grads, acc_g, acc_u):
                for k in eg:
                    eg[k] = rho * eg[k] + (1 - rho) * g[k] ** 2                   # E[g²]
                    u = np.sqrt(eu[k] + eps) / np.sqrt(eg[k] + eps) * g[k]        # Adadelta step
                    eu[k] = rho * eu[k] + (1 - rho) * u ** 2                      # E[u²]
                    layer[k] = layer[k] - learning_rate * u
        history.append(float(np.mean(losses)))
    return layers, history


def spread(values):
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}


def fmt_spread(s):
    return f"{lib.pct(s['mean'])} [{lib.pct(s['min'])}, {lib.pct(s['max'])}]"


def run(net, data, *, seeds, dtype, train):
    """Train from jax.random.key(0 .. seeds-1); -> (summary dict, params0 and params of key 0)."""
    xtr, ytr, xte, yte = data
    runs, times = [], []
    for s in range(seeds):
        p0 = fnnet.init(net, jax.random.key(s), dtype)
        with lib.Stopwatch() as t:
            params, hist, *_ = train(p0, s)
            lib.block(params)
        times.append(t.seconds)
        runs.append({"key": s, "loss_first": float(hist.loss[0]), "loss_last": float(hist.loss[-1]),
                     "train_accuracy": fnnet.accuracy(net, params, xtr, ytr),
                     "test_accuracy": fnnet.accuracy(net, params, xte, yte)})
        if s == 0:
            first = (p0, params)
    out = dict(runs[0], seconds=times[0], warm_seconds=float(np.mean(times[1:])) if seeds > 1 else None,
               test_accuracy_spread=spread([r["test_accuracy"] for r in runs]), runs=runs)
    return out, first


def main(argv=None) -> int:
    p = lib.parser(__doc__)
    p.add_argument("--seeds", type=int, default=5,
                   help="initial weights from jax.random.key(0 .. N-1) to show the spread of test "
                        "accuracy (default 5; key 0 is also the run compared with the reference)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras twin")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    lib.enable_x64()
    import fnnet.datasets
    import fnnet_reference as reference

    dtype = np.dtype(args.dtype)
    epochs = QUICK_EPOCHS if args.quick else EPOCHS
    k_epochs = KERAS_QUICK_EPOCHS if args.quick else KERAS_EPOCHS
    results = {"seed": "001", "quick": args.quick, "dtype": args.dtype, "seeds": args.seeds,
               "post": {"train_accuracy": None, "test_accuracy": None}}
    print(lib.wrap(
        "seed 001: the post prints training and test accuracy but its text does not give them "
        "(\"not reported\" below). Its unseeded np.random.randn weights cannot be replayed: the "
        f"weights here come from jax.random.key(0 .. {args.seeds - 1}) with the same distribution."))

    # -- the hard way: N(0, 1), full batch, lr 0.5 --------------------------------------------------
    data = fnnet.datasets.digits(dtype=dtype)
    xtr, ytr, xte, yte = data
    net = scratch_net()
    sgd = optax.sgd(LR)                # one object for all keys: fit's compiled loop is cached by it
    print(f"\n[NumPy, the hard way] {net}\n{len(xtr)} train / {len(xte)} test (random_state=20, x/16); "
          f"full-batch SGD lr {LR}, {epochs} epochs" + (" (--quick)" if args.quick else ""))
    fn, (p0, params) = run(net, data, seeds=args.seeds, dtype=dtype,
                           train=lambda q, s: fnnet.fit(net, q, xtr, ytr, optimizer=sgd, epochs=epochs))
    ref = None
    if not args.no_reference:
        with lib.blas_threads(args.blas_threads), lib.Stopwatch() as t:
            layers, rh = reference.train_sgd(lib.to_reference(net, p0), LOSS, xtr, ytr, lr=LR, epochs=epochs)
        ref = {"loss_first": rh[0], "loss_last": rh[-1], "seconds": t.seconds,
               "train_accuracy": reference.accuracy(layers, LOSS, xtr, ytr),
               "test_accuracy": reference.accuracy(layers, LOSS, xte, yte),
               "max_abs_weight_diff": lib.max_weight_diff(net, params, layers)}
    results["scratch"] = {"fnnet": fn, "reference": ref}
    sections = [(f"the hard way: N(0, 1) weights, full batch, lr {LR}, {epochs} epochs", fn, ref, epochs)]

    # -- the easy way: Keras defaults through optax ----------------------------------------------------
    if not args.no_keras:
        # The Keras listing feeds the raw pixels 0..16; digits() divides by 16, exactly (a power
        # of two), so multiplying by 16 gives the post's inputs back bit for bit.
        kxtr, kytr, kxte, kyte = fnnet.datasets.digits(seed=KERAS_SPLIT, dtype=dtype)
        kdata = (kxtr * 16, kytr, kxte * 16, kyte)
        kxtr = kdata[0]
        knet = keras_net()
        ada = optax.adadelta(**KERAS)
        print(f"\n[Keras, the easy way] {knet}\nsplit random_state={KERAS_SPLIT}, raw pixels 0..16; optax.adadelta("
              + ", ".join(f"{k}={v}" for k, v in KERAS.items())
              + f") = Keras 2 Adadelta(); batch {KERAS_BATCH}, shuffled each epoch, {k_epochs} epochs")
        fk, (kp0, kparams) = run(knet, kdata, seeds=args.seeds, dtype=dtype,
                                 train=lambda q, s: fnnet.fit(knet, q, kxtr, kytr, optimizer=ada, epochs=k_epochs,
                                                              batch_size=KERAS_BATCH, key=jax.random.key(s)))
        kref = None
        if not args.no_reference:
            orders = epoch_orders(jax.random.key(0), len(kxtr), k_epochs)
            with lib.blas_threads(args.blas_threads), lib.Stopwatch() as t:
                layers, rh = reference_adadelta(lib.to_reference(knet, kp0), kxtr, kytr, orders,
                                                batch=KERAS_BATCH, **KERAS)
            kref = {"loss_first": rh[0], "loss_last": rh[-1], "seconds": t.seconds,
                    "train_accuracy": reference.accuracy(layers, LOSS, kxtr, kytr),
                    "test_accuracy": reference.accuracy(layers, LOSS, kdata[2], kdata[3]),
                    "max_abs_weight_diff": lib.max_weight_diff(knet, kparams, layers)}
        results["keras"] = {"fnnet": fk, "reference": kref}
        sections.append((f"the Keras twin: glorot_uniform, Adadelta, batch {KERAS_BATCH}, {k_epochs} epochs",
                          fk, kref, k_epochs))

    # -- output -------------------------------------------------------------------------------------
    for title, f, r, n_ep in sections:
        g = (lambda k, fm=lib.num: fm(r[k]) if r else lib.NOT_RUN)
        warm = f"; later keys {lib.secs(f['warm_seconds'])} each" if f["warm_seconds"] else ""
        rows = [
            ("training loss, epoch 1 (mean CE)", lib.NOT_REPORTED, lib.num(f["loss_first"]), g("loss_first")),
            (f"training loss, epoch {n_ep}", lib.NOT_REPORTED, lib.num(f["loss_last"]), g("loss_last")),
            ("train accuracy", lib.NOT_REPORTED, lib.pct(f["train_accuracy"]), g("train_accuracy", lib.pct)),
            ("test accuracy", lib.NOT_REPORTED, lib.pct(f["test_accuracy"]), g("test_accuracy", lib.pct)),
            (f"test accuracy, {args.seeds} keys: mean [min, max]", lib.NOT_REPORTED,
             fmt_spread(f["test_accuracy_spread"]), lib.NOT_RUN),
            ("max |fnnet - reference|, weights", "—", "—", g("max_abs_weight_diff")),
            ("wall time (key 0)", "—", f"{lib.secs(f['seconds'])} (incl. jit{warm})", g("seconds", lib.secs)),
        ]
        print("\n" + lib.table(lib.columns(args.dtype), rows, title=title))
    print("\n" + lib.wrap(
        f"The test set has {len(xte)} images: one image is {100 / len(xte):.2f}% of test accuracy. "
        "The post's listing assigns instead of subtracting from line 65 on (self.b3 = ..., "
        "self.w2 = ..., self.b2 = ..., self.w1 = ..., self.b1 = ...), and its sigmoid_derv(s) = "
        "s(1 - s) is right only because it is fed the activation a; fnnet runs the intended "
        "algorithm (w -= lr·dw, σ'(z) = a(1 - a))."))
    lib.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
