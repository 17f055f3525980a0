#!/usr/bin/env python
"""The CNN on the bundled 8x8 digits, trained by fnnet.fit with the hand-written backward.

fnnet.datasets.digits() gives [n, 64] rows of x/16 (the seed-001 split: 1617 train, 180
test); they are reshaped to images [n, 8, 8, 1]. For each key k = 0..K-1 the net is
initialised with jax.random.key(k) and trained with Adam, minibatches shuffled by
fold_in(key, 1); the script prints each key's test accuracy, the mean, min and max, and
the seconds each run took (wall clock, including compilation).

    python scripts/cnn_digits.py --keys 5
    python scripts/cnn_digits.py --keys 1 --epochs 3      # a smoke run
    python scripts/cnn_digits.py --step-ratio --epochs 2  # fit step: hand-written vs jax.grad

--step-ratio times fnnet.fit with grad="manual" (the hand-written backward) and
grad="autodiff" (jax.grad of the same loss) on the same net, data and batches: each is
run once to compile, then timed on a second, identical call (median of --repeats).
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
    params, state = out.params, out.state
    seconds = time.perf_counter() - t0
    pred = fnnet.predict(net, params, x_test, **({"state": state} if batchnorm else {}))
    pred = pred[0] if batchnorm else pred
    acc = float(np.mean(np.argmax(np.asarray(pred), axis=1) == y_test))
    return acc, seconds, net


def step_ratio(epochs, batch, repeats, dropout, batchnorm, dtype=jnp.float32):
    """Median seconds per fit step for grad='manual' and grad='autodiff', and their ratio."""
    x_train, y_train, _, _ = fnnet.datasets.digits()
    x = jnp.asarray(x_train.reshape(-1, 8, 8, 1), dtype)
    net = fnnet.cnn((8, 8, 1), classes=10, dropout=dropout, batchnorm=batchnorm)
    params = fnnet.init(net, jax.random.key(0), dtype)
    kw = {"state": fnnet.init_state(net, dtype)} if batchnorm else {}
    steps = epochs * -(-x.shape[0] // batch)
    times = {}
    opt = optax.adam(1e-3)          # one object: fit's compiled loop is cached per optimizer
    for grad in ("manual", "autodiff"):
        def once():
            t = time.perf_counter()
            out = fnnet.fit(net, params, x, y_train, optimizer=opt, epochs=epochs,
                            batch_size=batch, key=jax.random.key(1), grad=grad, **kw)
            jax.block_until_ready(out.params)
            return time.perf_counter() - t
        once()                                            # compile
        times[grad] = float(np.median([once() for _ in range(repeats)])) / steps
    print(f"{net}\nfit step ({steps} steps of batch {batch}, median of {repeats}): hand-written "
          f"{times['manual'] * 1e3:.2f} ms, jax.grad {times['autodiff'] * 1e3:.2f} ms, "
          f"ratio {times['manual'] / times['autodiff']:.2f}")
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--batchnorm", action="store_true")
    ap.add_argument("--step-ratio", action="store_true", help="time fit steps, hand-written vs jax.grad")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    if a.step_ratio:
        step_ratio(a.epochs, a.batch, a.repeats, a.dropout, a.batchnorm)
        return
    accs = []
    for k in range(a.keys):
        acc, sec, net = run(k, a.epochs, a.batch, a.lr, a.dropout, a.batchnorm)
        accs.append(acc)
        print(f"key {k}: test accuracy {acc:.2%} ({round(acc * 180)}/180), {sec:.1f} s", flush=True)
    print(f"{net}\nepochs {a.epochs}, batch {a.batch}, adam {a.lr}: mean {np.mean(accs):.2%}, "
          f"min {min(accs):.2%}, max {max(accs):.2%} over {a.keys} keys")


if __name__ == "__main__":
    main()
