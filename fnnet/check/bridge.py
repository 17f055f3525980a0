"""The bridge from fnnet objects to their NumPy float64 twins in `reference/`.

One table per kind, matched by type: Dense -> dense, Relu -> relu, LeakyRelu(alpha) ->
leaky_relu, Sigmoid, Tanh, Softmax, Identity; losses by their `.name`. A subclass maps
to its base's twin only while it keeps the base's forward (a copy with a planted bug
in `backward` is still checked against the twin; a layer computing something else is not).
Anything else has no twin: the reference oracle is then "n/a", never a failure.

Every function here returns a vjp-like callable on NumPy float64 arrays, or None.
`reference/` is imported lazily, so fnnet works without it.
"""
from __future__ import annotations

import numpy as np

from fnnet.layers import activations as A
from fnnet.layers.dense import Dense


def _reference():
    try:
        import fnnet_reference as reference
    except ImportError:
        return None
    return reference


def _same_forward(obj, base) -> bool:
    return isinstance(obj, base) and type(obj).forward is base.forward


_ACTIVATIONS = ((A.Identity, "identity"), (A.Relu, "relu"), (A.LeakyRelu, "leaky_relu"),
                (A.Sigmoid, "sigmoid"), (A.Tanh, "tanh"), (A.Softmax, "softmax"))


def _activation_kind(layer):
    """'relu' for Relu() (or a subclass keeping its forward), ..., None for anything else."""
    return next((name for base, name in _ACTIVATIONS if _same_forward(layer, base)), None)


def _activation_twin(layer, R):
    """(forward(x), backward(x, dy)) of reference for a parameter-free layer, or None."""
    kind = _activation_kind(layer)
    if kind is None:
        return None
    if kind == "leaky_relu":
        alpha = float(layer.alpha)
        return (lambda x: R.leaky_relu_forward(x, alpha=alpha)), (lambda x, dy: R.leaky_relu_backward(x, dy, alpha=alpha))
    return getattr(R, kind + "_forward"), getattr(R, kind + "_backward")


def why_missing(obj) -> str:
    if _reference() is None:
        return "reference/ is not importable"
    return f"no reference twin for {obj!s}; pass reference=callable"


def _vision_vjp(layer, R, state, train):
    """Twins of the issue-8 layers (conv, pool, shape, ELU/SiLU/Softplus, BatchNorm), or None.
    Dropout has none here: its twin needs the mask, which only the key under check knows."""
    from fnnet.layers import batchnorm as BN, conv as C, pool as P, shape as S
    if _same_forward(layer, C.Conv2D):
        def conv(params, x, ct):
            _, stride, pads, _ = layer._geometry(x.shape[1:3])
            dw, db, dx = R.conv2d_backward(x, params.w, params.b, ct, stride=stride, pads=pads)
            return type(params)(dw, db), dx
        return conv
    for base, fn in ((P.MaxPool2D, R.maxpool2d_backward), (P.AvgPool2D, R.avgpool2d_backward)):
        if _same_forward(layer, base):
            window, stride = layer._sizes()
            return lambda params, x, ct, fn=fn: ((), fn(x, ct, window=window, stride=stride))
    if _same_forward(layer, S.Flatten) or _same_forward(layer, S.Reshape):
        return lambda params, x, ct: ((), R.reshape_backward(x, ct))
    if _same_forward(layer, A.ELU):
        return lambda params, x, ct: ((), R.elu_backward(x, ct, alpha=float(layer.alpha)))
    for base, fn in ((A.SiLU, R.silu_backward), (A.Softplus, R.softplus_backward)):
        if _same_forward(layer, base):
            return lambda params, x, ct, fn=fn: ((), fn(x, ct))
    if _same_forward(layer, BN.BatchNorm) and state is not None:
        def batchnorm(params, x, ct):
            if train:
                dg, db, dx = R.batchnorm_backward(x, params.gamma, params.beta, ct, eps=layer.eps)
            else:
                dg, db, dx = R.batchnorm_eval_backward(x, params.gamma, params.beta,
                                                       np.asarray(state.mean, np.float64),
                                                       np.asarray(state.var, np.float64), ct, eps=layer.eps)
            return type(params)(dg, db), dx
        return batchnorm
    return None


