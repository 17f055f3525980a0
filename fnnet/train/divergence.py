"""DivergedError and how fit picks the params it carries: the newest with a finite loss;
LossGrowthWarning, the earlier sign: a finite loss that grew by orders of magnitude."""
from __future__ import annotations

import warnings

import jax
import numpy as np

from fnnet.train.loop import LOSS, VAL_LOSS, eval_loss


class DivergedError(FloatingPointError):
    """Training produced a NaN/Inf loss, params or validation loss; nothing trained is lost.

    epoch:     int, the first bad epoch, 0-based and relative to this call (so `history`
               has `epoch` entries; the absolute epoch is initial_epoch + epoch).
    params:    the last good params: those after epoch `epoch - 1`, i.e. what
               fit(..., epochs=epoch) returns (the initial params when epoch == 0).
               Good means finite, with a finite training loss on all of (x, y) and a
               finite validation loss when validation was given; fit evaluates both
               before raising. If even the initial params fail, `params` are the
               initial params and `finite_loss` is False.
    opt_state: the optimizer state that goes with `params`.
    state:     the layer state (BatchNorm's running statistics) that goes with `params`,
               None for nets without stateful layers.
    history:   History of the good epochs 0 .. epoch-1.
    finite_loss: bool, whether `params` passed that check.
    """

    def __init__(self, message, *, epoch, params, opt_state, history, finite_loss=True, state=None):
        super().__init__(message)
        self.epoch, self.params, self.opt_state, self.history = epoch, params, opt_state, history
        self.state = None if state is None or state == () else state
        self.finite_loss = finite_loss


def _good(spec, data, params, state=()):
    """Does `params` have a finite training loss (and validation loss)? Run only on divergence.
    Nets with dropout/batchnorm are judged in eval mode, with their layer state."""
    loss = jax.jit(eval_loss, static_argnums=0)
    ok = bool(np.isfinite(loss(spec.net, params, data.x, data.y, state)))
    if ok and spec.validate:
        ok = bool(np.isfinite(loss(spec.net, params, data.x_val, data.y_val, state)))
    return ok


def diverged(spec, data, carry, bad, initial, table, history):
    """The DivergedError for first bad epoch `bad`, carrying the newest good TrainState.

    Candidates, newest first: the params after epoch bad-1 (carry.now), after bad-2
    (carry.prev); a non-finite loss measured at the start of epoch `bad` can condemn
    the first, a big minibatch step the second."""
    what = (f"loss {table[bad, LOSS]:.4g}"
            + (f", validation loss {table[bad, VAL_LOSS]:.4g}" if spec.validate else "")
            + " or the new params are not finite")
    candidates = [(bad, carry.now)] + ([(bad - 1, carry.prev)] if bad >= 1 else [])
    for good, ts in candidates:
        if _good(spec, data, ts.params, ts.state):
            kept = f"the params after epoch {good - 1}" if good else "the initial params"
            why = what if good == bad else (f"the params it produced have a non-finite loss "
                                            f"({table[bad, LOSS]:.4g}, measured in epoch {bad})")
            return DivergedError(
                f"fit: training diverged at epoch {good} (0-based): {why}; the error's .params "
                f"are {kept} (finite training{' and validation' if spec.validate else ''} loss) and "
                f".history the {good} good epochs (try a smaller learning rate)",
                epoch=good, params=ts.params, opt_state=ts.opt_state, state=ts.state,
                history=jax.tree.map(np.copy, history(good)))
    return DivergedError(
        f"fit: training diverged at epoch {bad} (0-based): {what}, and no earlier params kept "
        f"have a finite loss either; the error's .params are the initial params, whose loss is "
        f"not finite (check the data's scale and the initialization)",
        epoch=0, params=initial[0], state=initial[2] if len(initial) > 2 else None,
        opt_state=spec.optimizer.init(initial[0]) if initial[1] is None else initial[1],
        history=jax.tree.map(np.copy, history(0)), finite_loss=False)


GROWTH = 100.0   # a training loss this many times its first epoch's is diverging


class LossGrowthWarning(RuntimeWarning):
    """fit's training loss grew to more than GROWTH (100) times its first epoch's value while
    still finite: training is diverging (typically a learning rate too large) and will likely
    end in DivergedError. Raised once per fit call, between compiled chunks."""


def warn_growth(table, start, active, stacklevel=5):
    """After fit copied a chunk's records into `table` rows [start, start + active): warn
    (LossGrowthWarning) when the first epoch whose finite loss exceeds both GROWTH times the
    lowest loss before it and epoch 0's loss lies in this chunk, so each fit call warns at
    most once. (Above epoch 0's: a loss that fell to ~0 and wobbles is not diverging.)
    Reads host values only, nothing on the device.

    table: [epochs, 4] NumPy records, column LOSS the per-epoch training loss; epochs are
    0-based and relative to the fit call, as in History and DivergedError.
    stacklevel: 5 names the caller of fit (warn_growth <- collect <- _run <- fit <- user).
    """
    loss = table[:start + active, LOSS].astype(np.float64)
    finite = np.where(np.isfinite(loss), loss, np.inf)
    low = np.minimum.accumulate(finite)                   # lowest finite loss up to each epoch
    before = np.concatenate([[np.inf], low[:-1]])         # ... strictly before it
    grown = np.flatnonzero(np.isfinite(loss) & (before > 0) & (loss > GROWTH * before)
                           & (loss > finite[0]))
    if grown.size and start <= grown[0]:
        e = int(grown[0])
        m = int(np.flatnonzero(finite[:e] == before[e])[0])
        warnings.warn(f"fit: the training loss grew from {loss[m]:.4g} (epoch {m}) to {loss[e]:.4g} "
                      f"(epoch {e}), more than {GROWTH:g} times: training is diverging and will "
                      f"likely end in DivergedError (try a smaller learning rate)",
                      LossGrowthWarning, stacklevel=stacklevel)
