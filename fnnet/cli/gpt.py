"""`fnnet gpt`: train a character-level GPT on Python's own docs, and sample from it.

    fnnet gpt train                                    # defaults below; prints losses and samples
    fnnet gpt train --save gpt.npz --checkpoint-every 1    # keeps the run; Ctrl-C keeps it too
    fnnet gpt train --resume gpt.npz --save gpt.npz    # ... and continues it, bit-identically
    fnnet gpt sample gpt.npz --prompt "def " --chars 300 --temperature 0.8

Data: fnnet.datasets.pydoc_text() (pydoc_data.topics, contiguous 90/10 split),
non-overlapping windows of --context characters. Model: fnnet.gpt. Optimizer:
optax.adamw with a cosine decay of --lr over all steps. The baseline printed beside
the GPT's validation loss is the add-α bigram model counted on the same training text
(α chosen on the validation text, i.e. the bigram at its best). `gpt train` takes the
same --save/--resume/--checkpoint-every/--plot/--json/--quiet and --devices N
[--fsdp | --tensor-parallel] as `fnnet train` (fnnet/cli/session.py):

    fnnet gpt train --devices 8 --fsdp             # params and AdamW state split 8 ways
    fnnet gpt train --devices 4 --tensor-parallel  # heads and MLP columns split 4 ways

Exit status: 0 done; 1 training diverged or an output could not be written; 2 bad options
(one line on stderr, before anything trains); 130 Ctrl-C (the last complete epoch saved to --save).
"""
from __future__ import annotations

import json
import sys
import time

from fnnet.cli import session
from fnnet.cli.args import DefaultsFormatter, Parser, int_at_least, nonnegative_float, positive_float

PROG = "fnnet gpt"


def parser():
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=DefaultsFormatter)
    sub = p.add_subparsers(dest="action", required=True, metavar="{train,sample}",
                           help="train: train a GPT and print val loss vs the bigram baseline; "
                                "sample: generate text from a saved one")
    t = sub.add_parser("train", help="train on pydoc_text and print val loss vs the bigram baseline",
                       description="Train fnnet.gpt on pydoc_text with AdamW (cosine decay) and the "
                                   "hand-written backward.", formatter_class=DefaultsFormatter,
                       epilog="exit status: 0 trained, 1 diverged or an output not written, 2 bad options, "
                              "130 Ctrl-C (the last complete epoch saved to --save)")
    t.add_argument("--layers", type=int_at_least(1), default=2, help="transformer blocks")
    t.add_argument("--heads", type=int_at_least(1), default=4, help="attention heads per block (divides --dim)")
    t.add_argument("--dim", type=int_at_least(1), default=64, help="embedding width")
    t.add_argument("--context", type=int_at_least(1), default=64, help="characters per training window")
    t.add_argument("--batch-size", type=int_at_least(1), default=32, help="windows per step")
    t.add_argument("--epochs", type=int_at_least(1), default=6,
                   help="passes over the training windows (with --resume: the total)")
    t.add_argument("--lr", type=positive_float, default=3e-3, help="peak AdamW learning rate (cosine decay)")
    t.add_argument("--weight-decay", type=nonnegative_float, default=0.01, help="AdamW weight decay")
    t.add_argument("--grad", choices=("manual", "autodiff"), default="manual",
                   help="hand-written backward, or jax.grad for comparison")
    t.add_argument("--max-chars", type=int_at_least(1), default=None, metavar="N",
                   help="use only the first N characters of the corpus (default: all)")
    t.add_argument("--seed", type=int_at_least(0), default=0,
                   help="initial weights from jax.random.key(SEED), batch order from key(SEED + 1)")
    t.add_argument("--sample", type=int_at_least(0), default=300, metavar="N",
                   help="characters to generate after training (0: none)")
    t.add_argument("--temperature", type=nonnegative_float, default=0.8, help="sampling temperature (0: greedy)")
    t.add_argument("--prompt", default="The ", help="text the samples start from (characters of the corpus)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the params (float64 turns on jax_enable_x64)")
    session.add_options(t, what="run")
    session.add_devices(t)
    s = sub.add_parser("sample", help="generate text from a net saved by `fnnet gpt train --save`",
                       description="Generate text from a GPT saved by `fnnet gpt train --save`.",
                       formatter_class=DefaultsFormatter, epilog="exit status: 0 done, 2 bad options or checkpoint")
    s.add_argument("checkpoint", help="the .npz that `fnnet gpt train --save` wrote")
    s.add_argument("--prompt", default="The ", help="text to continue (characters of the corpus)")
    s.add_argument("--chars", type=int_at_least(1), default=300, help="characters to generate")
    s.add_argument("--temperature", type=nonnegative_float, default=0.8, help="0 = greedy")
    s.add_argument("--seed", type=int_at_least(0), default=0, help="sampling key jax.random.key(SEED)")
    p.train_parser = t
    return p


