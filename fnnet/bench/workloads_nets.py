"""Workloads that are not MLPs: the CNN, the GPT, and one per new layer (L-*).

Each is timed by two systems only (systems_nets.py): fnnet.fit with the hand-written
backward (grad="manual") and fnnet.fit(grad="autodiff"), jax.grad of the same forward,
from the same params, with the same key (so the same shuffled batches and dropout masks)
and the same layer state. The NumPy, reference and torch systems have no such nets: their
rows say "not applicable".

Targets (the `target` field): "labels" (integer class ids [n], image nets and the per-layer
classifiers) or "tokens" (the GPT's [n, T] next-token ids). MLP workloads (workloads.py)
take one-hot rows ("onehot").

    CNN        fnnet.cnn() on the digits as [n, 8, 8, 1], Adam 1e-3, batch 64
    GPT        fnnet.gpt(103, 64, 2 layers, 4 heads, dim 64) (the README model) on windows
               of fnnet.datasets.pydoc_text(), AdamW 1e-3, batch 32
    L-<layer>  one layer (conv, pools, norms, GELU, recurrent, ...) in a small digits classifier (images [n, 8, 8, 1]
               for the image layers, rows [n, 64] for the others), Adam 1e-3, batch 64;
               run only when named (`--workloads L-conv,L-gelu` or `--workloads layers`).
               L-relu is the control: Dense(256) + ReLU, the part every row net shares.
               L-rnn, L-lstm, L-gru read each digit as a sequence [n, 64, 1] (T = 64);
               L-convtranspose and L-groupnorm follow a Conv2D on the images.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from fnnet.bench.workloads import register

IMG = (8, 8, 1)


@dataclasses.dataclass(frozen=True)
class NetWorkload:
    """network() -> fnnet.Network; load() -> (x [n, *in_shape] float32 or int32 ids, y: labels [n]
    or tokens [n, T] int32); optimizer() -> an optax transformation."""
    name: str
    title: str
    network: Callable
    load: Callable
    target: str                  # "labels" or "tokens"
    optimizer: Callable
    opt_name: str
    epochs: int
    batch_size: int
    origin: str = ""
    default: bool = True         # part of the default `fnnet bench` run (L-*: only when named)
    group: str = ""              # "layers": the L-* workloads (`--workloads layers`)
    recompute_network: Optional[Callable] = None   # GPT: the same net with recompute=True
    attention_shape: Optional[tuple] = None        # GPT: (B, H, T, C) of the attention-alone memory
    eval_rows: int = 1024        # final loss: the first rows of the training data, eval mode
    kind = "net"                 # class attribute: the CLI's dispatch (MLPs: "mlp")

    def data(self):
        return _data(self)

    @property
    def n(self):
        return self.data()[0].shape[0]

    @property
    def batch(self):
        return min(self.batch_size, self.n)

    @property
    def steps(self):
        return self.epochs * math.ceil(self.n / self.batch)

    def describe(self):
        x, y = self.data()
        return (f"x {list(x.shape)} {x.dtype}, {self.target} {list(y.shape)}, "
                f"{self.opt_name}, batch {self.batch}, {self.epochs} epoch(s) = {self.steps} steps")


_CACHE = {}


def _data(w):
    key = (w.name, w.load)
    if key not in _CACHE:
        x, y = w.load()
        _CACHE[key] = (np.ascontiguousarray(x), np.ascontiguousarray(y))
    return _CACHE[key]


def _digits(shape, rows=None):
    def load():
        from fnnet.datasets import digits
        x, y, _, _ = digits(dtype=np.float32)
        x, y = x[:rows], y[:rows]
        return x.reshape(-1, *shape).astype(np.float32), y.astype(np.int32)
    load.__qualname__ = f"digits_{'x'.join(map(str, shape))}_{rows}"
    return load


def _pydoc(context, windows):
    def load():
        from fnnet import text
        data = text.pydoc_text(max_chars=int(context * (windows + 2) / 0.85))   # 10% goes to val
        x, y = text.windows(data.train, context)
        return x[:windows], y[:windows]
    load.__qualname__ = f"pydoc_{context}x{windows}"
    return load


def _adam():
    import optax
    return optax.adam(1e-3)


def _adamw():
    import optax
    return optax.adamw(1e-3)


def _cnn(**kw):
    def make():
        import fnnet
        return fnnet.cnn(**kw)
    return make


def _gpt(recompute=False, **size):
    def make():
        import fnnet
        return fnnet.gpt(**size, recompute=recompute)
    return make


GPT_SIZE = dict(vocab=103, context=64, layers=2, heads=4, dim=64)        # the README model
GPT_QUICK = dict(vocab=103, context=16, layers=1, heads=2, dim=16)       # the vocabulary is the corpus's

CNN = register(
    NetWorkload("CNN", "fnnet.cnn() on digits", _cnn(), _digits(IMG), "labels", _adam, "Adam 1e-3", 3, 64,
                origin="README's CNN (Conv 32 - pool - Conv 64 - pool - Dense 128 - 10)"),
    NetWorkload("CNN", "fnnet.cnn(conv=(8, 16), dense=(32,)) on 256 digits", _cnn(conv=(8, 16), dense=(32,)),
                _digits(IMG, 256), "labels", _adam, "Adam 1e-3", 1, 64, origin="quick"))
GPT = register(
    NetWorkload("GPT", "fnnet.gpt(103, 64, 2, 4, 64) on pydoc text", _gpt(**GPT_SIZE), _pydoc(64, 2048),
                "tokens", _adamw, "AdamW 1e-3", 1, 32, origin="README's GPT (110,784 params), 2048 windows",
                recompute_network=_gpt(True, **GPT_SIZE), attention_shape=(8, 4, 256, 128), eval_rows=512),
    NetWorkload("GPT", "fnnet.gpt(103, 16, 1, 2, 16) on pydoc text", _gpt(**GPT_QUICK), _pydoc(16, 64),
                "tokens", _adamw, "AdamW 1e-3", 1, 8, origin="quick",
                recompute_network=_gpt(True, **GPT_QUICK), attention_shape=(2, 2, 64, 32)))


def _layer_net(name, quick):
    """One layer in a small digits classifier (the nets scripts/layer_step_ratios.py used to time)."""
    import fnnet as F
    c, d = (8, 32) if quick else (32, 256)
    head = (F.Flatten(), F.Dense(10))
    conv = F.Conv2D(c, 3, padding="same")
    image = {"conv": (conv, F.Relu()), "maxpool": (conv, F.MaxPool2D(2)), "avgpool": (conv, F.AvgPool2D(2)),
             "batchnorm": (conv, F.BatchNorm(), F.Relu())}
    rows = {"relu": (F.Relu(),), "dropout": (F.Relu(), F.Dropout(0.3)), "elu": (F.ELU(),), "silu": (F.SiLU(),),
            "softplus": (F.Softplus(),), "gelu": (F.GELU(),), "layernorm": (F.LayerNorm(), F.Relu()),
            "rmsnorm": (F.RMSNorm(), F.Relu())}
    if name in image:
        return F.Network((*image[name], *head), "softmax_cross_entropy", IMG)
    return F.Network((F.Dense(d), *rows[name], F.Dense(10)), "softmax_cross_entropy", (64,))


LAYERS = ("conv", "maxpool", "avgpool", "batchnorm", "dropout", "elu", "silu", "softplus", "gelu",
          "layernorm", "rmsnorm", "relu")   # relu: the control, Dense(256) + ReLU, what the row nets share
IMAGE_LAYERS = ("conv", "maxpool", "avgpool", "batchnorm")

for _name in LAYERS:
    _shape = IMG if _name in IMAGE_LAYERS else (64,)
    _what = ("Conv2D(32, 3) + " if _name in IMAGE_LAYERS else "Dense(256) + ") + _name
    _epochs = 10 if _name in IMAGE_LAYERS else 40     # runs of ~0.1-0.5 s: fit's fixed cost stays small
    register(
        NetWorkload(f"L-{_name}", f"{_what} digits classifier",
                    lambda n=_name: _layer_net(n, False), _digits(_shape), "labels", _adam,
                    "Adam 1e-3", _epochs, 64, origin="per-layer net", default=False,
                    group="layers"),
        NetWorkload(f"L-{_name}", f"{_what} digits classifier (quick: narrower, 256 rows)",
                    lambda n=_name: _layer_net(n, True), _digits(_shape, 256), "labels", _adam,
                    "Adam 1e-3", 1, 64, origin="quick", default=False, group="layers"))


# The course-zoo layers. L-rnn/L-lstm/L-gru read each digit as a sequence of its 64 pixels
# ([n, 64, 1], T = 64: "sequential digits") and classify from the last state. What the
# recurrent backward keeps and recomputes is in fnnet/layers/recurrent.py's docstring (the
# entering states and gate activations kept; tanh(c_t) recomputed; no matmul redone).
# L-convtranspose upsamples the conv's 8x8 maps to 16x16; L-groupnorm sits where BatchNorm does.
SEQ = (64, 1)
ZOO_LAYERS = ("rnn", "lstm", "gru", "convtranspose", "groupnorm")


def _zoo_net(name, quick):
    import fnnet as F
    c, h = (8, 16) if quick else (32, 64)
    if name in ("rnn", "lstm", "gru"):
        cell = {"rnn": F.RNN, "lstm": F.LSTM, "gru": F.GRU}[name](h, return_sequences=False)
        return F.Network((cell, F.Dense(10)), "softmax_cross_entropy", SEQ)
    conv = F.Conv2D(c, 3, padding="same")
    mid = {"convtranspose": (F.ConvTranspose2D(c, 3, 2, "same"), F.Relu()),
           "groupnorm": (F.GroupNorm(4), F.Relu())}[name]
    return F.Network((conv, *mid, F.Flatten(), F.Dense(10)), "softmax_cross_entropy", IMG)


# runs of a few seconds: a 16x16x32 transposed conv step took ~0.4 s on the loaded 2-core CPU
_ZOO_EPOCHS = {"rnn": 3, "lstm": 3, "gru": 3, "convtranspose": 1, "groupnorm": 10}

for _name in ZOO_LAYERS:
    _seq = _name in ("rnn", "lstm", "gru")
    _what = (f"{_name.upper()}(64) over 64 pixels, last state + Dense(10)" if _seq
             else f"Conv2D(32, 3) + {_name}")
    register(
        NetWorkload(f"L-{_name}", f"{_what} digits classifier", lambda n=_name: _zoo_net(n, False),
                    _digits(SEQ if _seq else IMG), "labels", _adam, "Adam 1e-3", _ZOO_EPOCHS[_name], 64,
                    origin="the course-zoo layers' per-layer net", default=False, group="layers"),
        NetWorkload(f"L-{_name}", f"{_what} digits classifier (quick: narrower, 256 rows)",
                    lambda n=_name: _zoo_net(n, True), _digits(SEQ if _seq else IMG, 256), "labels", _adam,
                    "Adam 1e-3", 1, 64, origin="quick", default=False, group="layers"))
