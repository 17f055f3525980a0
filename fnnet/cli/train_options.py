"""`fnnet train`'s options: the seeds' settings per dataset, the parser, and `resolve`,
which fills what the user left unset from the chosen dataset's defaults and cross-checks
the rest (argparse errors, exit status 2, before anything is trained or written).
"""
from __future__ import annotations

import argparse

from fnnet.cli import session
from fnnet.cli.args import DefaultsFormatter, Parser, int_at_least, nonnegative_float, positive_float

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
FIGURE_FORMATS = session.FIGURE_FORMATS
MLP_ONLY = ("sizes", "activation", "output", "b_init")     # settings --model cnn does not have


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


def build_parser():
    d = DATASETS["digits"]
    p = Parser(
        prog="fnnet train", formatter_class=DefaultsFormatter,
        description="Train a network with fnnet (hand-written backward, compiled training loop) on a "
                    "bundled dataset and report train/test accuracy. Defaults are the tutorials' "
                    "settings: digits = seed 001, blobs = seed 002, xor = seed 003; any option "
                    "overrides one of them.",
        epilog="exit status: 0 trained, 1 diverged, --check failed or an output not written, "
               "2 bad options or an unwritable output path (checked before training), 130 Ctrl-C "
               "(the last complete epoch saved to --save). "
               "Example: fnnet train --dataset blobs --epochs 2000 --plot blobs.png; "
               "fnnet train --save run.npz --checkpoint-every 100, then after Ctrl-C: "
               "fnnet train --resume run.npz --save run.npz")
    p.add_argument("--dataset", choices=tuple(DATASETS), default="digits",
                   help="digits: 8x8 digits, 10 classes; blobs: 3 gaussian clusters in 2-D; "
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
                   help="mlp: dense layers of --sizes; cnn: fnnet.cnn() on the digits as 8x8x1 "
                        "images (Conv2D 32 - MaxPool - Conv2D 64 - MaxPool - Dense 128 - Dense 10, relu), "
                        f"with adam {CNN_DEFAULTS['lr']:g}, {CNN_DEFAULTS['epochs']} epochs, batch "
                        f"{CNN_DEFAULTS['batch_size']} unless given")
    p.add_argument("--batchnorm", action="store_true",
                   help="--model cnn: BatchNorm after each convolution (running statistics kept for "
                        "evaluation and saved with --save)")
    p.add_argument("--dropout", type=_rate, metavar="RATE",
                   help="--model cnn: inverted dropout of this rate in [0, 1) before the output layer "
                        "(masks from --seed; off in evaluation)")
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
                        "from jax.random.fold_in(that key, 1)")
    p.add_argument("--init", choices=_initializers(), metavar="NAME",
                   help=f"weight initializer (default normal, the seeds' np.random.randn); one of "
                        f"{', '.join(_initializers())}")
    p.add_argument("--b-init", choices=_initializers(), metavar="NAME",
                   help="bias initializer (xor: normal; else zeros)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of params and data (float64 turns on jax_enable_x64)")
    session.add_options(p)
    p.add_argument("--check", action="store_true",
                   help="before training, check the hand-written gradients of the initial params on a "
                        "few examples against the oracles (fnnet.check.check_network); exit 1 if they disagree")
    session.add_devices(p)
    return p


def _rate(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"a dropout rate must be in [0, 1), got {v:g}")
    return v


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
    elif args.batchnorm or args.dropout is not None:
        parser.error(f"--{'batchnorm' if args.batchnorm else 'dropout'} is a --model cnn setting "
                     f"(fnnet.cnn(batchnorm=, dropout=)); the mlp has no such layers")
    args.optimizer = args.optimizer or d["optimizer"]
    s = {k: getattr(args, k) for k in ("sizes", "activation", "loss", "epochs", "l2", "batch_size")}
    s = {k: d[k] if v is None else v for k, v in s.items()}
    s["dataset"], s["optimizer"], s["seed"], s["dtype"] = args.dataset, args.optimizer, args.seed, args.dtype
    s["model"] = args.model
    s["batchnorm"], s["dropout"] = bool(args.batchnorm), float(args.dropout or 0.0)
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
    session.check_devices(args, parser)
    session.check_paths(args, parser)    # fail now, not after an hour of training
    return s