def _check_prompt(data, prompt, opt="--prompt"):
    if not prompt:
        session.fail(PROG, f"{opt} is empty; give at least one character to start from")
    missing = sorted(set(prompt) - set(data.chars))
    if missing:
        session.fail(PROG, f"{opt} {prompt!r}: characters {''.join(missing)!r} are not in the corpus's "
                           f"vocabulary of {data.vocab} characters")


def _samples(net, params, data, prompt, n, temperature, seed):
    import jax
    from fnnet.models.gpt import generate
    ids = data.encode(prompt)
    greedy = data.decode(generate(net, params, ids, n))
    sampled = data.decode(generate(net, params, ids, n, key=jax.random.key(seed), temperature=temperature))
    return greedy, sampled


def _with_dtype(args, run):
    """run(args) with jax_enable_x64 on for --dtype float64, restored afterwards."""
    import jax
    x64 = bool(jax.config.jax_enable_x64)
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    try:
        return run(args)
    finally:
        jax.config.update("jax_enable_x64", x64)


def train(args):
    import jax
    import jax.numpy as jnp
    import optax
    import fnnet
    from fnnet import text
    from fnnet.train.progress import ProgressBar

    t_start = time.time()
    mesh = session.device_mesh(PROG, args)     # before anything starts JAX's backends
    data = fnnet.datasets.pydoc_text(max_chars=args.max_chars)
    _check_prompt(data, args.prompt)
    if args.dim % args.heads:
        session.fail(PROG, f"--heads {args.heads} must divide --dim {args.dim}")
    x, y = text.windows(data.train, args.context)
    xv, yv = text.windows(data.val, args.context)
    for what, windows, chars in (("training", x, data.train), ("validation", xv, data.val)):
        if windows.shape[0] == 0:
            session.fail(PROG, f"--context {args.context} is longer than the {what} text ({len(chars)} "
                               f"characters); lower --context or raise --max-chars")
    bigram, alpha = text.bigram_loss(data)
    net = fnnet.gpt(data.vocab, args.context, args.layers, args.heads, args.dim)
    params = fnnet.init(net, jax.random.key(args.seed), jnp.dtype(args.dtype))
    n_params = sum(p.size for p in jax.tree.leaves(params))
    steps = args.epochs * -(-x.shape[0] // args.batch_size)
    opt = optax.adamw(optax.cosine_decay_schedule(args.lr, steps), weight_decay=args.weight_decay)
    opt_state, initial = None, 0
    if args.resume:
        ck = session.resume(PROG, args.resume, net, opt, args.epochs, args.dtype, how="fnnet gpt train: AdamW")
        params, opt_state, initial = ck.params, ck.opt_state, ck.epoch
    print(f"data: pydoc_text, {len(data.train)} train / {len(data.val)} val characters, vocab {data.vocab}; "
          f"{x.shape[0]} windows of {args.context}")
    print(f"model: gpt(layers={args.layers}, heads={args.heads}, dim={args.dim}, context={args.context}), "
          f"{n_params} params; adamw lr {args.lr} cosine over {steps} steps, batch {args.batch_size}")
    print(f"bigram baseline (add-{alpha:.3g}, counted on train): val {bigram:.4f} nats/char")
    if args.resume:
        print(f"resuming: {args.resume}, after epoch {initial} of {args.epochs}")
    if mesh is not None:
        print(session.describe_devices(mesh))
        session.check_split(PROG, net, mesh, x.shape[0], min(args.batch_size, x.shape[0]))
    sys.stdout.flush()

    saver = session.Saver(PROG, args.save, net)
    progress = None if args.quiet else ProgressBar(args.epochs, label="val", initial=initial)
    t0 = time.time()
    status = 0
    try:
        r = session.fit(PROG, args, net, params, x, y, optimizer=opt, epochs=args.epochs, initial_epoch=initial,
                        opt_state=opt_state, batch_size=args.batch_size, key=jax.random.key(args.seed + 1),
                        grad=args.grad, validation=(xv, yv), progress=progress, saver=saver, mesh=mesh)
    except fnnet.DivergedError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        r = fnnet.FitResult(e.params, e.history, e.opt_state, None, initial + e.epoch)
        status = 1
    with session.saved_on_ctrl_c(PROG, args, saver, r, args.epochs):
        return _report(args, net, r, saver, data, bigram, t0, t_start, status)


def _report(args, net, r, saver, data, bigram, t0, t_start, status):
    """After training: the final losses, the outputs, the samples -> exit status."""
    hist = r.history
    seconds = time.time() - t0
    val = float(hist.val_loss[-1]) if len(hist.val_loss) else float("nan")
    print(f"trained in {seconds:.0f} s to epoch {r.epoch}: val {val:.4f} nats/char vs bigram {bigram:.4f} "
          f"(bigram - gpt = {bigram - val:+.4f}), val next-char accuracy "
          f"{float(hist.val_accuracy[-1]) if len(hist.val_accuracy) else float('nan'):.3f}")
    failed = _outputs(args, net, r, saver, bigram, seconds, t_start, status)
    if args.sample > 0 and status == 0:
        greedy, sampled = _samples(net, r.params, data, args.prompt, args.sample, args.temperature, args.seed)
        print(f"--- greedy ---\n{greedy}\n--- temperature {args.temperature} ---\n{sampled}")
    return 1 if failed else status


def _outputs(args, net, r, saver, bigram, seconds, t_start, status):
    """--save, --plot, --json, each on its own; returns how many failed (each one line on stderr)."""
    from fnnet import atomic
    failed = 0

    def attempt(opt, path, write, done):
        nonlocal failed
        try:
            write()
            print(done)
        except (OSError, ValueError, TypeError) as e:
            failed += 1
            print(f"{PROG}: cannot write output --{opt} {path}: {e}", file=sys.stderr)

    if args.save:
        attempt("save", args.save, lambda: saver.save(r), f"saved {args.save} (epoch {r.epoch})")
    if args.plot and len(r.history.loss):
        from fnnet.cli import plot as _plot
        title = (f"fnnet gpt train: gpt(layers={args.layers}, heads={args.heads}, dim={args.dim}, "
                 f"context={args.context}); adamw lr {args.lr:g}, batch {args.batch_size}, epochs "
                 f"{r.epoch - len(r.history.loss) + 1}-{r.epoch}{' (diverged)' if status else ''}, seed {args.seed}")
        attempt("plot", args.plot, lambda: _plot.save_figure(args.plot, net, r.params, r.history, title=title,
                                                              split="validation"),
                f"saved plot to {args.plot}")
    if args.json:
        h = r.history
        summary = {"settings": {k: v for k, v in vars(args).items() if k != "action"}, "network": str(net),
                   "resumed_from": args.resume, "initial_epoch": r.epoch - len(h.loss), "final_epoch": r.epoch,
                   "diverged": bool(status), "bigram_val_loss": bigram, "train_seconds": seconds,
                   "seconds": time.time() - t_start,
                   "history": {"train_loss": h.loss.tolist(), "val_loss": h.val_loss.tolist(),
                               "val_accuracy": h.val_accuracy.tolist()}}
        from fnnet.cli.outputs import json_safe
        text_ = json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n"
        attempt("json", args.json, lambda: atomic.write(args.json, lambda f: f.write(text_.encode()),
                                                         where="fnnet gpt train --json"),
                f"saved summary to {args.json}")
    return failed


def sample(args):
    import fnnet
    from fnnet.models.gpt import TiedLM
    where = f"sample {args.checkpoint}"
    try:
        net, params = fnnet.load(args.checkpoint)
    except (OSError, ValueError, TypeError) as e:
        session.fail(PROG, f"{where}: {e}")
    if not (len(net.layers) == 1 and isinstance(net.layers[0], TiedLM)):
        session.fail(PROG, f"{where}: the checkpoint holds {net}, not a GPT saved by `fnnet gpt train --save`")
    data = fnnet.datasets.pydoc_text()
    if data.vocab != net.layers[0].encoder.vocab:
        session.fail(PROG, f"{where}: the checkpoint's vocabulary ({net.layers[0].encoder.vocab}) is not "
                           f"pydoc_text's ({data.vocab})")
    _check_prompt(data, args.prompt)
    greedy, sampled = _samples(net, params, data, args.prompt, args.chars, args.temperature, args.seed)
    print(sampled if args.temperature > 0 else greedy)
    return 0


def main(argv=None) -> int:
    p = parser()
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else list(argv))
        if args.action == "train":
            session.check_paths(args, p.train_parser)
            session.check_devices(args, p.train_parser)
    except SystemExit as e:           # --help (0) and one-line argparse errors (2) as return codes
        return int(e.code or 0)
    try:
        return _with_dtype(args, train) if args.action == "train" else sample(args)
    except session.Exit as e:
        return e.code
    except KeyboardInterrupt:         # outside fit (which stops at an epoch): nothing to keep
        print(f"{PROG}: interrupted; nothing saved", file=sys.stderr)
        return 130
