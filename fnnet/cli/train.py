"""`fnnet train`: train a network on one of the bundled datasets and report accuracy.

With no options it is seed 001's digits classifier: 64-128-128-10, sigmoid hidden
layers, softmax cross-entropy on logits, N(0, 1) weights, SGD at 0.5, 1500 full-batch
epochs. `--dataset blobs` is seed 002 and `--dataset xor` seed 003; every other option
overrides one setting of the chosen dataset's defaults.

Exit status: 0 trained; 1 training diverged, --check failed or an output could not be
written; 2 bad options (including an output path that cannot be written or a --resume
checkpoint that does not fit the options, found before training starts); 130 Ctrl-C (the
last complete epoch saved to --save; fnnet/cli/session.py).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, NamedTuple

from fnnet.cli import session
from fnnet.cli.outputs import plural, write_outputs
from fnnet.cli.train_options import DATASETS, MLP_ONLY, MOMENTUM, build_parser, resolve  # noqa: F401 (API)

PROG = "fnnet train"


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


def evaluate(net, params, x, y, labels, state=None):
    """(fnnet.loss, fnnet.accuracy) as Python floats, compiled as one function.

    y: what the loss takes; labels: what accuracy scores (class indices, or xor's targets).
    state: a BatchNorm net's layer state (both read it in eval mode), else None.
    fit has already validated the data's values; jit keeps the shape/dtype checks.
    """
    import jax
    from fnnet.train import metrics as _metrics
    from fnnet import network as _network

    def both(params, x, y, labels, state):
        if state is None:
            return _network.loss(net, params, x, y), _metrics.accuracy_value(net, params, x, labels)
        loss = _network.loss(net, params, x, y, state=state, train=False)[0]
        return loss, _metrics.accuracy_value(net, params, x, labels, state)
    loss, acc = jax.device_get(jax.jit(both)(params, x, y, labels, state))
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

    try:
        import jax
        x64 = bool(jax.config.jax_enable_x64)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before training started; nothing saved", file=sys.stderr)
        return 130
    if s["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    try:
        mesh = session.device_mesh(PROG, args)     # before anything starts JAX's backends
        return _train(s, args, t0, mesh)
    except session.Exit as e:
        return e.code
    except KeyboardInterrupt:         # outside fit (which stops at an epoch): nothing to keep
        print(f"{PROG}: interrupted; nothing saved", file=sys.stderr)
        return 130
    finally:
        if s["dtype"] == "float64":
            jax.config.update("jax_enable_x64", x64)


def _train(s, args, t0, mesh=None) -> int:
    """The run, as named steps: data and net, starting point (fresh or --resume), what is
    about to happen, the optional gradient check, training, then the report and outputs."""
    data = load_data(s)
    net, data = _build_net(s, data)
    start = _starting_point(s, args, net)
    _describe(s, args, net, data, start, mesh)
    if args.check and not _gradient_check(net, data, start):
        return 1
    summary = _summary(s, args, net, data, start, mesh)
    saver = session.Saver(PROG, args.save, net)
    t_fit = time.perf_counter()
    result, status = _fit(s, args, net, data, start, mesh, saver, summary)
    fit_seconds = time.perf_counter() - t_fit
    with session.saved_on_ctrl_c(PROG, args, saver, result, s["epochs"]):
        return _report(s, args, net, data, result, status, summary, saver, fit_seconds, t0)


class _Start(NamedTuple):
    """Where training starts: params, layer state (None without BatchNorm), the optimizer
    and its state (None: fresh), the epoch already trained, the init key (--seed) and
    whether the net is stochastic (Dropout)."""
    params: Any
    state: Any
    optimizer: Any
    opt_state: Any
    initial: int
    k_init: Any
    stochastic: bool


def _build_net(s, data):
    """(net, data): the MLP of --sizes, or the CNN (with the rows reshaped to images)."""
    import fnnet
    x_tr, y_tr, x_te, y_te, lab_tr, lab_te, k = data
    if s["model"] == "cnn":   # the digits' [n, 64] rows as NHWC images [n, 8, 8, 1]
        x_tr, x_te = x_tr.reshape(-1, 8, 8, 1), x_te.reshape(-1, 8, 8, 1)
        net = fnnet.cnn((8, 8, 1), classes=k, loss=s["loss"], l2=s["l2"], batchnorm=s["batchnorm"],
                        dropout=s["dropout"])
    else:
        net = fnnet.mlp(list(s["sizes"]), activation=s["activation"], output=s["output"], loss=s["loss"],
                        l2=s["l2"], w_init=s["init"], b_init=s["b_init"])
    return net, (x_tr, y_tr, x_te, y_te, lab_tr, lab_te, k)


def _starting_point(s, args, net) -> _Start:
    """Fresh params from --seed (fnnet.init(net, jax.random.key(seed)), as in the README and
    scripts/seed00*.py), or the --resume checkpoint's params, optimizer state and epoch."""
    import jax
    import jax.numpy as jnp
    import fnnet
    from fnnet import state as _state
    k_init = jax.random.key(s["seed"])
    params = fnnet.init(net, k_init, jnp.dtype(s["dtype"]))
    state = fnnet.init_state(net, jnp.dtype(s["dtype"])) if any(map(_state.is_stateful, net.layers)) else None
    stochastic = any(map(_state.is_stochastic, net.layers))
    optimizer = make_optimizer(s)
    opt_state, initial = None, 0
    if args.resume:
        ck = session.resume(PROG, args.resume, net, optimizer, s["epochs"], s["dtype"],
                            how=f"--optimizer {s['optimizer']}")
        params, opt_state, initial = ck.params, ck.opt_state, ck.epoch
        if state is not None:
            if ck.state is None:
                session.fail(PROG, f"--resume {args.resume}: the checkpoint holds no layer state "
                                   f"(BatchNorm statistics), so training cannot continue exactly")
            state = ck.state
    return _Start(params, state, optimizer, opt_state, initial, k_init, stochastic)


def _batch(s, n):
    """The minibatch size, or None for full batch (--batch-size absent or >= n)."""
    return None if s["batch_size"] is None or s["batch_size"] >= n else s["batch_size"]


def _describe(s, args, net, data, start, mesh):
    """The lines printed before training: data, network, init, optimizer, resume, devices."""
    x_tr, _, x_te, _, _, _, k = data
    n, batch, out = len(x_tr), _batch(s, len(x_tr)), sys.stdout
    what = f"{k} classes" if s["dataset"] != "xor" else "one 0/1 target"
    print(f"dataset: {s['dataset']} (seed {DATASETS[s['dataset']]['seed_post']}'s settings as defaults): "
          f"{n} train / {len(x_te)} test examples, {' x '.join(map(str, x_tr.shape[1:]))} features, {what}",
          file=out)
    print(f"network: {net}", file=out)
    inits = s["init"] if s["model"] == "cnn" else f"weights {s['init']}, biases {s['b_init']}"
    print(f"init: {inits}, {s['dtype']}, seed {s['seed']}", file=out)
    extra = f" (momentum {MOMENTUM})" if s["optimizer"] == "momentum" else ""
    print(f"training: {s['optimizer']}{extra} lr {s['lr']:g}, {plural(s['epochs'], 'epoch')}, "
          f"{'full batch' if batch is None else f'batch size {batch}, reshuffled each epoch'}", file=out)
    if args.resume:
        print(f"resuming: {args.resume}, after epoch {start.initial} of {s['epochs']}", file=out)
    if mesh is not None:
        print(session.describe_devices(mesh), file=out)
    out.flush()


def _gradient_check(net, data, start) -> bool:
    """--check: fnnet.check_network on the initial params and 8 training examples, printed;
    False (and a line on stderr) when it fails."""
    import jax
    import fnnet.check
    x_tr, y_tr = data[0], data[1]
    m = min(8, len(x_tr))
    key = jax.random.fold_in(start.k_init, 2) if start.stochastic else None
    report = fnnet.check.check_network(net, start.params, x_tr[:m], y_tr[:m], state=start.state,
                                       forward_key=key)
    print(f"gradient check on the initial params, {m} training examples:\n{report}", file=sys.stdout)
    if not report.ok:
        print("fnnet train: gradient check FAILED; not training", file=sys.stderr)
    return report.ok


def _summary(s, args, net, data, start, mesh) -> dict:
    """The --json summary's settings part (the results are added after training)."""
    n, n_test = len(data[0]), len(data[2])
    settings = {k_: v for k_, v in s.items() if not (s["model"] == "cnn" and k_ in MLP_ONLY)}
    if s["model"] != "cnn":
        settings["sizes"] = list(s["sizes"])
    return {"settings": {**settings, "batch_size": _batch(s, n), "network": str(net),
                         "devices": None if mesh is None else mesh.size,
                         "mesh_axis": None if mesh is None else mesh.axis_names[0]},
            "train_examples": n, "test_examples": n_test,
            "resumed_from": args.resume, "initial_epoch": start.initial}


def _fit(s, args, net, data, start, mesh, saver, summary):
    """(FitResult, exit status): fit with the progress bar and --save/--checkpoint-every; a
    divergence keeps the last good params (status 1) and says what to try."""
    import jax
    import fnnet
    from fnnet.train.progress import ProgressBar
    x_tr, y_tr, x_te, y_te = data[:4]
    batch, initial, state = _batch(s, len(x_tr)), start.initial, start.state
    # the batch order comes from a key folded out of --seed's
    k_shuffle = jax.random.fold_in(start.k_init, 1)
    if mesh is not None:
        session.check_split(PROG, net, mesh, len(x_tr), batch or len(x_tr))
    try:
        progress = None if args.quiet else ProgressBar(s["epochs"], label="test", initial=initial)   # test split
        result = session.fit(
            PROG, args, net, start.params, x_tr, y_tr, optimizer=start.optimizer, epochs=s["epochs"],
            initial_epoch=initial, opt_state=start.opt_state, batch_size=batch,
            key=k_shuffle if batch is not None or start.stochastic else None,
            validation=(x_te, y_te), progress=progress, mesh=mesh, saver=saver,
            **({} if state is None else {"state": state}))
        return result, 0
    except fnnet.DivergedError as e:
        result = fnnet.FitResult(e.params, e.history, e.opt_state, e.state if state is not None else None,
                                 initial + e.epoch)
        good = (f"the last good params, after epoch {initial + e.epoch}" if initial + e.epoch
                else "the initial params")
        kept = (f"kept {good} (finite train and test loss)" if e.finite_loss else
                "even the initial params have a non-finite loss, so there is nothing to keep")
        print(f"fnnet train: training diverged at epoch {initial + e.epoch + 1} of {s['epochs']}: it made the loss "
              f"or the params NaN/Inf; {kept}. Try a lower --lr (now {s['lr']:g}), e.g. --lr {s['lr'] / 10:g}.",
              file=sys.stderr)
        summary.update(diverged=True, diverged_epoch=initial + e.epoch + 1, kept_finite_params=e.finite_loss)
        return result, 1


def _report(s, args, net, data, result, status, summary, saver, fit_seconds, t0) -> int:
    """Final loss and accuracies (none when not finite), timing, then --json/--plot/--save."""
    x_tr, y_tr, x_te, y_te, lab_tr, lab_te, k = data
    params, history, state, out, n = result.params, result.history, result.state, sys.stdout, len(x_tr)
    epochs_done = len(history.loss)
    train_loss, train_acc = evaluate(net, params, x_tr, y_tr, lab_tr, state)
    test_loss, test_acc = evaluate(net, params, x_te, y_te, lab_te, state)
    finite = math.isfinite(train_loss) and math.isfinite(test_loss)
    note = ("" if status == 0 else f" (last finite params, after epoch {result.epoch})" if result.epoch
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
    summary.update(epochs=epochs_done, final_epoch=result.epoch, final_loss=train_loss, test_loss=test_loss,
                   train_accuracy=train_acc, test_accuracy=test_acc, train_seconds=fit_seconds,
                   history={"train_loss": history.loss.tolist(), "test_loss": history.val_loss.tolist(),
                            "test_accuracy": history.val_accuracy.tolist()})
    summary.setdefault("diverged", False)
    failed = write_outputs(args, s, summary, net, params, history, note, status, finite, x_te, lab_te, k, t0,
                           save=lambda: saver.save(result))
    return 1 if failed else status


if __name__ == "__main__":
    sys.exit(main())
