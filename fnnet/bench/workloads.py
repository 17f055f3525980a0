"""The benchmark's workloads: data, shared initial weights, step counts and FLOPs.

Every system trains the same network from the same initial weights (drawn once here
in float64 and cast to each system's dtype) on the same data, with the same optimizer,
steps and batches, so their final losses must agree (up to float rounding): the
benchmark checks what it times.

FLOPs are counted analytically from the dense layers only (activations, loss and the
optimizer update are not counted):
    forward  = 2 · rows · Σ_layers d_in · d_out
    backward = 2 · forward        (dL/dW and dL/dx of every layer)
    per run  = 3 · forward · epochs, rows = every training example once per epoch.
The backward never needs dL/dx of the first layer, so the work actually required is
smaller by 2 · rows · d_0 · d_1 per epoch; `needed_flops` gives that count too.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class Workload:
    """One training job. sizes: [d_in, h_1, ..., d_out]; batch_size None = full batch.

    Minibatches are taken in data order, the n % batch_size left-over rows make one more,
    smaller step (as fnnet.fit does), so each epoch sees every example exactly once.
    """
    name: str
    title: str
    sizes: tuple
    activation: str              # hidden layers: "sigmoid" or "relu"; output: logits + softmax CE
    optimizer: str               # "sgd" or "adam"
    lr: float
    epochs: int
    batch_size: Optional[int]
    l2: float
    init: str                    # "normal": N(0, 1) as the seeds; "he_normal": N(0, 2 / fan_in)
    load: Callable               # () -> (x float64 [n, d_in], labels int [n])
    slow_steps: Optional[int] = None   # NumPy/reference: time this many steps, extrapolate
    origin: str = ""
    dtypes: tuple = ("float32", "float64")   # float64 rows only where meaningful
    # Hooks for workloads that are not plain MLPs (registered by other topics, see register):
    systems: Optional[tuple] = None    # systems that can run it (None: all of cli.SYSTEMS)
    network: Optional[Callable] = None  # () -> fnnet.Network (None: mlp of sizes/activation);
                                        # JAX rows then draw params with fnnet.init(net, key(0))
    forward_flops: Optional[int] = None  # forward FLOPs per row (None: 2·Σ d_in·d_out)
    bf16_row: bool = False             # also time fnnet with bfloat16 matmuls (opt-in option)
    target: str = "onehot"             # y: one-hot rows [n, k] (nets: workloads_nets.py)
    default: bool = True               # part of the default `fnnet bench` run
    group: str = ""                    # an alias naming several workloads (`--workloads layers`)
    kind = "mlp"                       # class attribute: the CLI's dispatch (workloads_nets: "net")

    def data(self):
        """(x [n, d_in] float64, onehot [n, k] float64), cached per workload."""
        return _data(self)

    @property
    def n(self):
        return self.data()[0].shape[0]

    @property
    def batch(self):
        return self.n if self.batch_size is None else min(self.batch_size, self.n)

    @property
    def steps_per_epoch(self):
        return math.ceil(self.n / self.batch)

    @property
    def steps(self):
        return self.epochs * self.steps_per_epoch

    @property
    def forward_flops_per_row(self):
        if self.forward_flops is not None:
            return self.forward_flops
        return 2 * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def runs(self, system):
        return self.systems is None or system in self.systems

    @property
    def flops(self):
        """Model FLOPs of the whole run: 3 · 2 · rows · Σ d_in·d_out · epochs."""
        return 3 * self.forward_flops_per_row * self.n * self.epochs

    @property
    def needed_flops(self):
        """`flops` less the first layer's dL/dx, which no system computes."""
        return self.flops - 2 * self.sizes[0] * self.sizes[1] * self.n * self.epochs

    def batches(self):
        """[(start, size)] of one epoch's steps, in data order."""
        b, n = self.batch, self.n
        return [(s, min(b, n - s)) for s in range(0, n, b)]

    def init_params(self, seed=0):
        """[(w [d_in, d_out], b [d_out])] float64; the same for every system."""
        rs = np.random.RandomState(seed)
        params = []
        for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:]):
            w = rs.randn(d_in, d_out)                       # the seeds' np.random.randn
            if self.init == "he_normal":
                w = w * math.sqrt(2.0 / d_in)
            params.append((w, np.zeros(d_out)))
        return params

    def describe(self):
        arch = "-".join(map(str, self.sizes))
        batch = "full batch" if self.batch_size is None else f"batch {self.batch_size}"
        l2 = f" + L2 {self.l2:g}" if self.l2 else ""
        return (f"{arch} {self.activation}/softmax CE{l2}, {self.optimizer.upper()} lr {self.lr:g}, "
                f"{self.n} rows, {batch}, {self.epochs} epoch(s) = {self.steps} steps, "
                f"{self.init} init")


_CACHE = {}


