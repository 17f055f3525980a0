"""What `fnnet train` and `fnnet gpt train` share around `fnnet.fit`: one set of options for
keeping work, and one way of resuming, checkpointing and stopping.

    --save FILE.npz          the net, params, optimizer state, layer state and epoch (atomic)
    --resume FILE.npz        continue a run saved by --save: bit-identical to never stopping
    --checkpoint-every N     also write --save every N epochs while training
    --plot FILE.png, --json FILE, --quiet
    --devices N [--fsdp | --tensor-parallel]   the run split over N devices (add_devices)

Every path is probed before anything trains (`check_paths`). Ctrl-C stops fit at the last
complete epoch (fnnet.TrainingInterrupted), saves it to --save and exits 130 with one line
on stderr; `Exit` carries such an exit status up to the command's main.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from fnnet.cli.args import int_at_least
from fnnet.cli.outputs import unwritable

FIGURE_FORMATS = (".png", ".pdf", ".svg")


class Exit(Exception):
    """Stop the command with this exit status; the message (one line) went to stderr."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def fail(prog, message, code=2):
    """Print `prog: message` as one line on stderr and raise Exit(code)."""
    print(f"{prog}: {' '.join(str(message).split())}", file=sys.stderr)
    raise Exit(code)


def _suffix(kinds, what):
    def parse(text):
        if os.path.splitext(text)[1].lower() not in kinds:
            ends = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
            raise argparse.ArgumentTypeError(f"{what} must end in {ends}, got {text!r}")
        return text
    parse.__name__ = what
    return parse


