"""`fnnet train`: train a network on one of the bundled datasets and report accuracy.

With no options it is seed 001's digits classifier: 64-128-128-10, sigmoid hidden
layers, softmax cross-entropy on logits, N(0, 1) weights, SGD at 0.5, 1500 full-batch
epochs. `--dataset blobs` is seed 002 and `--dataset xor` seed 003; every other option
overrides one setting of the chosen dataset's defaults.

Exit status: 0 trained; 1 training diverged, --check failed or an output could not be
written; 2 bad options (including an output path that cannot be written, found before
training starts).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

from fnnet.cli.args import int_at_least, nonnegative_float, positive_float
from fnnet.cli.outputs import plural, unwritable, write_outputs

DATASETS = {
    # name: the seed's settings (None batch_size = full batch)
    "digits": dict(seed_post="001", sizes=(64, 128, 128, 10), activation="sigmoid", output="identity",
                   loss="softmax_cross_entropy", optimizer="sgd", lr=0.5, epochs=1500, batch_size=None,
                   l2=0.0, init="normal", b_init="zeros"),
    "blobs": dict(seed_post="002", sizes=(2, 5, 3), activation="relu", output="identity",
                  loss="softmax_cross_entropy", optimizer="sgd", lr=0.01, epochs=5001, batch_size=None,
                  l2=0.01, init="normal", b_init="zeros"),
    "xor": dict(seed_post="003", sizes=(2, 3, 1), activation="tanh", output="tanh", loss="mse",
                optimizer="sgd", lr=0.1, epochs=1000, batch_size=1, l2=0.0, init="normal", b_init="normal"),
}
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
OUTPUTS = ("identity", "sigmoid", "tanh", "softmax")
LOSSES = ("softmax_cross_entropy", "mse", "half_sse", "sigmoid_binary_cross_entropy")
FUSED = ("softmax_cross_entropy", "sigmoid_binary_cross_entropy")
OPTIMIZERS = ("sgd", "momentum", "adam", "adadelta", "rmsprop")
# --lr default when --optimizer is not the dataset's own (sgd): each optimizer's usual
# starting point; momentum 0.9 takes 1/10 of the dataset's sgd rate (the same step size
# once the velocity has built up).
DEFAULT_LR = {"adam": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0}
MOMENTUM = 0.9
# --model cnn: what scripts/cnn_digits.py measured (98.89 % mean test accuracy over keys 0-4)
CNN_DEFAULTS = dict(optimizer="adam", lr=1e-3, epochs=20, batch_size=32,
                    init="fnnet.cnn's (he_normal; glorot_uniform output layer)")
FIGURE_FORMATS = (".png", ".pdf", ".svg")


def _initializers():
    from fnnet import initializers as _init
    return sorted(_init.INITIALIZERS)


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers like 64,128,10, "
                                         f"got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"needs >= 2 positive sizes (inputs,...,outputs), got {text!r}")
    return sizes


def _figure_path(text):
    if os.path.splitext(text)[1].lower() not in FIGURE_FORMATS:
        raise argparse.ArgumentTypeError(f"must end in .png, .pdf or .svg, got {text!r}")
    return text


def build_parser():
    d = DATASETS["digits"]
    p = argparse.ArgumentParser(
        prog="fnnet train",
        description="Train a network with fnnet (hand-written backward, compiled training loop) on a "
                    "bundled dataset and report train/test accuracy. Defaults are the tutorials' "
                    "settings: digits = seed 001, blobs = seed 002, xor = seed 003; any option "
                    "overrides one of them.",
        epilog="exit status: 0 trained, 1 diverged, --check failed or an output not written, "
               "2 bad options or an unwritable output path (checked before training). "
               "Example: fnnet train --dataset blobs --epochs 2000 --plot blobs.png")
    p.add_argument("--dataset", choices=tuple(DATASETS), default="digits",
                   help="digits: 8x8 digits, 10 classes (default); blobs: 3 gaussian clusters in 2-D; "
                        "xor: the 4 XOR points (regression on 0/1)")
    p.add_argument("--sizes", type=_sizes, metavar="N,N,...",
                   help=f"layer widths, inputs first, outputs last (digits: {','.join(map(str, d['sizes']))}; "
                        "blobs: 2,5,3; xor: 2,3,1)")
    p.add_argument("--activation", choices=ACTIVATIONS,
                   help="hidden activation (digits: sigmoid; blobs: relu; xor: tanh)")
    p.add_argument("--output", choices=OUTPUTS,
                   help="output activation (xor: tanh; otherwise identity; must be identity with a "
                        "loss that takes logits)")
    p.add_argument("--loss", choices=LOSSES, help="(digits/blobs: softmax_cross_entropy on logits; xor: mse)")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="mlp: dense layers of --sizes (default); cnn: fnnet.cnn() on the digits as 8x8x1 "
                        "images (Conv2D 32 - MaxPool - Conv2D 64 - MaxPool - Dense 128 - Dense 10, relu), "
                        f"with adam {CNN_DEFAULTS['lr']:g}, {CNN_DEFAULTS['epochs']} epochs, batch "
                        f"{CNN_DEFAULTS['batch_size']} unless given")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=f"optax optimizer (default sgd, adam for --model cnn; momentum is sgd with momentum {MOMENTUM})")
    p.add_argument("--lr", type=positive_float,
                   help="learning rate (sgd: digits 0.5, blobs 0.01, xor 0.1; momentum: a tenth of those; "
                        "adam/rmsprop 0.001; adadelta 1.0)")
    p.add_argument("--epochs", type=int_at_least(1), help="(digits 1500, blobs 5001, xor 1000)")
    p.add_argument("--batch-size", type=int_at_least(1), metavar="N",
                   help="examples per step; default full batch (xor: 1); smaller batches are "
                        "reshuffled each epoch from --seed")
    p.add_argument("--l2", type=nonnegative_float,
                   help="L2 strength λ of ½λΣw² on weights (blobs 0.01, else 0)")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="initial weights from fnnet.init(net, jax.random.key(SEED)); the batch order "
                        "from jax.random.fold_in(that key, 1) (default 0)")
    p.add_argument("--init", choices=_initializers(), metavar="NAME",
                   help=f"weight initializer (default normal, the seeds' np.random.randn); one of "
                        f"{', '.join(_initializers())}")
    p.add_argument("--b-init", choices=_initializers(), metavar="NAME",
                   help="bias initializer (xor: normal; else zeros)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of params and data (float64 turns on jax_enable_x64)")
    p.add_argument("--plot", type=_figure_path, metavar="FILE.png",
                   help="save loss curves (and, for 2-D data, decision regions with test points "
                        "right/wrong) to this image")
    p.add_argument("--save", metavar="FILE",
                   help="save the trained net and params (fnnet.save) exactly at FILE (nothing appended), "
                        "e.g. model.npz")
    p.add_argument("--json", metavar="FILE",
                   help="write a machine-readable summary (settings, per-epoch train/test losses and "
                        "test accuracy, final accuracies, time)")
    p.add_argument("--check", action="store_true",
                   help="before training, check the hand-written gradients of the initial params on a "
                        "few examples against the oracles (fnnet.check.check_network); exit 1 if they disagree")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--devices", type=int_at_least(1), metavar="N",
                   help="data-parallel over N devices: each step's batch is split N ways and the "
                        "hand-written gradients are all-reduced (fnnet.fit(mesh=...)); on a CPU-only "
                        "machine N simulated CPU devices, which share its cores (overhead, not speedup)")
    return p


def resolve(args, parser):
    """Fill unset options from the dataset's defaults and cross-check them (parser.error on conflict)."""
    d = DATASETS[args.dataset]
    if args.model == "cnn":
        if args.dataset != "digits":
            parser.error(f"--model cnn takes images: it trains on --dataset digits (8x8x1), not {args.dataset}")
        for opt in ("sizes", "activation", "output", "init", "b_init"):
            if getattr(args, opt) is not None:
                parser.error(f"--{opt.replace('_', '-')} is an mlp setting; --model cnn has its own layers "
                             f"and initializers (fnnet.cnn())")
        d = {**d, **CNN_DEFAULTS}
    args.optimizer = args.optimizer or d["optimizer"]
    s = {k: getattr(args, k) for k in ("sizes", "activation", "loss", "epochs", "l2", "batch_size")}
    s = {k: d[k] if v is None else v for k, v in s.items()}
    s["dataset"], s["optimizer"], s["seed"], s["dtype"] = args.dataset, args.optimizer, args.seed, args.dtype
    s["model"] = args.model
    s["init"] = args.init or d["init"]
    s["b_init"] = args.b_init or d["b_init"]
    s["output"] = args.output or ("identity" if s["loss"] in FUSED else d["output"])
    if args.lr is not None:
        s["lr"] = args.lr
    elif args.optimizer == d["optimizer"]:
        s["lr"] = d["lr"]
    elif args.optimizer == "momentum":
        s["lr"] = d["lr"] * (1 - MOMENTUM)
    else:
        s["lr"] = DEFAULT_LR[args.optimizer]
    if s["loss"] in FUSED and s["output"] != "identity":
        parser.error(f"--loss {s['loss']} takes logits and applies its own output nonlinearity; "
                     f"use --output identity (got --output {s['output']})")
    n_in, n_out = (64, 10) if args.dataset == "digits" else (2, 3) if args.dataset == "blobs" else (2, 1)
    if s["sizes"][0] != n_in or s["sizes"][-1] != n_out:
        parser.error(f"--sizes {','.join(map(str, s['sizes']))}: {args.dataset} has {n_in} input features "
                     f"and {n_out} output{'s' if n_out > 1 else ''}, so sizes must be {n_in},...,{n_out}")
    if args.dataset == "xor" and s["loss"] == "softmax_cross_entropy":
        parser.error("--loss softmax_cross_entropy needs >= 2 classes; xor has one 0/1 target "
                     "(use mse, half_sse or sigmoid_binary_cross_entropy)")
    for opt in ("plot", "save", "json"):   # fail now, not after an hour of training
        path = getattr(args, opt)
        if path is not None:
            problem = unwritable(path)
            if problem:
                parser.error(f"--{opt} {path!r}: {problem}")
    return s


