"""Classification accuracy of a network's predictions.

    acc = accuracy(net, params, x, y)        # Python float in [0, 1]

How a prediction is scored, with out = predict(net, params, x) [batch, k]:

* k > 1 and integer labels y [batch]:        argmax(out) == y
* k > 1 and targets y [batch, k] (one-hot):  argmax(out) == argmax(y)
  (sigmoid binary cross-entropy with k > 1 is multi-label instead: scored
  element by element as below, averaged over all batch·k elements)
* k == 1 (y [batch] or [batch, 1]):
  - sigmoid binary cross-entropy: the probability thresholded at 0.5,
    (p > 0.5) == (t > 0.5), as Keras' binary accuracy;
  - any other loss (tanh / sigmoid / identity outputs regressing class
    values, seed 003's XOR): round the output to the nearest integer and
    compare with the target, round(out) == t.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import network as _network
from fnnet.contracts import check_run, check_x
from fnnet.losses import SigmoidBinaryCrossEntropy
from fnnet.validate import check_finite


def _elementwise(net) -> bool:
    return isinstance(net.loss, SigmoidBinaryCrossEntropy)


def check_targets(net, x, y, where="accuracy"):
    """Validate targets for scoring against the (static) output shape [batch, k]."""
    y = jnp.asarray(y)
    n, k = x.shape[0], _network.out_shape(net)[-1]
    integer = jnp.issubdtype(y.dtype, jnp.integer)
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"{where}: y must have x's batch size {n}, got shape {tuple(y.shape)}")
    if y.ndim == 1 and not (integer or k == 1):
        raise TypeError(f"{where}: targets of shape [batch] must be integer class labels when the "
                        f"network has {k} outputs, got dtype {y.dtype} (or pass [batch, {k}] one-hot)")
    if (y.ndim == 2 and y.shape[1] != k) or y.ndim > 2:
        raise ValueError(f"{where}: y must be [batch] labels or [batch, {k}] targets, got {tuple(y.shape)}")
    if integer and y.ndim == 1 and k > 1 and y.size:
        lo, hi = int(np.min(y)), int(np.max(y))
        if lo < 0 or hi >= k:
            raise ValueError(f"{where}: labels must be in [0, {k}), got values from {lo} to {hi}")
    check_finite(where, "y", y)
    return y


def accuracy_value(net, params, x, y, state=None):
    """Traceable accuracy (a 0-d array of params' dtype); no value checks, usable under jit.
    state: the layer state of a stateful net (read in eval mode, as predict does)."""
    return _hits(net, params, x, y, state).mean()


def _hits(net, params, x, y, state=None):
    """Per example (element, for multi-label) 1.0 if predicted right else 0.0, of params' dtype."""
    pred = _network.predict(net, params, x, **({} if state is None else {"state": state}))   # [batch, k]
    pred = pred if state is None else pred[0]
    k = pred.shape[-1]
    if k > 1 and not (_elementwise(net) and y.ndim == 2):
        truth = y if y.ndim == pred.ndim - 1 else jnp.argmax(y, axis=-1)   # class index per example (or position)
        hit = jnp.argmax(pred, axis=-1) == truth
    else:
        t = y.reshape(pred.shape).astype(pred.dtype)                # [batch] -> [batch, 1]
        if _elementwise(net):
            hit = (pred > 0.5) == (t > 0.5)                         # probability vs 0.5
        else:
            hit = jnp.round(pred) == t                              # nearest class value
    return hit.astype(pred.dtype)


# The count, divided on the host: XLA turns "/ n" into "* (1/n)", so 3 of 10 would be 0.30000000000000004.
def _count(net, params, x, y, state=None):
    hits = _hits(net, params, x, y, state)
    return jnp.sum(hits > 0), jnp.int32(hits.size)


_count_jit = jax.jit(_count, static_argnums=0)


def accuracy(net, params, x, y, *, state=None) -> float:
    """Fraction in [0, 1] of examples (elements, for multi-label) predicted right.

    x: [batch, *in_shape]; y: integer labels [batch], or targets [batch, k]
    (one-hot for k > 1). The scoring rule per output kind is in this module's docstring.
    state: the layer state of a net with stateful layers (BatchNorm's running statistics,
    as fit(..., state=) returned it), read in eval mode as predict does; required for
    such nets (an error naming the layer otherwise), checked against fnnet.init_state's tree.
    """
    x = check_x(net, params, x)
    y = check_targets(net, x, y)
    state, _ = check_run(net, params, x, state, None, False, "accuracy",
                         fix="pass accuracy(..., state=the state fit returned)")
    right, total = _count_jit(net, params, x, y, state)   # one compiled program per net and shapes
    return int(right) / int(total)
