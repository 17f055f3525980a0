#!/usr/bin/env python
"""The CNN on the bundled 8x8 digits, trained by fnnet.fit with the hand-written backward.

fnnet.datasets.digits() gives [n, 64] rows of x/16 (the seed-001 split: 1617 train, 180
test); they are reshaped to images [n, 8, 8, 1]. For each key k = 0..K-1 the net is
initialised with jax.random.key(k) and trained with Adam, minibatches shuffled by
fold_in(key, 1); the script prints each key's test accuracy, the mean, min and max, and
the seconds each run took (wall clock, including compilation).

    python scripts/cnn_digits.py --keys 5
    python scripts/cnn_digits.py --keys 1 --epochs 3      # a smoke run
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnnet


def run(key, epochs, batch, lr, dropout, batchnorm, dtype=jnp.float32):
    x_train, y_train, x_test, y_test = fnnet.datasets.digits()
    x_train = jnp.asarray(x_train.reshape(-1, 8, 8, 1), dtype)
    x_test = jnp.asarray(x_test.reshape(-1, 8, 8, 1), dtype)
    net = fnnet.cnn((8, 8, 1), classes=10, dropout=dropout, batchnorm=batchnorm)
    params = fnnet.init(net, jax.random.key(key), dtype)
    kw = {}
    if batchnorm:
        kw["state"] = fnnet.init_state(net, dtype)
    t0 = time.perf_counter()
    out = fnnet.fit(net, params, x_train, y_train, optimizer=optax.adam(lr), epochs=epochs,
                    batch_size=batch, key=jax.random.fold_in(jax.random.key(key), 1), **kw)
    params = out[0]
    state = out[2] if batchnorm else None
    seconds = time.perf_counter() - t0
    pred = fnnet.predict(net, params, x_test, **({"state": state} if batchnorm else {}))
    pred = pred[0] if batchnorm else pred
    acc = float(np.mean(np.argmax(np.asarray(pred), axis=1) == y_test))
    return acc, seconds, net


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--batchnorm", action="store_true")
    a = ap.parse_args(argv)
    accs = []
    for k in range(a.keys):
        acc, sec, net = run(k, a.epochs, a.batch, a.lr, a.dropout, a.batchnorm)
        accs.append(acc)
        print(f"key {k}: test accuracy {acc:.2%} ({round(acc * 180)}/180), {sec:.1f} s", flush=True)
    print(f"{net}\nepochs {a.epochs}, batch {a.batch}, adam {a.lr}: mean {np.mean(accs):.2%}, "
          f"min {min(accs):.2%}, max {max(accs):.2%} over {a.keys} keys")


if __name__ == "__main__":
    main()
