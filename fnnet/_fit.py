"""Training: `fit(net, params, x, y, optimizer=..., epochs=...) -> (params, history)`.

    params, hist = fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=100,
                       batch_size=32, key=jax.random.key(0), validation=(x_val, y_val))

Gradients come from the hand-written `value_and_grad` (grad="autodiff" swaps in
jax.value_and_grad of `loss`, for comparison only). The epochs run in compiled chunks
(see fnnet/_fit_loop.py); the host only wakes between chunks, to report progress and
to raise DivergedError when the device flagged a non-finite epoch.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _fit_progress, _network
from fnnet._fit_loop import (LOSS, OK, STATUS, VAL_ACCURACY, VAL_LOSS, Carry, Data, LoopSpec,
                             run_chunk)
from fnnet._validate import check_finite

GRAD_MODES = ("manual", "autodiff")
PROGRESS_UPDATES = 100   # with progress on, chunk_epochs defaults to ceil(epochs / this)


class History(NamedTuple):
    """Per-epoch metrics, NumPy arrays [epochs_run] of the params' dtype.

    loss: mean over the epoch's steps of each step's loss (L2 term included),
      measured on the step's batch before its update, as the seeds print it;
      for full batch, loss[e] == fnnet.loss at the params after epoch e-1.
    val_loss, val_accuracy: on `validation` with the params after each epoch
      (fnnet.loss and fnnet.accuracy); None when fit got no validation data.
    """
    loss: np.ndarray
    val_loss: Optional[np.ndarray] = None
    val_accuracy: Optional[np.ndarray] = None


class DivergedError(FloatingPointError):
    """Training produced a NaN/Inf loss or NaN/Inf params; nothing trained is lost.

    epoch:     int, the first bad epoch, 0-based (so `history` has `epoch` entries).
    params:    the last finite params: those after epoch `epoch - 1`, i.e. what
               fit(..., epochs=epoch) returns (the initial params when epoch == 0).
    opt_state: the optimizer state that goes with `params`.
    history:   History of the good epochs 0 .. epoch-1.
    """

    def __init__(self, message, *, epoch, params, opt_state, history):
        super().__init__(message)
        self.epoch, self.params, self.opt_state, self.history = epoch, params, opt_state, history


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo \
            or (hi is not None and value > hi):
        bound = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise ValueError(f"fit: {name} must be {bound}, got {value!r}")
    return int(value)


def _check_params(net, params):
    try:
        _network._check_params(net, params)
    except (ValueError, TypeError) as e:
        raise type(e)(f"fit: {e}") from e
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        check_finite("fit", "params" + jax.tree_util.keystr(path), leaf)
    return jax.tree.map(jnp.asarray, params)


def _check_data(net, params, x, y, what):
    """Shapes, dtypes, NaN/Inf and label ranges, before anything is compiled."""
    try:
        if np.ndim(x) == 0 or np.shape(x)[0] == 0:
            raise ValueError(f"x is empty (shape {np.shape(x)}); need at least one example")
        x = _network._check_x(net, params, x)
        y = jnp.asarray(y)
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} examples but y has shape {tuple(y.shape)}")
        _network._check_y(net, x, y)       # the loss's own `prepare`: shape, range, NaN/Inf
    except (ValueError, TypeError) as e:
        raise type(e)(f"fit: {what}: {e}") from e
    return x, y


def _check_key(key):
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if (typed and key.shape == ()) or (not typed and dtype == np.uint32 and key.ndim == 1):
        return key
    raise TypeError(f"fit: key must be a jax PRNG key such as jax.random.key(0), got {key!r}")


def _copy(tree):
    """Fresh buffers that fit owns (and donates), so the caller's arrays stay valid."""
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


