#!/usr/bin/env python
"""Seed 000 reproduced: a 2-3-2 network, ReLU hidden layer, sigmoid output, J = Σ ½(y - t)².

The post ("Programming a neural network from scratch") builds

    x [2] -> dense (2x3) -> ReLU -> dense (3x2) -> sigmoid       J = Σ ½ (y - t)²
    weights: np.random.seed(1), then per layer np.random.randn(d_in, d_out) / sqrt(d_in)
             (the post calls it Xavier; it is fnnet's "lecun_normal"), biases zero

and prints the two weight matrices. Its text stops before any training. This script

1. recomputes the post's weights and checks them against its printout (8 decimals),
   then loads them into fnnet params;
2. trains the post's network from those weights on a small generated 2-D, 2-output
   task (two of seed 002's gaussian clusters, one-hot targets; see TASK below) with
   full-batch SGD, once with fnnet and once with the NumPy float64 reference;
3. shows the post's bug: its MSE.delta multiplies by Sigmoid.prime(y_pred), i.e.
   σ'(σ(z)), the derivative taken at the activation instead of the pre-activation.
   That backward, written as a user layer, is flagged by fnnet.check (against
   jax.vjp, the reference twin and finite differences) while fnnet.Sigmoid passes.

    python scripts/seed000_relu_sigmoid.py
    python scripts/seed000_relu_sigmoid.py --quick
"""
from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _seedlib as lib  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import fnnet  # noqa: E402  (importable once _seedlib has put the repo root on sys.path)

# The post's printout ("internal state"), to its 8 decimals.
POST_W1 = np.array([[1.14858562, -0.43257711, -0.37347383],
                    [-0.75870339, 0.6119356, -1.62743362]])
POST_W2 = np.array([[1.00736754, -0.43948301],
                    [0.18419731, -0.14397405],
                    [0.84414841, -1.18942279]])
DIMS = (2, 3, 2)

# The training task (the post has none): classes 0 and 1 of seed 002's clusters,
# means (0, 0) and (1, 4), drawn by fnnet.datasets.blobs(n_per_class=500,
# test_fraction=0.3) and restricted to those two labels: 701 train / 299 test points,
# raw (unscaled) features, one-hot targets for the two sigmoid outputs.
TASK = dict(n_per_class=500, test_fraction=0.3)
LR, EPOCHS, QUICK_EPOCHS = 0.001, 1000, 100   # J sums over ~700 examples: a small step


def post_weights():
    """The post's init, replayed: np.random.seed(1), randn(d_in, d_out) / sqrt(d_in) per layer."""
    rs = np.random.RandomState(1)          # the legacy generator np.random.seed(1) seeds
    return [rs.randn(a, b) / np.sqrt(a) for a, b in zip(DIMS[:-1], DIMS[1:])]


def build_net(output=None):
    """Dense(3) -> Relu -> Dense(2) -> Sigmoid (or `output`), loss ½Σ(y - t)²."""
    net = fnnet.mlp(list(DIMS), activation="relu", output="sigmoid", loss="half_sse", w_init="lecun_normal")
    if output is None:
        return net
    return fnnet.Network(net.layers[:-1] + (output,), net.loss, net.in_shape, net.l2)


def params_from(ws, dtype):
    """[w1, w2] -> fnnet params (DenseParams(w1, 0), (), DenseParams(w2, 0), ())."""
    p = []
    for w in ws:
        w = jnp.asarray(w, dtype)
        p += [fnnet.DenseParams(w, jnp.zeros((w.shape[1],), dtype)), ()]
    return tuple(p)


@dataclasses.dataclass(frozen=True)
class PostSigmoid(fnnet.Sigmoid):
    """The post's output layer: the sigmoid forward, but the backward of its MSE.delta.

    The post computes delta = (y - t) * Sigmoid.prime(y_pred) with
    Sigmoid.prime(z) = σ(z)(1 - σ(z)) meant for the pre-activation z, but it is handed
    y_pred = σ(z). So its local derivative is σ'(s) = σ(s)(1 - σ(s)) at s = σ(z),
    not σ'(z) = s(1 - s). A user layer: fnnet has no such bug to plant.
    """

    def __str__(self):
        return "PostSigmoid()"

    def backward(self, params, cache, dy):
        s = cache                                   # the forward cached s = σ(z)
        self._check_dy(s, dy)
        ss = jax.nn.sigmoid(s)                      # σ(σ(z)): the post's Sigmoid.prime(y_pred)
        return (), dy * ss * (1 - ss)               # WRONG: should be dy · s(1 - s)


def load_task(dtype):
    from fnnet import datasets
    xtr, ytr, xte, yte = datasets.blobs(dtype=dtype, **TASK)
    keep_tr, keep_te = ytr < 2, yte < 2
    return xtr[keep_tr], ytr[keep_tr], xte[keep_te], yte[keep_te]