def add_options(p, *, what="run"):
    """--save, --resume, --checkpoint-every, --plot, --json, --quiet on parser `p`."""
    p.add_argument("--save", type=_suffix((".npz",), "a checkpoint"), metavar="FILE.npz",
                   help=f"save the trained net, params, optimizer state, layer state and epoch to FILE.npz "
                        f"(fnnet.save; atomic, exactly at FILE.npz); also written on Ctrl-C with the last "
                        f"complete epoch")
    p.add_argument("--resume", type=_suffix((".npz",), "a checkpoint"), metavar="FILE.npz",
                   help=f"continue the {what} saved in FILE.npz by --save, up to --epochs in all; give the "
                        f"options the {what} was started with: the result is bit-identical to a {what} "
                        f"that never stopped")
    p.add_argument("--checkpoint-every", type=int_at_least(1), metavar="N",
                   help="also write --save after every N-th epoch while training (default: only at the end "
                        "and on Ctrl-C)")
    p.add_argument("--plot", type=_suffix(FIGURE_FORMATS, "a figure"), metavar="FILE.png",
                   help="save the loss curves (and accuracy or decision regions) to this image (.png/.pdf/.svg)")
    p.add_argument("--json", metavar="FILE",
                   help="write a machine-readable summary (settings, per-epoch losses and accuracy, "
                        "final metrics, time)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_devices(p):
    """--devices N, and --fsdp / --tensor-parallel (one of them) on parser `p`."""
    p.add_argument("--devices", type=int_at_least(1), metavar="N",
                   help="data-parallel over N devices: each step's batch is split N ways and the "
                        "hand-written gradients are all-reduced (fnnet.fit(mesh=...)); on a CPU-only "
                        "machine N simulated CPU devices, which share its cores (overhead, not speedup)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--fsdp", action="store_true",
                       help="with --devices N: fully sharded data parallelism, the params and optimizer "
                            "state split N ways too (a mesh axis 'fsdp', fnnet/train/fsdp.py)")
    split.add_argument("--tensor-parallel", action="store_true",
                       help="with --devices N: each Dense -> activation -> Dense pair split N ways, and "
                            "attention by heads (a mesh axis 'model', fnnet/train/tensor_parallel.py); "
                            "the hidden widths and head counts must be multiples of N")


def check_devices(args, parser):
    """--fsdp / --tensor-parallel need --devices (parser.error, exit 2)."""
    if (args.fsdp or args.tensor_parallel) and args.devices is None:
        parser.error(f"{'--fsdp' if args.fsdp else '--tensor-parallel'} splits the run over devices: "
                     f"give --devices N as well")


def mesh_axis(args):
    """The one mesh axis --devices builds: 'data' (the batch split), 'fsdp' or 'model'."""
    return "fsdp" if args.fsdp else "model" if args.tensor_parallel else "data"


def device_mesh(prog, args):
    """--devices N as a one-axis mesh (mesh_axis), or None; call it before anything starts
    JAX's backends, so that a CPU-only machine can get N simulated devices."""
    if args.devices is None:
        return None
    from fnnet.train.sharding import data_mesh
    try:
        return data_mesh(args.devices, mesh_axis(args))
    except ValueError as e:
        fail(prog, e)


def describe_devices(mesh):
    """The line saying how --devices splits the run."""
    dev = mesh.devices.flat[0]
    shared = " (simulated: they share this machine's cores)" if dev.platform == "cpu" and mesh.size > 1 else ""
    what = {"data": "each step's batch", "fsdp": "each step's batch, the params and optimizer state (FSDP)",
            "model": "each Dense -> activation -> Dense pair and attention's heads (tensor parallel)"}
    return f"devices: {mesh.size} {dev.platform}{shared}, {what[mesh.axis_names[0]]} split {mesh.size} ways"


def check_split(prog, net, mesh, n, batch):
    """--fsdp / --tensor-parallel: what fit would refuse (a batch the devices do not divide,
    a width or head count the model axis does not divide), said as a usage error before
    training. n: training examples; batch: examples per step."""
    from fnnet.train import fsdp, tensor_parallel
    axis = mesh.axis_names[0]
    try:
        if axis == "fsdp":
            fsdp.check_batches(fsdp.setup(net, mesh), n, batch)
        elif axis == "model":
            tensor_parallel.check_batches(tensor_parallel.setup(net, mesh, where="fit"), n, batch)
    except ValueError as e:
        flag = "--fsdp" if axis == "fsdp" else "--tensor-parallel"
        fail(prog, f"{flag} --devices {mesh.size}: {e}")


def check_paths(args, parser):
    """Before anything trains: every output writable, --resume readable (parser.error, exit 2)."""
    if args.checkpoint_every is not None and not args.save:
        parser.error("--checkpoint-every needs --save FILE.npz (the file it keeps up to date)")
    if args.resume is not None and not os.path.isfile(args.resume):
        parser.error(f"--resume {args.resume!r}: no such file")
    for opt in ("plot", "save", "json"):       # fail now, not after an hour of training
        path = getattr(args, opt)
        if path is not None:
            problem = unwritable(path)
            if problem:
                parser.error(f"--{opt} {path!r}: {problem}")


def resume(prog, path, net, optimizer, epochs, dtype, how):
    """Read --resume `path` for `net` trained by `optimizer` -> fnnet.Checkpoint; every mismatch
    is one line and exit 2. how: the options that select the optimizer, for the messages."""
    import numpy as np
    import jax
    import fnnet
    where = f"--resume {path}"
    try:
        plain = fnnet.restore(path)
    except (OSError, ValueError, TypeError) as e:
        fail(prog, f"{where}: {e}")
    if plain.net != net:
        fail(prog, f"{where}: the checkpoint's net is {plain.net}, but these options build {net}; "
                   f"give the options the run was started with")
    leaf = jax.tree.leaves(plain.params)[0]
    if np.dtype(leaf.dtype) != np.dtype(dtype):
        fail(prog, f"{where}: the checkpoint holds {np.dtype(leaf.dtype).name} params, the options ask "
                   f"for {np.dtype(dtype).name}")
    if plain.epoch is None:
        fail(prog, f"{where}: the checkpoint records no epoch count, so it cannot be resumed exactly")
    try:
        ck = fnnet.restore(path, optimizer=optimizer)
    except (ValueError, TypeError) as e:
        fail(prog, f"{where}: {e} (the optimizer given by {how})")
    if ck.opt_state is None:
        fail(prog, f"{where}: the checkpoint holds no optimizer state (saved without one), so "
                   f"training cannot continue exactly")
    if ck.epoch >= epochs:
        fail(prog, f"{where}: the checkpoint has already trained {ck.epoch} epochs and --epochs is "
                   f"{epochs} (the total, not more); give a larger --epochs to train on")
    return ck


class Saver:
    """--save as fit's checkpoint callable(FitResult): writes net, params, opt_state, epoch and
    state atomically, once per epoch count."""

    def __init__(self, prog, path, net):
        self.prog, self.path, self.net, self.epoch = prog, path, net, None

    def save(self, r):
        """Write FitResult `r` (OSError/ValueError/TypeError propagate)."""
        if self.path and r.epoch != self.epoch:
            import fnnet
            fnnet.save(self.path, self.net, r.params, opt_state=r.opt_state, epoch=r.epoch, state=r.state)
            self.epoch = r.epoch

    def __call__(self, r):
        """fit's checkpoint hook: a failed periodic save is reported and training goes on."""
        try:
            self.save(r)
        except OSError as e:
            print(f"{self.prog}: warning: could not write the checkpoint after epoch {r.epoch} to "
                  f"{self.path}: {e}; training goes on", file=sys.stderr)


def fit(prog, args, net, params, x, y, *, epochs, saver, initial_epoch=0, **kw):
    """fnnet.fit to absolute epoch `epochs` from `initial_epoch`, keeping --save every
    --checkpoint-every epochs; Ctrl-C saves the last complete epoch and raises Exit(130).
    DivergedError passes through (each command reports it its own way)."""
    import fnnet
    if args.checkpoint_every:
        kw.update(checkpoint=saver, checkpoint_every=args.checkpoint_every)
    try:
        return fnnet.fit(net, params, x, y, epochs=epochs - initial_epoch, initial_epoch=initial_epoch, **kw)
    except fnnet.TrainingInterrupted as e:
        interrupted(prog, args, saver, e.result, epochs)


def interrupted(prog, args, saver, result, epochs):
    """Ctrl-C: save FitResult `result` to --save, say so in one line, raise Exit(130)."""
    if not args.save:
        kept = "nothing saved (--save FILE.npz keeps an interrupted run)"
    else:
        try:
            saver.save(result)
            kept = f"saved it to {args.save} (continue with --resume {args.save})"
        except (OSError, ValueError, TypeError) as err:
            kept = f"could not save it to {args.save}: {err}"
    print(f"{prog}: interrupted after epoch {result.epoch} of {epochs}; {kept}", file=sys.stderr)
    raise Exit(130) from None


@contextlib.contextmanager
def saved_on_ctrl_c(prog, args, saver, result, epochs):
    """After training: Ctrl-C while evaluating or writing the outputs still saves `result`."""
    try:
        yield
    except KeyboardInterrupt:
        interrupted(prog, args, saver, result, epochs)
