"""What `fnnet.fit` hands back: `FitResult(params, history, opt_state, state, epoch)` and the
per-epoch `History` inside it (also carried by TrainingInterrupted and DivergedError)."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np


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


class FitResult(NamedTuple):
    """What `fit` returns (and TrainingInterrupted / a `checkpoint` callable receive).

    params:    the trained params, the tree fnnet.init built.
    history:   History of the epochs this call ran.
    opt_state: the optimizer state after them (pass it back as fit(opt_state=) to resume).
    state:     the layer state (BatchNorm's running statistics); None for nets without any.
    epoch:     absolute epochs trained: initial_epoch + the epochs this call ran
               (fit(initial_epoch=) and fnnet.save(epoch=) take it).
    """
    params: Any
    history: History
    opt_state: Any
    state: Any
    epoch: int
