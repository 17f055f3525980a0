"""`fnnet gpt`: train a character-level GPT on Python's own docs, and sample from it.

    python -m fnnet gpt train                     # defaults below; prints losses and samples
    python -m fnnet gpt train --save gpt.npz      # ... and keeps the trained net
    python -m fnnet gpt sample gpt.npz --prompt "def " --chars 300 --temperature 0.8

Data: fnnet.datasets.pydoc_text() (pydoc_data.topics, contiguous 90/10 split),
non-overlapping windows of --context characters. Model: fnnet.gpt. Optimizer:
optax.adamw with a cosine decay of --lr over all steps. The baseline printed beside
the GPT's validation loss is the add-α bigram model counted on the same training text
(α chosen on the validation text, i.e. the bigram at its best).

Exit status: 0 done; 1 training diverged; 2 bad options.
"""
from __future__ import annotations

import argparse
import sys
import time

from fnnet.cli.args import int_at_least, nonnegative_float


def parser():
    p = argparse.ArgumentParser(prog="fnnet gpt", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    t = sub.add_parser("train", help="train on pydoc_text and print val loss vs the bigram baseline")
    t.add_argument("--layers", type=int_at_least(1), default=2)
    t.add_argument("--heads", type=int_at_least(1), default=4)
    t.add_argument("--dim", type=int_at_least(1), default=64)
    t.add_argument("--context", type=int_at_least(1), default=64)
    t.add_argument("--batch-size", type=int_at_least(1), default=32)
    t.add_argument("--epochs", type=int_at_least(1), default=6, help="passes over the training windows")
    t.add_argument("--lr", type=nonnegative_float, default=3e-3, help="peak AdamW learning rate (cosine decay)")
    t.add_argument("--weight-decay", type=nonnegative_float, default=0.01)
    t.add_argument("--grad", choices=("manual", "autodiff"), default="manual",
                   help="hand-written backward (default) or jax.grad, for comparison")
    t.add_argument("--max-chars", type=int_at_least(1), default=None, help="use only the first N characters")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--sample", type=int, default=300, metavar="N", help="characters to generate after training")
    t.add_argument("--temperature", type=nonnegative_float, default=0.8)
    t.add_argument("--prompt", default="The ")
    t.add_argument("--save", default=None, metavar="PATH", help="save the trained net (fnnet.save, .npz)")
    s = sub.add_parser("sample", help="generate text from a net saved by `fnnet gpt train --save`")
    s.add_argument("checkpoint")
    s.add_argument("--prompt", default="The ")
    s.add_argument("--chars", type=int, default=300)
    s.add_argument("--temperature", type=nonnegative_float, default=0.8, help="0 = greedy")
    s.add_argument("--seed", type=int, default=0)
    return p


def _samples(net, params, data, prompt, n, temperature, seed):
    import jax
    from fnnet.models.gpt import generate
    ids = data.encode(prompt)
    greedy = data.decode(generate(net, params, ids, n))
    sampled = data.decode(generate(net, params, ids, n, key=jax.random.key(seed), temperature=temperature))
    return greedy, sampled


def train(args):
    import jax
    import optax
    import fnnet
    from fnnet import text

    data = fnnet.datasets.pydoc_text(max_chars=args.max_chars)
    x, y = text.windows(data.train, args.context)
    xv, yv = text.windows(data.val, args.context)
    bigram, alpha = text.bigram_loss(data)
    net = fnnet.gpt(data.vocab, args.context, args.layers, args.heads, args.dim)
    params = fnnet.init(net, jax.random.key(args.seed))
    n_params = sum(p.size for p in jax.tree.leaves(params))
    steps = args.epochs * -(-x.shape[0] // args.batch_size)
    print(f"data: pydoc_text, {len(data.train)} train / {len(data.val)} val characters, vocab {data.vocab}; "
          f"{x.shape[0]} windows of {args.context}")
    print(f"model: gpt(layers={args.layers}, heads={args.heads}, dim={args.dim}, context={args.context}), "
          f"{n_params} params; adamw lr {args.lr} cosine over {steps} steps, batch {args.batch_size}")
    print(f"bigram baseline (add-{alpha:.3g}, counted on train): val {bigram:.4f} nats/char")
    opt = optax.adamw(optax.cosine_decay_schedule(args.lr, steps), weight_decay=args.weight_decay)

    def report(epoch, history):
        print(f"epoch {epoch}/{args.epochs}: train {history.loss[-1]:.4f}  val {history.val_loss[-1]:.4f} "
              f"nats/char  val next-char accuracy {history.val_accuracy[-1]:.3f}  ({time.time() - t0:.0f} s)",
              flush=True)
    t0 = time.time()
    try:
        params, hist = fnnet.fit(net, params, x, y, optimizer=opt, epochs=args.epochs, batch_size=args.batch_size,
                                 key=jax.random.key(args.seed + 1), grad=args.grad, validation=(xv, yv),
                                 progress=report, chunk_epochs=1)
    except fnnet.DivergedError as e:
        print(f"fnnet gpt: {e}", file=sys.stderr)
        return 1
    val = float(hist.val_loss[-1])
    print(f"trained in {time.time() - t0:.0f} s: val {val:.4f} nats/char vs bigram {bigram:.4f} "
          f"(bigram - gpt = {bigram - val:+.4f})")
    if args.save:
        fnnet.save(args.save, net, params)
        print(f"saved {args.save}")
    if args.sample > 0:
        greedy, sampled = _samples(net, params, data, args.prompt, args.sample, args.temperature, args.seed)
        print(f"--- greedy ---\n{greedy}\n--- temperature {args.temperature} ---\n{sampled}")
    return 0


def sample(args):
    import fnnet
    net, params = fnnet.load(args.checkpoint)
    data = fnnet.datasets.pydoc_text()
    if data.vocab != net.layers[0].encoder.vocab:
        print(f"fnnet gpt sample: the checkpoint's vocabulary ({net.layers[0].encoder.vocab}) is not "
              f"pydoc_text's ({data.vocab})", file=sys.stderr)
        return 2
    greedy, sampled = _samples(net, params, data, args.prompt, args.chars, args.temperature, args.seed)
    print(sampled if args.temperature > 0 else greedy)
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return train(args) if args.action == "train" else sample(args)