def _data(w: Workload):
    key = (w.name, w.load)
    if key not in _CACHE:
        x, labels = w.load()
        x = np.ascontiguousarray(x, dtype=np.float64)
        k = w.sizes[-1]
        onehot = np.zeros((len(labels), k))
        onehot[np.arange(len(labels)), labels] = 1.0
        _CACHE[key] = (x, onehot)
    return _CACHE[key]


def _digits():
    from fnnet.datasets import digits
    x, y, _, _ = digits(dtype=np.float64)                  # seed 001: dig.data / 16, split 20
    return x, y


def _blobs():
    from fnnet.datasets import blobs
    x, y, _, _ = blobs()                                   # seed 002 cast its features to float32
    return x.astype(np.float64), y


def _synthetic(rows, d_in, k, seed=0):
    """Gaussian inputs labelled by a fixed random linear teacher (learnable, offline)."""
    def load():
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((rows, d_in), dtype=np.float32)
        teacher = rng.standard_normal((d_in, k), dtype=np.float32)
        return x, np.argmax(x @ teacher, axis=1)
    load.__qualname__ = f"synthetic_{rows}x{d_in}"
    return load


_SYN_FULL = _synthetic(60_000, 784, 10)
_SYN_QUICK = _synthetic(1_024, 784, 10)

FULL, QUICK = {}, {}


def register(full, quick=None):
    """Add a workload to `fnnet bench`: full (the real run) and quick (seconds, for tests;
    default: the full one). Other topics register theirs from this file, e.g.

        register(Workload("CNN1", ...), dataclasses.replace(..., epochs=1))
    """
    if full.name in FULL:
        raise ValueError(f"workload {full.name!r} is already registered")
    FULL[full.name] = full
    QUICK[full.name] = quick if quick is not None else full
    return full


def names(kind=None):
    """Every registered workload's name (kind "mlp" or "net": only those)."""
    return tuple(n for n, w in FULL.items() if kind is None or w.kind == kind)


def default_names():
    """What `fnnet bench` runs without --workloads: W1-W4, CNN, GPT (not the L-* layers)."""
    return tuple(n for n, w in FULL.items() if w.default)


def groups():
    """{alias: names}, e.g. {"layers": ("L-conv", ...)}."""
    out = {}
    for n, w in FULL.items():
        if w.group:
            out.setdefault(w.group, ())
            out[w.group] += (n,)
    return out


def expand(text):
    """"W1,layers" -> ["W1", "L-conv", ...]: names and aliases, in order, without repeats.
    An unknown name is a ValueError listing the known ones."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    known, alias = names(), groups()
    bad = [t for t in items if t not in known and t not in alias]
    if bad or not items:
        raise ValueError(f"unknown workload(s) {bad or text!r}; known: {', '.join(known)}; "
                         f"aliases: {', '.join(f'{a} (= {len(v)} workloads)' for a, v in alias.items())}")
    out = []
    for t in items:
        for n in alias.get(t, (t,)):
            if n not in out:
                out.append(n)
    return out


W1 = register(
    Workload("W1", "seed 001 digits", (64, 128, 128, 10), "sigmoid", "sgd", 0.5, 1500, None,
             0.0, "normal", _digits, origin="seed 001 (NumPy full-batch loop)"))
QUICK["W1"] = dataclasses.replace(W1, epochs=4)
W2 = register(
    Workload("W2", "seed 002 blobs", (2, 5, 3), "relu", "sgd", 0.01, 5001, None, 0.01,
             "normal", _blobs, origin="seed 002 (NumPy full-batch loop, 5001 steps)"))
QUICK["W2"] = dataclasses.replace(W2, epochs=6, dtypes=("float32",))
W3 = register(
    Workload("W3", "wide MLP, synthetic", (784, 1024, 1024, 10), "relu", "adam", 1e-3, 1, 256,
             0.0, "he_normal", _SYN_FULL, slow_steps=24, origin="MNIST-sized, synthetic data",
             dtypes=("float32",), bf16_row=True))
QUICK["W3"] = dataclasses.replace(W3, sizes=(784, 64, 64, 10), load=_SYN_QUICK, slow_steps=2)
# Deep ReLU, 20 hidden layers of 512 at batch 1024: where caching less than autodiff shows.
W4 = register(
    Workload("W4", "deep ReLU, synthetic", (512,) * 21 + (10,), "relu", "sgd", 0.01, 1, 1024,
             0.0, "he_normal", _synthetic(8_192, 512, 10, seed=1), slow_steps=2,
             origin="20 x 512 ReLU layers (activation memory)", dtypes=("float32",)))
QUICK["W4"] = dataclasses.replace(W4, sizes=(64,) * 7 + (10,), batch_size=256,
                                  load=_synthetic(1_024, 64, 10, seed=1))


def get(names, quick=False):
    table = QUICK if quick else FULL
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; known: {', '.join(table)}")
    return [table[n] for n in names]

