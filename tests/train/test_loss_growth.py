"""LossGrowthWarning (fnnet/train/divergence.py): fit warns once when the finite training
loss grows by orders of magnitude, before it turns non-finite (DivergedError)."""
import warnings

import jax
import numpy as np
import optax
import pytest

import fnnet
from fnnet.train.divergence import GROWTH, warn_growth
from fnnet.train.loop import LOSS

NET = fnnet.mlp([3, 4, 2], activation="tanh")


def _fit(lr, **kw):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 2)).astype(np.float32)
    params = fnnet.init(NET, jax.random.key(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fnnet.fit(NET, params, x, y, optimizer=optax.sgd(lr), epochs=30, **kw)
            error = None
        except fnnet.DivergedError as e:
            error = e
    return [w for w in caught if issubclass(w.category, fnnet.LossGrowthWarning)], error


@pytest.mark.parametrize("chunk_epochs", [None, 2])
def test_a_loss_that_explodes_warns_once_naming_the_epochs_then_diverges(chunk_epochs):
    # sgd 3.0, full batch: 1.45, 2.27, 6.28, 49.9, 1836 (epoch 4), ... then NaN/Inf
    grown, error = _fit(3.0, chunk_epochs=chunk_epochs)
    assert error is not None and error.epoch > 4                 # it did end non-finite, later
    assert len(grown) == 1
    assert grown[0].filename == __file__                         # points at the fit call
    message = str(grown[0].message)
    assert "fit: the training loss grew from 1.447 (epoch 0) to 1836 (epoch 4), more than 100 times" \
        in message and "smaller learning rate" in message


def test_a_healthy_or_noisy_run_does_not_warn():
    for lr in (0.3, 1.5):                                        # 1.5 oscillates but stays near 1
        grown, error = _fit(lr)
        assert error is None and grown == []


def _table(losses):
    table = np.full((len(losses), 4), np.nan)
    table[:, LOSS] = losses
    return table


def test_the_rule_on_history_values():
    def warns(losses, start=0):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_growth(_table(losses), start, len(losses) - start)
        return [str(w.message) for w in caught]
    assert warns([2.0, 1.0, 0.5, 0.5 * GROWTH * 1.01]) != []      # 101x its lowest, above epoch 0's
    assert warns([2.0, 1.0, 0.5, 0.5 * GROWTH * 0.99]) == []      # 99x
    assert warns([1.0, 1e-7, 1e-4, 1e-3]) == []                   # ~0 wobbling: below epoch 0's loss
    assert warns([1.0, 500.0, 900.0], start=2) == []              # grew in an earlier chunk: warned then
    assert warns([1.0, 2.0, np.inf, np.nan]) == []                # non-finite is DivergedError's
    assert "from 2 (epoch 1) to 300 (epoch 3)" in warns([3.0, 2.0, 2.5, 300.0])[0]
