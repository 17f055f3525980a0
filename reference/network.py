"""Whole networks in NumPy float64, built from plain dicts (no fnnet classes).

A network is a list of layer dicts, run in order, plus a loss name:
  {"kind": "dense", "w": [d_in, d_out], "b": [d_out]}
  {"kind": "identity"} {"kind": "relu"} {"kind": "leaky_relu", "alpha": 0.01}
  {"kind": "sigmoid"} {"kind": "tanh"} {"kind": "softmax"}
Loss names: "mse", "half_sse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy".
The two cross-entropies take the network's output as LOGITS, so a network for them
ends in a dense layer, not in a softmax/sigmoid layer.

backward() is the seeds' algorithm made general: forward keeping each layer's input,
the loss gradient, then a reverse walk calling each layer's backward.
"""
import numpy as np

from .layers import activations as act
from . import losses as L
from .layers.dense import dense_backward, dense_forward

_ACTIVATIONS = {  # kind -> (forward(x, layer), backward(x, dy, layer))
    "identity": (lambda x, l: act.identity_forward(x), lambda x, dy, l: act.identity_backward(x, dy)),
    "relu": (lambda x, l: act.relu_forward(x), lambda x, dy, l: act.relu_backward(x, dy)),
    "leaky_relu": (lambda x, l: act.leaky_relu_forward(x, alpha=l.get("alpha", 0.01)),
                   lambda x, dy, l: act.leaky_relu_backward(x, dy, alpha=l.get("alpha", 0.01))),
    "sigmoid": (lambda x, l: act.sigmoid_forward(x), lambda x, dy, l: act.sigmoid_backward(x, dy)),
    "tanh": (lambda x, l: act.tanh_forward(x), lambda x, dy, l: act.tanh_backward(x, dy)),
    "softmax": (lambda x, l: act.softmax_forward(x), lambda x, dy, l: act.softmax_backward(x, dy)),
}
KINDS = ("dense",) + tuple(_ACTIVATIONS)

_LOSSES = {  # name -> (value, grad)
    "mse": (L.mse, L.mse_grad),
    "half_sse": (L.half_sse, L.half_sse_grad),
    "softmax_cross_entropy": (L.softmax_cross_entropy, L.softmax_cross_entropy_grad),
    "sigmoid_binary_cross_entropy": (L.sigmoid_binary_cross_entropy,
                                     L.sigmoid_binary_cross_entropy_grad),
}
LOSSES = tuple(_LOSSES)


def _error(fn, msg):
    return ValueError(f"reference.{fn}: {msg}")


def _kind(fn, i, layer):
    kind = layer.get("kind") if isinstance(layer, dict) else None
    if kind not in KINDS:
        got = repr(kind) if isinstance(layer, dict) else type(layer).__name__
        raise _error(fn, f"layer {i} has unknown kind {got}; known kinds: {', '.join(KINDS)}")
    if kind == "dense" and not ("w" in layer and "b" in layer):
        raise _error(fn, f"layer {i} (dense) needs keys 'w' and 'b', got {sorted(layer)}")
    return kind


def _loss_fns(fn, loss_name):
    if loss_name not in _LOSSES:
        raise _error(fn, f"unknown loss {loss_name!r}; known losses: {', '.join(LOSSES)}")
    return _LOSSES[loss_name]


def _forward_keep_inputs(fn, layers, x):
    """Run the layers; return (out, inputs) with inputs[i] = the input of layer i."""
    x = np.asarray(x, dtype=np.float64)
    inputs = []
    for i, layer in enumerate(layers):
        kind = _kind(fn, i, layer)
        inputs.append(x)
        try:
            if kind == "dense":
                x = dense_forward(x, layer["w"], layer["b"])
            else:
                x = _ACTIVATIONS[kind][0](x, layer)
        except ValueError as e:
            raise _error(fn, f"layer {i} ({kind}): {e}") from e
    return x, inputs


def _l2_term(layers, l2):
    return L.l2_penalty([l["w"] for l in layers if l["kind"] == "dense"], l2) if l2 else 0.0


def forward(layers, x):
    """Network output before the loss (logits for the fused cross-entropies).

    x: [batch, d_in] -> out: [batch, d_out]
    """
    return _forward_keep_inputs("forward", layers, x)[0]


def loss(layers, loss_name, x, target, l2=0.0):
    """Data loss + ½·l2·Σ w² over the dense layers' "w" (never the biases).

    x: [batch, d_in]; target: what the loss takes for out [batch, d_out].
    """
    value, _ = _loss_fns("loss", loss_name)
    out = _forward_keep_inputs("loss", layers, x)[0]
    try:
        return float(value(out, target)) + _l2_term(layers, l2)
    except ValueError as e:
        raise _error("loss", f"loss {loss_name}: {e}") from e


def _value_and_grads(fn, layers, loss_name, x, target, l2):
    value, grad = _loss_fns(fn, loss_name)
    out, inputs = _forward_keep_inputs(fn, layers, x)
    try:
        total = float(value(out, target)) + _l2_term(layers, l2)
        dy = grad(out, target)  # dL/dout
    except ValueError as e:
        raise _error(fn, f"loss {loss_name}: {e}") from e
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):  # walk back, dy = dL/d(output of layer i)
        layer, x_i = layers[i], inputs[i]
        if layer["kind"] == "dense":
            w = np.asarray(layer["w"], dtype=np.float64)
            dw, db, dy = dense_backward(x_i, w, layer["b"], dy)
            grads[i] = {"w": dw + l2 * w, "b": db}  # dR/dw = l2·w joins the data gradient
        else:
            dy = _ACTIVATIONS[layer["kind"]][1](x_i, dy, layer)
            grads[i] = {}
    return total, grads


