#!/usr/bin/env python
"""fnnet.char_lstm on fnnet.datasets.pydoc_text(), trained by fnnet.fit with the hand-written BPTT.

Data and split as `fnnet gpt train` (pydoc_data.topics, contiguous 90/10, non-overlapping
windows of --context characters, each window from a zero LSTM state). Adam with a cosine
decay of --lr over all steps, gradients clipped at global norm 1 (as char-rnn). Prints the
validation loss per epoch, the add-α bigram baseline on the same split, the wall time
(compilation included) with the load average, and a sample.

    python scripts/char_lstm_pydoc.py                   # hidden 256, 4 epochs
    python scripts/char_lstm_pydoc.py --epochs 1 --max-chars 20000   # a smoke run
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import optax

import fnnet
from fnnet import text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-chars", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = fnnet.datasets.pydoc_text(max_chars=args.max_chars)
    x, y = text.windows(data.train, args.context)
    xv, yv = text.windows(data.val, args.context)
    bigram, alpha = text.bigram_loss(data)
    net = fnnet.char_lstm(data.vocab, args.context, args.hidden, args.embed, args.layers)
    params = fnnet.init(net, jax.random.key(args.seed))
    steps = args.epochs * -(-x.shape[0] // args.batch_size)
    print(f"data: {len(data.train)} train / {len(data.val)} val chars, vocab {data.vocab}, {x.shape[0]} windows")
    print(f"model: char_lstm(hidden={args.hidden}, embed={args.embed}, layers={args.layers}), "
          f"{sum(p.size for p in jax.tree.leaves(params))} params; adam {args.lr} cosine over {steps} steps")
    print(f"bigram baseline (add-{alpha:.3g}): val {bigram:.4f} nats/char")
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(args.lr, steps)))
    t0 = time.time()

    def report(epoch, hist):
        print(f"epoch {epoch}/{args.epochs}: train {hist.loss[-1]:.4f}  val {hist.val_loss[-1]:.4f} nats/char  "
              f"({time.time() - t0:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)

    params, hist, *_ = fnnet.fit(net, params, x, y, optimizer=opt, epochs=args.epochs, batch_size=args.batch_size,
                             key=jax.random.key(args.seed + 1), validation=(xv, yv), progress=report,
                             chunk_epochs=1)
    val = float(hist.val_loss[-1])
    print(f"trained in {time.time() - t0:.0f} s (load average {os.getloadavg()}; {os.cpu_count()} cores): "
          f"val {val:.4f} nats/char vs bigram {bigram:.4f}")
    ids = fnnet.generate_lstm(net, params, data.encode("The "), 200, key=jax.random.key(args.seed), temperature=0.8)
    print(data.decode(ids))


if __name__ == "__main__":
    main()