def load_data(s):
    """(x_train, y_train, x_test, y_test, labels_train, labels_test, k).

    y_* are what the loss takes: integer labels for softmax cross-entropy, one-hot rows
    for the other losses on digits/blobs, the [n, 1] 0/1 targets for xor. labels_* are
    what accuracy is scored on: class indices (argmax), or xor's [n, 1] targets.
    """
    import numpy as np
    from fnnet import datasets
    dtype = np.dtype(s["dtype"])
    x_tr, y_tr, x_te, y_te = getattr(datasets, s["dataset"])(dtype=dtype)
    if s["dataset"] == "xor":
        return x_tr, y_tr, x_te, y_te, y_tr, y_te, 1
    k = s["sizes"][-1]
    if s["loss"] == "softmax_cross_entropy":
        return x_tr, y_tr, x_te, y_te, y_tr, y_te, k
    return (x_tr, datasets.one_hot(y_tr, k, dtype), x_te, datasets.one_hot(y_te, k, dtype), y_tr, y_te, k)


def make_optimizer(s):
    import optax
    name, lr = s["optimizer"], s["lr"]
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=MOMENTUM)
    return {"adam": optax.adam, "adadelta": optax.adadelta, "rmsprop": optax.rmsprop}[name](lr)


def evaluate(net, params, x, y, labels):
    """(fnnet.loss, fnnet.accuracy) as Python floats, compiled as one function.

    y: what the loss takes; labels: what accuracy scores (class indices, or xor's targets).
    fit has already validated the data's values; jit keeps the shape/dtype checks.
    """
    import jax
    from fnnet.train import metrics as _metrics
    from fnnet import network as _network

    def both(params, x, y, labels):
        return _network.loss(net, params, x, y), _metrics.accuracy_value(net, params, x, labels)
    loss, acc = jax.device_get(jax.jit(both)(params, x, y, labels))
    return float(loss), float(acc)


