"""`fnnet train`'s outputs: checked before training, written after it, each on its own.

    unwritable(path) -> None or why       # really creates and removes a file beside path
    write_outputs(...) -> failures        # --save, --plot, --json; one failing never stops the others
"""
from __future__ import annotations

import json
import math
import os
import secrets
import sys
import time


def unwritable(path):
    """Why `path` cannot be written (None when it can): really create and remove a file
    beside it, as the atomic write at the end will."""
    if not path.strip():
        return "the path is empty"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if os.path.isdir(path):
        return "is a directory"
    probe = os.path.join(parent, f".fnnet-write-probe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"cannot create a file in {parent}: {e.strerror or e}"
    return None


def plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def json_safe(obj):
    """NaN/Inf (a loss after divergence) become null: the summary stays strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def title(s, epochs, status):
    """The figure's title: the settings that made the run (the CNN's own, not the MLP's)."""
    if s["model"] == "cnn":
        extras = "".join([", BatchNorm" if s["batchnorm"] else "",
                          f", dropout {s['dropout']:g}" if s["dropout"] else ""])
        what = f"--model cnn: fnnet.cnn() on 8x8x1 images{extras}, {s['loss']}, l2 {s['l2']:g}"
    else:
        what = (f"--dataset {s['dataset']}: {'-'.join(map(str, s['sizes']))}, {s['activation']} hidden, "
                f"{s['output']} output, {s['loss']}, l2 {s['l2']:g}")
    batch = "full batch" if s["batch_size"] is None else f"batch {s['batch_size']}"
    return (f"fnnet train {what}; {s['optimizer']} lr {s['lr']:g}, {batch}, {plural(epochs, 'epoch')}"
            f"{' (diverged)' if status else ''}, seed {s['seed']}")


def write_outputs(args, s, summary, net, params, history, note, status, finite, x_te, lab_te, k, t0, save=None):
    """Write --save (by calling `save()`), --plot and --json, each on its own: one failing never
    stops the others. Returns how many failed (each reported on stderr)."""
    from fnnet import atomic
    out, epochs_done, failed = sys.stdout, len(history.loss), 0

    def attempt(opt, path, write, done):
        nonlocal failed
        try:
            write()
            print(done, file=out)
        except (OSError, ValueError, TypeError) as e:
            failed += 1
            print(f"fnnet train: cannot write output --{opt} {path}: {e}", file=sys.stderr)

    if args.save:
        if finite:
            attempt("save", args.save, save, f"saved checkpoint{note} to {args.save}")
        else:
            print(f"fnnet train: not saving {args.save}: no params with a finite loss", file=sys.stderr)
    if args.plot:
        if epochs_done:
            from fnnet.cli import plot as _plot
            labels = lab_te if s["dataset"] != "xor" else lab_te[:, 0].astype(int)
            attempt("plot", args.plot, lambda: _plot.save_figure(
                args.plot, net, params, history, title=title(s, epochs_done, status), x_test=x_te,
                labels_test=labels, k=k),
                f"saved plot to {args.plot}")
        else:
            print(f"fnnet train: not drawing {args.plot}: the run diverged before any epoch finished",
                  file=sys.stderr)
    if args.json:
        summary["seconds"] = time.perf_counter() - t0
        text = json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n"
        attempt("json", args.json, lambda: atomic.write(args.json, lambda f: f.write(text.encode()),
                                                         where="fnnet train --json"),
                f"saved summary to {args.json}")
    return failed