def layer_vjp(layer, state=None, train=True):
    """reference vjp (params, x, ct) -> (dparams, dx) for a built-in layer, else None.
    state/train: a stateful layer's state and mode (BatchNorm's eval twin reads the state)."""
    R = _reference()
    if R is None:
        return None
    vision = _vision_vjp(layer, R, state, train)
    if vision is not None:
        return vision
    if _same_forward(layer, Dense):
        def dense(params, x, ct):
            dw, db, dx = R.dense_backward(x, params.w, params.b, ct)
            return type(params)(dw, db), dx
        return dense
    twin = _activation_twin(layer, R)
    if twin is None:
        return None
    return lambda params, x, ct: ((), twin[1](x, ct))


def loss_grad(loss):
    """reference grad(out, target) -> dL/dout for a built-in loss (by .name), else None.

    The loss must also keep the built-in's `value` (a copy with a planted bug in `grad` is
    checked against the twin; a different loss that reuses a name is not).
    """
    from fnnet.losses import LOSSES
    R = _reference()
    name = getattr(loss, "name", None)
    if R is None or name not in LOSSES or not _same_value(loss, LOSSES[name]):
        return None
    return getattr(R, name + "_grad")


def _same_value(loss, base) -> bool:
    return isinstance(loss, base) and type(loss).value is base.value


def _layer_dicts(net, params):
    """fnnet layers + params -> reference.network's list of layer dicts."""
    dicts = []
    for layer, p in zip(net.layers, params):
        if _same_forward(layer, Dense):
            dicts.append({"kind": "dense", "w": np.asarray(p.w, np.float64), "b": np.asarray(p.b, np.float64)})
        else:
            kind = _activation_kind(layer)
            dicts.append({"kind": kind, **({"alpha": float(layer.alpha)} if kind == "leaky_relu" else {})})
    return dicts


def network_vjp(net, y):
    """reference vjp (params, x, ct) -> (grads, dx) of loss(net, params, x, y), else None.

    Parameter gradients come from fnnet_reference.backward (the twin's own reverse walk);
    dL/dx, which that function does not return, from a walk over reference's per-layer
    backward functions. Both are scaled by the scalar cotangent ct.
    """
    R = _reference()
    if R is None or loss_grad(net.loss) is None:
        return None
    if any(not (_same_forward(l, Dense) or _activation_kind(l)) for l in net.layers):
        return None
    if any(getattr(type(l), "l2_mask", None) is not getattr(Dense, "l2_mask", None)
           for l in net.layers if isinstance(l, Dense)):
        return None   # a changed L2 rule has no twin
    name, l2 = net.loss.name, float(net.l2)
    y = np.asarray(y)
    target = y if np.issubdtype(y.dtype, np.integer) else y.astype(np.float64)

    def vjp(params, x, ct):
        dicts = _layer_dicts(net, params)
        grads = R.backward(dicts, name, x, target, l2)
        tree = tuple(type(p)(np.asarray(g["w"]) * ct, np.asarray(g["b"]) * ct) if isinstance(l, Dense) else ()
                     for l, p, g in zip(net.layers, params, grads))
        acts, a = [], np.asarray(x, np.float64)
        for layer, d in zip(net.layers, dicts):
            acts.append(a)
            a = R.dense_forward(a, d["w"], d["b"]) if d["kind"] == "dense" else _activation_twin(layer, R)[0](a)
        dy = loss_grad(net.loss)(a, target)                              # dL/dout
        for layer, d, a_in in reversed(list(zip(net.layers, dicts, acts))):
            if d["kind"] == "dense":
                dy = R.dense_backward(a_in, d["w"], d["b"], dy)[2]       # dL/dx = dL/dy · Wᵀ
            else:
                dy = _activation_twin(layer, R)[1](a_in, dy)             # dL/dx = f'(x) ⊙ dL/dy
        return tree, dy * ct
    return vjp