def fit(net, params, x, y, *, optimizer, epochs, batch_size=None, key=None, grad="manual",
        validation=None, progress=None, chunk_epochs=None):
    """Train `params` of `net` on (x, y) -> (params, History).

    x: [n, *in_shape] of the params' dtype (float32 or float64); y: what the net's loss
    takes, e.g. [n, k] targets or, for softmax cross-entropy, integer labels [n].
    optimizer: an optax GradientTransformation, e.g. optax.sgd(0.1).
    epochs: >= 1. batch_size: None = full batch, one step per epoch; 1 = per-sample
      SGD, in data order without a key, reshuffled each epoch with one; k = steps on
      k examples, shuffled each epoch (needs `key`). When k does not divide n, the
      n % k left-over examples make one more, smaller step: no example is dropped.
    key: jax.random.key; epoch e's order is permutation(fold_in(key, e), n), so a run
      of E epochs replays the first E epochs of any longer run with the same key.
    grad: "manual" (fnnet's hand-written backward) or "autodiff" (jax.grad of
      fnnet.loss; a comparison path, not for production use).
    validation: (x_val, y_val), checked like (x, y); adds val_loss/val_accuracy.
    progress: None (silent), True (a progress line on stderr) or
      callable(epochs_done, history_so_far), called after each chunk of epochs.
    chunk_epochs: epochs per compiled chunk; default all of them when progress is
      None, else ceil(epochs / 100). Only the chunk boundaries touch the host.

    Raises ValueError/TypeError on bad input before training, and DivergedError
    (a FloatingPointError carrying the last finite params) if the loss or params
    become NaN/Inf.
    """
    epochs = _check_int("epochs", epochs, 1)
    if grad not in GRAD_MODES:
        raise ValueError(f"fit: grad must be one of {GRAD_MODES}, got {grad!r}")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"fit: optimizer must be an optax GradientTransformation "
                        f"(e.g. optax.sgd(0.1)), got {optimizer!r}")
    report = _fit_progress.make(progress, epochs)
    params = _check_params(net, params)
    x, y = _check_data(net, params, x, y, "training data")
    n = x.shape[0]
    batch = n if batch_size is None else _check_int("batch_size", batch_size, 1, n)
    if key is not None:
        key = _check_key(key)
    elif 1 < batch < n:
        raise ValueError(f"fit: batch_size={batch} < n={n} shuffles the data each epoch and needs "
                         f"an explicit key=jax.random.key(...) (batch_size=None is full batch, "
                         f"batch_size=1 runs in data order without a key)")
    if validation is not None:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise ValueError("fit: validation must be a pair (x_val, y_val)")
        data = Data(x, y, *_check_data(net, params, *validation, "validation data"))
    else:
        data = Data(x, y)
    chunk = epochs if chunk_epochs is None and report is None else \
        math.ceil(epochs / PROGRESS_UPDATES) if chunk_epochs is None else \
        _check_int("chunk_epochs", chunk_epochs, 1)
    spec = LoopSpec(net, optimizer, grad, n, batch, key is not None and batch < n,
                    min(chunk, epochs), validation is not None)
    return _run(spec, params, data, key if spec.shuffle else None, epochs, report)


def _run(spec, params, data, key, epochs, report):
    params = _copy(params)
    carry = Carry(params, _copy(spec.optimizer.init(params)), jnp.int32(-1))
    table = np.full((epochs, 4), np.nan, jax.tree.leaves(params)[0].dtype)  # rows: epochs
    done, bad = 0, None

    def history(upto):
        cols = table[:upto, LOSS], table[:upto, VAL_LOSS], table[:upto, VAL_ACCURACY]
        return History(cols[0], *(cols[1:] if spec.validate else (None, None)))

    def collect(start, active, records):
        """Copy one finished chunk's records to the host; report; find divergence."""
        rows = np.asarray(records)[:active]
        table[start:start + active] = rows
        flagged = np.flatnonzero(rows[:, STATUS] != OK)
        if flagged.size:                      # the first non-OK epoch is the diverged one
            return start + int(flagged[0])
        if report is not None:
            report(start + active, history(start + active))
        return None

    pending = None
    try:
        for start in range(0, epochs, spec.chunk):
            active = min(spec.chunk, epochs - start)
            # Dispatch this chunk before reading the previous one's records, so that the
            # host's reporting overlaps the device's training.
            carry, records = run_chunk(spec, carry, data, key, np.int32(start), np.int32(active))
            if pending is not None and (bad := collect(*pending)) is not None:
                break
            pending = (start, active, records)
        else:
            bad = collect(*pending)
    finally:
        if isinstance(report, _fit_progress.ProgressBar):
            report.close()
    if bad is not None:
        raise DivergedError(
            f"fit: training diverged at epoch {bad} (0-based): loss {table[bad, LOSS]} or the new "
            f"params are not finite; the error's .params are the params after epoch {bad - 1} "
            f"and .history the {bad} good epochs (try a smaller learning rate)",
            epoch=bad, params=carry.params, opt_state=carry.opt_state,
            history=jax.tree.map(np.copy, history(bad)))
    return carry.params, history(epochs)