def backward(layers, loss_name, x, target, l2=0.0):
    """Gradient of loss(layers, loss_name, x, target, l2) w.r.t. every parameter.

    Returns one entry per layer: {"w": dw [d_in, d_out], "b": db [d_out]} for dense
    layers (dw includes l2·w), {} for the others.
    """
    return _value_and_grads("backward", layers, loss_name, x, target, l2)[1]


def sgd_step(layers, grads, lr):
    """New layers with w -= lr·dw, b -= lr·db. Never mutates its inputs."""
    if len(grads) != len(layers):
        raise _error("sgd_step", f"grads must have one entry per layer ({len(layers)}), "
                                 f"got {len(grads)}")
    new = []
    for i, (layer, g) in enumerate(zip(layers, grads)):
        layer = dict(layer)
        if _kind("sgd_step", i, layer) == "dense":
            for key in ("w", "b"):
                if not isinstance(g, dict) or key not in g:
                    raise _error("sgd_step", f"layer {i} (dense) grad must be a dict with "
                                             f"'w' and 'b', got {g!r:.60}")
                p = np.asarray(layer[key], dtype=np.float64)
                dp = np.asarray(g[key], dtype=np.float64)
                if dp.shape != p.shape:
                    raise _error("sgd_step", f"layer {i} grad {key!r} must be {p.shape}, "
                                             f"got {dp.shape}")
                layer[key] = p - lr * dp  # p ← p - lr·dL/dp
        new.append(layer)
    return new


def train_sgd(layers, loss_name, x, target, *, lr, epochs, l2=0.0, batch_size=None):
    """Plain gradient descent; returns (trained layers, per-epoch losses).

    batch_size=None: full batch, one step per epoch (seeds 001, 002).
    batch_size=1: one step per sample in the data's order (seed 003's loop).
    batch_size=k: consecutive slices x[0:k], x[k:2k], ... in order, no shuffling;
    the last slice may be shorter.
    losses[e] is the mean over epoch e's steps of the loss (with the l2 term) of the
    forward pass each step used, i.e. measured before that step's update, as the
    seeds print it. Inputs are never mutated.
    """
    x = np.asarray(x, dtype=np.float64)
    target = np.asarray(target)
    if x.ndim != 2 or len(target) != len(x):
        raise _error("train_sgd", f"x must be [batch, d_in] and target must have x's batch "
                                  f"size, got x {x.shape} and target {target.shape}")
    n = len(x)
    if batch_size is None:
        batch_size = n
    if int(batch_size) != batch_size or batch_size < 1:
        raise _error("train_sgd", f"batch_size must be None or an integer >= 1, got {batch_size!r}")
    if int(epochs) != epochs or epochs < 0:
        raise _error("train_sgd", f"epochs must be an integer >= 0, got {epochs!r}")
    batch_size = int(batch_size)
    layers = [dict(l) for l in layers]
    history = []
    for _ in range(int(epochs)):
        step_losses = []
        for start in range(0, n, batch_size):
            xb, tb = x[start:start + batch_size], target[start:start + batch_size]
            value, grads = _value_and_grads("train_sgd", layers, loss_name, xb, tb, l2)
            step_losses.append(value)
            layers = sgd_step(layers, grads, lr)
        history.append(float(np.mean(step_losses)))
    return layers, history


def predict(layers, loss_name, x):
    """Probabilities for the cross-entropies (softmax / sigmoid of the logits),
    the raw network output otherwise.  x: [batch, d_in] -> [batch, d_out]
    """
    _loss_fns("predict", loss_name)
    out = _forward_keep_inputs("predict", layers, x)[0]
    if loss_name == "softmax_cross_entropy":
        return act.softmax_forward(out)
    if loss_name == "sigmoid_binary_cross_entropy":
        return act.sigmoid_forward(out)
    return out


def accuracy(layers, loss_name, x, target):
    """Fraction of correct predictions, in [0, 1].

    Several outputs (softmax cross-entropy, or a regression onto one-hot rows):
    argmax of the output vs integer labels [batch] or the argmax of one-hot rows.
    Sigmoid BCE or a single output: prediction > 0.5 vs the target rounded,
    element by element.
    """
    p = predict(layers, loss_name, x)
    t = np.asarray(target)
    if loss_name == "sigmoid_binary_cross_entropy" or p.shape[-1] == 1:
        if t.size != p.size:
            raise _error("accuracy", f"target must have {p.size} values for output {p.shape}, "
                                     f"got {t.shape}")
        t = np.round(t.astype(np.float64)).reshape(p.shape)
        return float(np.mean((p > 0.5) == (t == 1.0)))
    labels = t if t.ndim == 1 else np.argmax(t, axis=-1)
    if labels.shape != p.shape[:1]:
        raise _error("accuracy", f"target must be [{len(p)}] labels or [{len(p)}, {p.shape[-1]}], "
                                 f"got {t.shape}")
    return float(np.mean(np.argmax(p, axis=-1) == labels))