def main(argv=None) -> int:
    args = lib.parser(__doc__).parse_args(argv)
    lib.enable_x64()
    import fnnet.check
    import fnnet.datasets
    import fnnet_reference as reference

    dtype = np.dtype(args.dtype)
    epochs = QUICK_EPOCHS if args.quick else EPOCHS
    net = build_net()
    print(f"seed 000: {net}")

    # 1. the post's initial weights -------------------------------------------------------
    w1, w2 = post_weights()
    diff1, diff2 = float(np.max(np.abs(w1 - POST_W1))), float(np.max(np.abs(w2 - POST_W2)))
    match = diff1 <= 5e-9 and diff2 <= 5e-9       # the printout rounds to 8 decimals
    fmt = lambda a: np.array2string(a, precision=8, separator=", ", floatmode="fixed")
    print("\ninitial weights: np.random.seed(1); randn(d_in, d_out) / sqrt(d_in) per layer")
    for name, post, ours, d in (("w1", POST_W1, w1, diff1), ("w2", POST_W2, w2, diff2)):
        print(f"  {name} post     {fmt(post)}".replace("\n", "\n" + " " * 15))
        print(f"  {name} computed {fmt(ours)}".replace("\n", "\n" + " " * 15))
        print(f"     max |computed - post| = {d:.1e} (printout has 8 decimals: <= 5e-9 means equal)")
    params0 = params_from([w1, w2], dtype)
    print(f"loaded into fnnet params ({args.dtype}); biases zero, as the post's.")

    # 2. train on the generated task ----------------------------------------------------------
    xtr, ytr, xte, yte = load_task(dtype)
    ttr = fnnet.datasets.one_hot(ytr, 2, dtype=dtype)
    print(f"\ntask: classes 0/1 of fnnet.datasets.blobs({', '.join(f'{k}={v}' for k, v in TASK.items())}), "
          f"{len(xtr)} train / {len(xte)} test points, one-hot targets")
    print(f"full-batch SGD, lr {LR}, {epochs} epochs" + (" (--quick)" if args.quick else ""))
    optimizer = optax.sgd(LR)
    with lib.Stopwatch() as t_fn:
        params, hist, *_ = fnnet.fit(net, params0, xtr, ttr, optimizer=optimizer, epochs=epochs)
        lib.block(params)
    fn = {"loss_first": float(hist.loss[0]), "loss_last": float(hist.loss[-1]),
          "train_accuracy": fnnet.accuracy(net, params, xtr, ytr),
          "test_accuracy": fnnet.accuracy(net, params, xte, yte), "seconds": t_fn.seconds}

    ref = None
    if not args.no_reference:
        with lib.blas_threads(args.blas_threads), lib.Stopwatch() as t_ref:
            layers, rh = reference.train_sgd(lib.to_reference(net, params0), "half_sse", xtr, ttr,
                                             lr=LR, epochs=epochs)
        ref = {"loss_first": rh[0], "loss_last": rh[-1],
               "train_accuracy": reference.accuracy(layers, "half_sse", xtr, ytr),
               "test_accuracy": reference.accuracy(layers, "half_sse", xte, yte), "seconds": t_ref.seconds,
               "max_abs_weight_diff": lib.max_weight_diff(net, params, layers)}

    # The post's algorithm as written: the same training with its output-layer delta.
    buggy_net = build_net(PostSigmoid())
    params_b, hist_b, *_ = fnnet.fit(buggy_net, params0, xtr, ttr, optimizer=optimizer, epochs=epochs)
    bug = {"loss_last": float(hist_b.loss[-1]),
           "train_accuracy": fnnet.accuracy(buggy_net, params_b, xtr, ytr),
           "test_accuracy": fnnet.accuracy(buggy_net, params_b, xte, yte)}

    # 3. the bug, caught by fnnet.check ---------------------------------------------------------
    # Inputs of the output layer: its pre-activations z at the post's weights, on 8 training points.
    x64 = np.asarray(xtr[:8], np.float64)
    z = np.maximum(x64 @ w1, 0) @ w2
    rep_ok = fnnet.check.check_layer(fnnet.Sigmoid(), (), z)
    rep_bug = fnnet.check.check_layer(PostSigmoid(), (), z)
    p64, t64 = params_from([w1, w2], np.float64), fnnet.datasets.one_hot(ytr[:8], 2, dtype=np.float64)
    net_ok = fnnet.check.check_network(net, p64, x64, t64)
    net_bug = fnnet.check.check_network(buggy_net, p64, x64, t64)

    # --- output ------------------------------------------------------------------------------
    r = (lambda k, f=lib.num: f(ref[k]) if ref else lib.NOT_RUN)
    verdict = lambda rep: "OK" if rep.ok else f"FAIL (rel err {rep.max_rel_err('jax'):.2g})"
    rows = [
        ("w1, w2 = post's printout (8 decimals)", "printed", "yes" if match else "NO",
         "yes (same arrays)" if ref else lib.NOT_RUN),
        ("max |computed init - post|", "—", f"{max(diff1, diff2):.1e}", "—"),
        ("J at the post's weights (epoch 0)", lib.NOT_REPORTED, lib.num(fn["loss_first"]), r("loss_first")),
        (f"J in epoch {epochs} (before its step)", lib.NOT_REPORTED, lib.num(fn["loss_last"]), r("loss_last")),
        ("train accuracy", lib.NOT_REPORTED, lib.pct(fn["train_accuracy"]), r("train_accuracy", lib.pct)),
        ("test accuracy", lib.NOT_REPORTED, lib.pct(fn["test_accuracy"]), r("test_accuracy", lib.pct)),
        ("max |fnnet - reference|, weights", "—", "—", r("max_abs_weight_diff")),
        ("wall time of training", "—", lib.secs(fn["seconds"]) + " (incl. jit)", r("seconds", lib.secs)),
        ("test accuracy, trained with post's delta", lib.NOT_REPORTED, lib.pct(bug["test_accuracy"]),
         "n/a (user layer)"),
        ("check_layer(Sigmoid())", "—", verdict(rep_ok), "(an oracle)"),
        ("check_layer(post's σ'(σ(z)) delta)", "—", verdict(rep_bug), "(an oracle)"),
        ("check_network(post's net, correct)", "—", verdict(net_ok), "(an oracle)"),
        ("check_network(post's net, its delta)", "—", verdict(net_bug), "(an oracle)"),
    ]
    print("\n" + lib.table(lib.columns(args.dtype), rows, title="seed 000 vs the post"))

    print("\nthe post's bug: MSE.delta = (y - t) * Sigmoid.prime(y_pred) evaluates σ' at s = σ(z).")
    print("fnnet.check.check_layer on the output layer's real inputs z (post's weights, 8 training points):\n")
    print(rep_ok)
    print()
    print(rep_bug)
    print("\nand on the whole network (check_network, float64, the same 8 points):")
    for name, rep in (("correct fnnet.Sigmoid", net_ok), ("post's delta", net_bug)):
        print(f"  {name:22s} {'OK' if rep.ok else 'FAIL'}: max rel err vs jax.vjp "
              f"{rep.max_rel_err('jax'):.2g}, vs reference {rep.max_rel_err('reference') or float('nan'):.2g}, "
              f"vs finite differences {rep.max_rel_err('fd'):.2g}"
              + (f"; failing leaves {', '.join(rep.failed_primals)}" if not rep.ok else ""))
    print("\n" + lib.wrap(
        "Why accuracy alone would not reveal it: s = σ(z) lies in (0, 1), so σ'(s) lies in "
        "[0.197, 0.25], always positive and nearly constant. The buggy delta keeps the sign of every "
        "example's, every output's true delta and only reweights them (by σ'(s)/σ'(z)), so SGD still "
        f"makes progress: {lib.pct(bug['test_accuracy'])} test accuracy here vs "
        f"{lib.pct(fn['test_accuracy'])} with the right derivative. The gradient check sees a "
        f"{rep_bug.max_rel_err('jax'):.0%} error in the layer at once. Also note: the post's MSE.loss "
        "returns mean((y - t)²), not the J = Σ½(y - t)² it differentiates; fnnet's "
        "HalfSSE is J."))

    results = {
        "seed": "000", "quick": args.quick, "dtype": args.dtype,
        "settings": {"sizes": list(DIMS), "init": "post's weights (np.random.seed(1), randn/sqrt(fan_in))",
                     "loss": "half_sse", "lr": LR, "epochs": epochs, "task": TASK,
                     "n_train": len(xtr), "n_test": len(xte)},
        "post": {"w1": POST_W1, "w2": POST_W2},
        "computed_init": {"w1": w1, "w2": w2, "max_abs_diff_vs_post": max(diff1, diff2),
                          "matches_post": match},
        "fnnet": fn, "reference": ref, "post_delta_training": bug,
        "check": {"sigmoid_layer_ok": rep_ok.ok, "post_delta_layer_ok": rep_bug.ok,
                  "post_delta_layer_rel_err": rep_bug.max_rel_err("jax"),
                  "network_ok": net_ok.ok, "post_delta_network_ok": net_bug.ok,
                  "post_delta_network_failed": list(net_bug.failed_primals)},
    }
    lib.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
