#!/usr/bin/env python
"""Seed 003 reproduced: XOR with a 2-3-1 tanh network built from layer objects.

The post (hand-written notes, "Neural Network From Scratch") builds Dense and
Activation layer objects, each with forward/backward, and trains

    Dense(2, 3) -> Tanh -> Dense(3, 1) -> Tanh     weights AND biases ~ N(0, 1)
    loss  E = mean (y - t)^2,  dE/dy = 2 (y - t) / n   (n = 1 output per sample)
    per-sample SGD in data order, learning rate 0.1, 1000 epochs

on the four XOR points. Its notes stop at `fit(...)`: no error or prediction is
printed, the only claim is that the network solves XOR.

Here the same network and training run twice from the same initial weights:
fnnet (fnnet.fit, batch_size=1 with no key = one step per sample in data order) and
the NumPy float64 twin (reference.train_sgd, batch_size=1). A sweep over several
initial seeds shows how often N(0, 1) weights solve XOR in 1000 epochs.

Layout: the post works on column vectors, y = W x + b with W [out, in], b [out, 1];
fnnet works on rows, y = x w + b with w [in, out], b [out]. So w = W^T (printed below).

    python scripts/seed003_xor.py            # the post's settings
    python scripts/seed003_xor.py --quick    # smoke test
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _seedlib as lib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

LR, EPOCHS, HIDDEN = 0.1, 1000, 3
QUICK_EPOCHS = 200
CHUNK = 100         # epochs between two comparisons of fnnet with the reference
NUDGE = 1e-12       # relative change of the initial weights in the reference self-test
TARGETS = (0.0, 1.0, 1.0, 0.0)


def build_net():
    """Dense(3) -> Tanh -> Dense(1) -> Tanh, weights and biases N(0, 1), MSE."""
    import fnnet
    return fnnet.mlp([2, HIDDEN, 1], activation="tanh", output="tanh", loss="mse",
                     w_init="normal", b_init="normal")


def solved(outputs) -> bool:
    """All four outputs round to the XOR targets."""
    return bool(np.array_equal(np.round(np.asarray(outputs, np.float64).ravel()), np.array(TARGETS)))


def post_layout(params):
    """fnnet's [(w [in, out], b [out]), ...] -> the post's [(W [out, in], B [out, 1]), ...]."""
    return [(np.asarray(p.w).T, np.asarray(p.b)[:, None]) for p in params if p != ()]


def main(argv=None) -> int:
    p = lib.parser(__doc__)
    p.add_argument("--seed", type=int, default=0, help="jax.random.key for the main run (default 0)")
    p.add_argument("--sweep", type=int, default=20,
                   help="also train this many initial seeds (0 .. N-1) with fnnet and count how many "
                        "solve XOR (default 20, 5 with --quick; 0 to skip)")
    args = p.parse_args(argv)
    lib.enable_x64()
    import fnnet
    import fnnet.datasets
    import fnnet_reference as reference

    dtype = np.dtype(args.dtype)
    epochs = QUICK_EPOCHS if args.quick else EPOCHS
    sweep = min(args.sweep, 5) if args.quick else args.sweep
    x, y, _, _ = fnnet.datasets.xor(dtype=dtype)
    net = build_net()
    optimizer = optax.sgd(LR)     # one object for every run: fit's compiled loop is cached by it

    print(f"seed 003: XOR, {net}")
    print(f"per-sample SGD in data order, lr {LR}, {epochs} epochs"
          + (" (--quick; the post ran 1000)" if args.quick else " (the post's settings)"))
    params0 = fnnet.init(net, jax.random.key(args.seed), dtype)

    print("\ninitial weights, jax.random.key(%d), N(0, 1) for weights and biases, in the post's layout"
          " (W [out, in] = fnnet's wᵀ, B [out, 1] = fnnet's b):" % args.seed)
    for i, (W, B) in enumerate(post_layout(params0)):
        for r in range(W.shape[0]):
            print(f"  layer {i + 1}  W[{r}] = {np.array2string(W[r], precision=4, separator=', ')}   B[{r}] = {B[r, 0]:+.4f}")

    # Both runs go in chunks of CHUNK epochs so that their distance can be followed; plain SGD
    # keeps no optimizer state, so chunked training is the same run as one long call.
    params, layers = params0, (None if args.no_reference else lib.to_reference(net, params0))
    losses, ref_losses, distance, t_fn, t_ref = [], [], [], 0.0, 0.0
    for start in range(0, epochs, CHUNK):
        n = min(CHUNK, epochs - start)
        with lib.Stopwatch() as t:
            params, h, *_ = fnnet.fit(net, params, x, y, optimizer=optimizer, epochs=n, batch_size=1)
            lib.block(params)
        t_fn += t.seconds
        losses.extend(h.loss)
        if layers is not None:
            with lib.blas_threads(args.blas_threads), lib.Stopwatch() as t:
                layers, rh = reference.train_sgd(layers, "mse", x, y, lr=LR, epochs=n, batch_size=1)
            t_ref += t.seconds
            ref_losses.extend(rh)
            distance.append((start + n, lib.max_weight_diff(net, params, layers)))
    out_fn = np.asarray(fnnet.predict(net, params, x), np.float64).ravel()
    acc_fn = fnnet.accuracy(net, params, x, y)

    ref = None
    if layers is not None:
        out_ref = reference.predict(layers, "mse", x).ravel()
        ref = {"predictions": out_ref, "solved": solved(out_ref), "final_loss": ref_losses[-1],
               "accuracy": reference.accuracy(layers, "mse", x, y), "seconds": t_ref,
               "max_abs_output_diff": float(np.max(np.abs(out_fn - out_ref))),
               "max_abs_weight_diff": distance[-1][1],
               "weight_diff_by_epoch": distance}

    rows = [("x1", "x2", "target", f"fnnet ({args.dtype})", "reference (float64)", "rounded")]
    for i in range(4):
        rows.append((f"{x[i, 0]:g}", f"{x[i, 1]:g}", f"{TARGETS[i]:g}", f"{out_fn[i]:+.6f}",
                     f"{ref['predictions'][i]:+.6f}" if ref else lib.NOT_RUN, f"{np.round(out_fn[i]):g}"))
    print("\n" + lib.table(rows[0], rows[1:], title="predictions after training (post: none printed)"))

    r = (lambda k, f=lambda v: v: f(ref[k]) if ref else lib.NOT_RUN)
    yes = lambda b: "yes" if b else "NO"
    rows = [
        ("XOR solved (outputs round to 0 1 1 0)", "yes (claimed, no output shown)",
         yes(solved(out_fn)), r("solved", yes)),
        ("accuracy (rounded outputs)", lib.NOT_REPORTED, lib.pct(acc_fn, 0), r("accuracy", lambda v: lib.pct(v, 0))),
        (f"error, last epoch (mean MSE)", lib.NOT_REPORTED, lib.num(losses[-1], 6), r("final_loss", lambda v: lib.num(v, 6))),
        ("max |fnnet - reference|, outputs", "—", "—", r("max_abs_output_diff", lib.num)),
        ("max |fnnet - reference|, weights", "—", "—", r("max_abs_weight_diff", lib.num)),
        ("wall time of training", "—", lib.secs(t_fn) + " (incl. jit)", r("seconds", lib.secs)),
    ]
    print("\n" + lib.table(lib.columns(args.dtype), rows, title="seed 003 vs the post"))

    if ref is not None:
        print("\nmax |fnnet - reference| over the weights, by epoch: "
              + ", ".join(f"{e}: {d:.1e}" for e, d in distance))
        # Is a late gap a bug or the dynamics? Start the reference against itself with every
        # weight and bias scaled by (1 + 1e-12) (a few thousand float64 ulps): a final gap of the
        # same size says the dynamics amplify tiny differences (per-sample SGD at lr 0.1 keeps
        # jumping around the minimum), whatever their source.
        nudged = [{k: (v * (1 + NUDGE) if k in ("w", "b") else v) for k, v in l.items()}
                  for l in lib.to_reference(net, params0)]
        nudged, _ = reference.train_sgd(nudged, "mse", x, y, lr=LR, epochs=epochs, batch_size=1)
        self_gap = max(float(np.max(np.abs(a[k] - b[k]))) for a, b in zip(layers, nudged)
                       if a["kind"] == "dense" for k in ("w", "b"))
        ref["self_gap_after_1e-12_nudge"] = self_gap
        print(f"reference vs itself started {NUDGE:g} (relative) apart: max weight gap {self_gap:.1e} "
              f"after {epochs} epochs.")
        print(lib.wrap(
            "fnnet and the reference agree to rounding while the loss falls steadily; once the "
            "per-sample steps start to jump around the minimum (a few hundred epochs in) every "
            "rounding difference is amplified, so the final gap measures the dynamics' sensitivity "
            "(the self-test above), not a difference in the gradients. In float32 the two "
            "start apart by float32 rounding (1e-7) and end correspondingly further apart."))

    results = {
        "seed": "003", "quick": args.quick, "dtype": args.dtype,
        "settings": {"sizes": [2, HIDDEN, 1], "init": "normal (weights and biases)", "loss": "mse",
                     "lr": LR, "epochs": epochs, "batch_size": 1, "key": args.seed},
        "post": {"solved": True, "final_loss": None},
        "fnnet": {"predictions": out_fn, "solved": solved(out_fn), "accuracy": acc_fn,
                  "final_loss": float(losses[-1]), "seconds": t_fn},
        "reference": ref,
    }

    if sweep > 0:
        with lib.Stopwatch() as t_sw:
            ok = []
            for s in range(sweep):
                q, *_ = fnnet.fit(net, fnnet.init(net, jax.random.key(s), dtype), x, y,
                                 optimizer=optimizer, epochs=epochs, batch_size=1)
                ok.append(solved(fnnet.predict(net, q, x)))
        stuck = [s for s, v in enumerate(ok) if not v]
        print(f"\nsweep: {sum(ok)} of {sweep} initial seeds (jax.random.key(0..{sweep - 1})) solve XOR in "
              f"{epochs} epochs; stuck: {stuck or 'none'} ({t_sw.seconds:.2f} s, fnnet only).")
        if stuck:
            print(lib.wrap("With N(0, 1) weights and only 3 tanh units some starts settle in a local "
                           "minimum where two of the four outputs sit near 0.5 (rounding either way); "
                           "the post drew one unseeded start and does not say how often this happens."))
        results["sweep"] = {"seeds": sweep, "solved": int(sum(ok)), "stuck": stuck, "seconds": t_sw.seconds}

    lib.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