def percent(acc, n):
    return f"{100 * acc:.2f}% ({int(round(acc * n))}/{n})"


def main(argv=None) -> int:
    t0 = time.perf_counter()
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
        s = resolve(args, parser)
    except SystemExit as e:           # --help (0) and argparse errors (2) as return codes
        return int(e.code or 0)

    import jax
    x64 = bool(jax.config.jax_enable_x64)
    if s["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    mesh = None
    if args.devices is not None:      # before anything starts JAX's backends (simulated CPUs)
        from fnnet.train.sharding import data_mesh
        try:
            mesh = data_mesh(args.devices)
        except ValueError as e:
            print(f"fnnet train: {e}", file=sys.stderr)
            return 2
    try:
        return _train(s, args, t0, mesh)
    except KeyboardInterrupt:
        print("\nfnnet train: interrupted", file=sys.stderr)
        return 130
    finally:
        if s["dtype"] == "float64":
            jax.config.update("jax_enable_x64", x64)


def _train(s, args, t0, mesh=None) -> int:
    import jax
    import jax.numpy as jnp
    import fnnet

    x_tr, y_tr, x_te, y_te, lab_tr, lab_te, k = load_data(s)
    if s["model"] == "cnn":   # the digits' [n, 64] rows as NHWC images [n, 8, 8, 1]
        x_tr, x_te = x_tr.reshape(-1, 8, 8, 1), x_te.reshape(-1, 8, 8, 1)
        net = fnnet.cnn((8, 8, 1), classes=k, loss=s["loss"], l2=s["l2"])
    else:
        net = fnnet.mlp(list(s["sizes"]), activation=s["activation"], output=s["output"], loss=s["loss"],
                        l2=s["l2"], w_init=s["init"], b_init=s["b_init"])
    n = len(x_tr)
    batch = None if s["batch_size"] is None or s["batch_size"] >= n else s["batch_size"]
    # --seed N is fnnet.init(net, jax.random.key(N)), as in the README and scripts/seed00*.py;
    # the batch order comes from a key folded out of it.
    k_init = jax.random.key(s["seed"])
    k_shuffle = jax.random.fold_in(k_init, 1)
    params = fnnet.init(net, k_init, jnp.dtype(s["dtype"]))
    out = sys.stdout

    what = f"{k} classes" if s["dataset"] != "xor" else "one 0/1 target"
    print(f"dataset: {s['dataset']} (seed {DATASETS[s['dataset']]['seed_post']}'s settings as defaults): "
          f"{n} train / {len(x_te)} test examples, {' x '.join(map(str, x_tr.shape[1:]))} features, {what}",
          file=out)
    print(f"network: {net}", file=out)
    print(f"init: weights {s['init']}, biases {s['b_init']}, {s['dtype']}, seed {s['seed']}", file=out)
    extra = f" (momentum {MOMENTUM})" if s["optimizer"] == "momentum" else ""
    print(f"training: {s['optimizer']}{extra} lr {s['lr']:g}, {plural(s['epochs'], 'epoch')}, "
          f"{'full batch' if batch is None else f'batch size {batch}, reshuffled each epoch'}", file=out)
    if mesh is not None:
        dev = mesh.devices.flat[0]
        shared = " (simulated: they share this machine's cores)" if dev.platform == "cpu" and mesh.size > 1 else ""
        print(f"devices: {mesh.size} {dev.platform}{shared}, each step's batch split {mesh.size} ways", file=out)
    out.flush()

    if args.check:
        import fnnet.check
        m = min(8, n)
        report = fnnet.check.check_network(net, params, x_tr[:m], y_tr[:m])
        print(f"gradient check on the initial params, {m} training examples:\n{report}", file=out)
        if not report.ok:
            print("fnnet train: gradient check FAILED; not training", file=sys.stderr)
            return 1

    summary = {"settings": {**{k_: v for k_, v in s.items() if k_ != "sizes"}, "sizes": list(s["sizes"]),
                            "batch_size": batch, "network": str(net),
                            "devices": None if mesh is None else mesh.size},
               "train_examples": n, "test_examples": len(x_te)}
    t_fit = time.perf_counter()
    status = 0
    try:
        from fnnet.train.progress import ProgressBar
        progress = None if args.quiet else ProgressBar(s["epochs"], label="test")   # validation = test split
        params, history = fnnet.fit(net, params, x_tr, y_tr, optimizer=make_optimizer(s), epochs=s["epochs"],
                                    batch_size=batch, key=None if batch is None else k_shuffle,
                                    validation=(x_te, y_te), progress=progress, mesh=mesh)
    except fnnet.DivergedError as e:
        params, history, status = e.params, e.history, 1
        good = (f"the last good params, after epoch {e.epoch}" if e.epoch else "the initial params")
        kept = (f"kept {good} (finite train and test loss)" if e.finite_loss else
                "even the initial params have a non-finite loss, so there is nothing to keep")
        print(f"fnnet train: training diverged at epoch {e.epoch + 1} of {s['epochs']}: it made the loss "
              f"or the params NaN/Inf; {kept}. Try a lower --lr (now {s['lr']:g}), e.g. --lr {s['lr'] / 10:g}.",
              file=sys.stderr)
        summary.update(diverged=True, diverged_epoch=e.epoch + 1, kept_finite_params=e.finite_loss)
    fit_seconds = time.perf_counter() - t_fit
    epochs_done = len(history.loss)

    train_loss, train_acc = evaluate(net, params, x_tr, y_tr, lab_tr)
    test_loss, test_acc = evaluate(net, params, x_te, y_te, lab_te)
    finite = math.isfinite(train_loss) and math.isfinite(test_loss)
    note = ("" if status == 0 else f" (last finite params, after epoch {epochs_done})" if epochs_done
            else " (the initial params: the run diverged in its first epoch)")
    if finite:
        print(f"final loss{note}: train {train_loss:.6g}, test {test_loss:.6g}", file=out)
        print(f"train accuracy: {percent(train_acc, n)}", file=out)
        print(f"test accuracy: {percent(test_acc, len(x_te))}", file=out)
    else:      # accuracies of NaN/Inf outputs would be meaningless numbers
        print("final loss: not finite; no accuracy reported (the run diverged)", file=out)
        train_acc = test_acc = None
    print(f"time: {fit_seconds:.2f} s training ({plural(epochs_done, 'epoch')}, compile included), "
          f"{time.perf_counter() - t0:.2f} s in all", file=out)
    summary.update(epochs=epochs_done, final_loss=train_loss, test_loss=test_loss, train_accuracy=train_acc,
                   test_accuracy=test_acc, train_seconds=fit_seconds,
                   history={"train_loss": history.loss.tolist(), "test_loss": history.val_loss.tolist(),
                            "test_accuracy": history.val_accuracy.tolist()})
    summary.setdefault("diverged", False)
    failed = write_outputs(args, s, summary, net, params, history, note, status, finite, x_te, lab_te, k, t0)
    return 1 if failed else status


if __name__ == "__main__":
    sys.exit(main())
