#!/usr/bin/env python
"""Per new layer: fnnet.fit step time with the hand-written backward vs jax.grad of the same loss.

Each net puts one of issue 8's layers in a small digits classifier (images [n, 8, 8, 1]
for the image layers, rows [n, 64] for the activations). Both grad modes train the same
net from the same params on the same shuffled batches; each is compiled once, then the
two are timed alternately (--repeats rounds) and the medians compared: ratio < 1 means
the hand-written step is faster.

    python scripts/layer_step_ratios.py --epochs 2 --repeats 3
    python scripts/layer_step_ratios.py --only conv maxpool
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnnet

IMG = (8, 8, 1)


def nets():
    F = fnnet
    head = (F.Flatten(), F.Dense(10))
    return {
        "conv": (F.Network((F.Conv2D(32, 3, padding="same"), F.Relu(), *head), "softmax_cross_entropy", IMG), IMG),
        "maxpool": (F.Network((F.Conv2D(32, 3, padding="same"), F.MaxPool2D(2), *head), "softmax_cross_entropy", IMG), IMG),
        "avgpool": (F.Network((F.Conv2D(32, 3, padding="same"), F.AvgPool2D(2), *head), "softmax_cross_entropy", IMG), IMG),
        "batchnorm": (F.Network((F.Conv2D(32, 3, padding="same"), F.BatchNorm(), F.Relu(), *head),
                                "softmax_cross_entropy", IMG), IMG),
        "dropout": (F.Network((F.Dense(256), F.Relu(), F.Dropout(0.3), F.Dense(10)), "softmax_cross_entropy", (64,)), (64,)),
        "elu": (F.Network((F.Dense(256), F.ELU(), F.Dense(10)), "softmax_cross_entropy", (64,)), (64,)),
        "silu": (F.Network((F.Dense(256), F.SiLU(), F.Dense(10)), "softmax_cross_entropy", (64,)), (64,)),
        "softplus": (F.Network((F.Dense(256), F.Softplus(), F.Dense(10)), "softmax_cross_entropy", (64,)), (64,)),
        "cnn (fnnet.cnn)": (F.cnn(), IMG),
    }


def measure(net, shape, epochs, batch, repeats):
    x, y, _, _ = fnnet.datasets.digits()
    x = jnp.asarray(x.reshape(-1, *shape))
    params = fnnet.init(net, jax.random.key(0))
    kw = {}
    if any(callable(getattr(l, "init_state", None)) for l in net.layers):
        kw["state"] = fnnet.init_state(net)
    steps = epochs * -(-x.shape[0] // batch)
    opt = optax.adam(1e-3)          # one object: fit's compiled loop is cached per optimizer

    def once(grad):
        t = time.perf_counter()
        out = fnnet.fit(net, params, x, y, optimizer=opt, epochs=epochs, batch_size=batch,
                        key=jax.random.key(1), grad=grad, **kw)
        jax.block_until_ready(out[0])
        return time.perf_counter() - t

    once("manual"), once("autodiff")                      # compile both
    times = {"manual": [], "autodiff": []}
    for _ in range(repeats):                              # alternate: load changes hit both alike
        for g in times:
            times[g].append(once(g))
    m, a = (float(np.median(times[g])) / steps for g in ("manual", "autodiff"))
    return m, a


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args(argv)
    print(f"fit step, batch {a.batch}, {a.epochs} epochs of digits, median of {a.repeats} alternating runs")
    print(f"{'layer':18s} {'hand-written':>13s} {'jax.grad':>10s} {'ratio':>6s}")
    for name, (net, shape) in nets().items():
        if a.only and not any(o in name for o in a.only):
            continue
        m, ad = measure(net, shape, a.epochs, a.batch, a.repeats)
        print(f"{name:18s} {m * 1e3:10.2f} ms {ad * 1e3:7.2f} ms {m / ad:6.2f}", flush=True)


if __name__ == "__main__":
    main()
