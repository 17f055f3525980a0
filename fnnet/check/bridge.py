"""The bridge from fnnet objects to their NumPy float64 twins in `reference/`.

Every built-in layer with a twin is matched by type: Dense -> dense, Relu -> relu,
LayerNorm(eps) -> layernorm, CausalSelfAttention(heads) -> attention, LSTM(masked=...) ->
lstm, ...; losses by class (SequenceCrossEntropy with its options) or by their `.name`.
A subclass maps to its base's twin only while it keeps the base's forward (a copy with a
planted bug in `backward` is still checked against the twin; a layer computing something
else is not). Combinators (Sequential, Residual, Positionwise, TiedLM) get a twin composed
from their parts' twins when every part has one. Anything else has no twin: the reference
oracle is then "n/a", never a failure.

Inside, a twin is a pair of NumPy functions on fnnet's params trees (NamedTuples of float64
arrays): forward(params, x) -> y and backward(params, x, dy) -> (dparams like params, dx;
None for integer ids). The public functions return vjp-like callables, or None.
`reference/` is imported lazily, so fnnet works without it.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from fnnet.layers import activations as A
from fnnet.layers.dense import Dense


class _Twin(NamedTuple):
    forward: Callable    # (params, x) -> y [batch, ...], NumPy float64
    backward: Callable   # (params, x, dy) -> (dparams like params, dx like x or None)


class _Context(NamedTuple):
    """What a layer's forward is called with besides (params, x): check_layer's state, mode,
    key and forward_kwargs. A combinator's parts get the default: no state, eval mode, no key
    (their forward is called as forward(params, x))."""
    state: object = None
    train: bool = False
    key: object = None
    kwargs: tuple = ()


def _reference():
    try:
        import fnnet_reference as reference
    except ImportError:
        return None
    return reference


def _same_forward(obj, base, *methods) -> bool:
    """obj is a base (or a subclass) whose forward, and the named helpers it calls, are base's."""
    return isinstance(obj, base) and all(getattr(type(obj), m) is getattr(base, m) for m in ("forward",) + methods)


def _f64(a):
    return np.asarray(a, np.float64)


# -- activations: params (), y = f(x) elementwise (softmax: per row) --------------------------

_ACTIVATIONS = ((A.Identity, "identity", ()), (A.Relu, "relu", ()), (A.LeakyRelu, "leaky_relu", ("alpha",)),
                (A.Sigmoid, "sigmoid", ()), (A.Tanh, "tanh", ()), (A.Softmax, "softmax", ()),
                (A.ELU, "elu", ("alpha",)), (A.SiLU, "silu", ()), (A.Softplus, "softplus", ()),
                (A.GELU, "gelu", ("approximate",)))


def _activation_kind(layer):
    """'relu' for Relu() (or a subclass keeping its forward), ..., None for anything else."""
    return next((name for base, name, _ in _ACTIVATIONS if _same_forward(layer, base)), None)


def _activation_twin(layer, R):
    """(forward(x), backward(x, dy)) of reference for a parameter-free activation, or None."""
    for base, name, fields in _ACTIVATIONS:
        if _same_forward(layer, base):
            opts = {f: getattr(layer, f) for f in fields}
            fwd, bwd = getattr(R, name + "_forward"), getattr(R, name + "_backward")
            return (lambda x: fwd(x, **opts)), (lambda x, dy: bwd(x, dy, **opts))
    return None


# -- one builder per layer family: (layer, R, ctx) -> _Twin or None ----------------------------

def _dense(layer, R, ctx):
    return _Twin(lambda p, x: R.dense_forward(x, p.w, p.b),
                 lambda p, x, dy: _params(p, R.dense_backward(x, p.w, p.b, dy)))


def _params(p, grads):
    """(g_1, ..., g_k, dx) from a twin -> (type(p)(g_1, ..., g_k), dx)."""
    *g, dx = grads
    return type(p)(*g), dx


def _conv_like(name, pads_key):
    """Conv2D (pads) and ConvTranspose2D (crops): the twin `name`_forward/_backward(x, w, b)
    with the stride and paddings the layer's own geometry gives for x."""
    def build(layer, R, ctx):
        fwd, bwd = getattr(R, name + "_forward"), getattr(R, name + "_backward")

        def opts(x):
            _, stride, pads, _ = layer._geometry(np.shape(x)[1:3])
            return {"stride": stride, pads_key: pads}
        return _Twin(lambda p, x: fwd(x, p.w, p.b, **opts(x)),
                     lambda p, x, dy: _params(p, bwd(x, p.w, p.b, dy, **opts(x))))
    return build


def _pool(name):
    def build(layer, R, ctx):
        window, stride = layer._sizes()
        fwd, bwd = getattr(R, name + "_forward"), getattr(R, name + "_backward")
        return _Twin(lambda p, x: fwd(x, window=window, stride=stride),
                     lambda p, x, dy: ((), bwd(x, dy, window=window, stride=stride)))
    return build


def _reshape(layer, R, ctx):
    from fnnet.layers.shape import Flatten

    def target(x):
        return (math.prod(np.shape(x)[1:]),) if isinstance(layer, Flatten) else tuple(layer.shape)
    return _Twin(lambda p, x: R.reshape_forward(x, shape=target(x)), lambda p, x, dy: ((), R.reshape_backward(x, dy)))


def _batchnorm(layer, R, ctx):
    if ctx.state is None or layer.axis_name is not None:
        return None   # the eval twin needs the running statistics; synced statistics need the mesh
    eps = layer.eps
    if ctx.train:
        return _Twin(lambda p, x: R.batchnorm_forward(x, p.gamma, p.beta, eps=eps)[0],
                     lambda p, x, dy: _params(p, R.batchnorm_backward(x, p.gamma, p.beta, dy, eps=eps)))
    mean, var = _f64(ctx.state.mean), _f64(ctx.state.var)
    return _Twin(lambda p, x: R.batchnorm_eval_forward(x, p.gamma, p.beta, mean, var, eps=eps),
                 lambda p, x, dy: _params(p, R.batchnorm_eval_backward(x, p.gamma, p.beta, mean, var, dy, eps=eps)))


def _dropout(layer, R, ctx):
    """Train mode: the keep mask the layer draws from the key check_layer holds fixed, drawn
    again here with the documented recipe (Bernoulli(1 - rate) per element of x's shape, p in
    float32); the twin does the NumPy math with it. A layer that drew another mask fails
    the reference row. Eval mode, or rate 0: the identity."""
    if layer.axis_name is not None:
        return None   # the mask is this device's rows of the whole batch's: the mesh decides
    if not ctx.train or layer.rate == 0.0:
        return _Twin(lambda p, x: R.identity_forward(x), lambda p, x, dy: ((), R.identity_backward(x, dy)))
    if ctx.key is None:
        return None
    import jax
    key, rate = ctx.key, layer.rate

    def keep(x):
        return np.asarray(jax.random.bernoulli(key, np.float32(1.0 - rate), np.shape(x)))
    return _Twin(lambda p, x: R.dropout_forward(x, keep(x), rate=rate),
                 lambda p, x, dy: ((), R.dropout_backward(x, keep(x), dy, rate=rate)))


def _norm(name, fields=("eps",)):
    def build(layer, R, ctx):
        opts = {f: getattr(layer, f) for f in fields}
        fwd, bwd = getattr(R, name + "_forward"), getattr(R, name + "_backward")
        return _Twin(lambda p, x: fwd(x, *p, **opts), lambda p, x, dy: _params(p, bwd(x, *p, dy, **opts)))
    return build


def _embedding(layer, R, ctx):
    return _Twin(lambda p, ids: R.embedding_forward(ids, p.w),
                 lambda p, ids, dy: (type(p)(R.embedding_backward(ids, p.w, dy)), None))   # ids: no gradient


def _positional(layer, R, ctx):
    return _Twin(lambda p, x: R.positional_forward(x, p.w),
                 lambda p, x, dy: _params(p, R.positional_backward(x, p.w, dy)))


def _token_position(layer, R, ctx):
    return _Twin(lambda p, ids: R.token_position_forward(ids, p.wte, p.wpe),
                 lambda p, ids, dy: (type(p)(*R.token_position_backward(ids, p.wte, p.wpe, dy)), None))


def _attention(layer, R, ctx):
    heads = layer.heads     # recompute changes what the cache keeps, not the function
    return _Twin(lambda p, x: R.attention_forward(x, *p, heads=heads),
                 lambda p, x, dy: _params(p, R.attention_backward(x, *p, dy, heads=heads)))


def _recurrent(name):
    def build(layer, R, ctx):
        kwargs = dict(ctx.kwargs)
        initial = kwargs.pop("initial", None)
        if kwargs:
            return None   # a forward keyword the twin does not know
        opts = dict(return_sequences=layer.return_sequences, masked=layer.masked)
        if initial is not None:
            opts["initial"] = tuple(map(_f64, initial)) if isinstance(initial, tuple) else _f64(initial)
        fwd, bwd = getattr(R, name + "_forward"), getattr(R, name + "_backward")

        def backward(p, x, dy):
            out = bwd(x, *p, dy, **opts)
            return _params(p, out[:-1] if initial is not None else out)   # d initial: not a primal here
        return _Twin(lambda p, x: fwd(x, *p, **opts), backward)
    return build


def _sequential(layer, R, ctx):
    parts = [_twin(part, R) for part in layer.layers]
    if any(t is None for t in parts):
        return None

    def bound(p):
        fs = [lambda x, t=t, q=q: t.forward(q, x) for t, q in zip(parts, p)]
        bs = [lambda x, dy, t=t, q=q: t.backward(q, x, dy) for t, q in zip(parts, p)]
        return fs, bs
    return _Twin(lambda p, x: R.sequential_forward(x, bound(p)[0]),
                 lambda p, x, dy: R.sequential_backward(x, *bound(p), dy))


def _wrapper(name, field):
    """Residual (block) and Positionwise (layer): one inner layer, its params unchanged."""
    def build(layer, R, ctx):
        inner = _twin(getattr(layer, field), R)
        if inner is None:
            return None
        fwd, bwd = getattr(R, name + "_forward"), getattr(R, name + "_backward")
        return _Twin(lambda p, x: fwd(x, lambda h: inner.forward(p, h)),
                     lambda p, x, dy: bwd(x, lambda h, d: inner.backward(p, h, d), dy))
    return build


def _tiedlm(layer, R, ctx):
    from fnnet.layers.embedding import TokenPositionEmbedding
    body = _twin(layer.body, R)
    if body is None or not _same_forward(layer.encoder, TokenPositionEmbedding):
        return None

    def backward(p, ids, dy):
        f = lambda h: body.forward(p.body, h)                     # noqa: E731
        f_back = lambda h, d: body.backward(p.body, h, d)         # noqa: E731
        dwte, dwpe, dbody = R.tiedlm_backward(ids, p.encoder.wte, p.encoder.wpe, f, f_back, dy)
        return type(p)(type(p.encoder)(dwte, dwpe), dbody), None   # ids: no gradient
    return _Twin(lambda p, ids: R.tiedlm_forward(ids, p.encoder.wte, p.encoder.wpe,
                                                 lambda h: body.forward(p.body, h)), backward)


def _builders():
    """[(base class, helper methods its forward calls, builder)], imported when first needed."""
    from fnnet.layers import (attention as AT, batchnorm as BN, combinators as CB, conv as C,
                              conv_transpose as CT, dropout as D, embedding as E, norm as N, pool as P,
                              recurrent as RC, shape as S)
    from fnnet.models.gpt import TiedLM
    return [
        (Dense, (), _dense), (C.Conv2D, (), _conv_like("conv2d", "pads")),
        (CT.ConvTranspose2D, (), _conv_like("conv_transpose2d", "crops")),
        (P.MaxPool2D, (), _pool("maxpool2d")), (P.AvgPool2D, (), _pool("avgpool2d")),
        (S.Flatten, (), _reshape), (S.Reshape, (), _reshape),
        (BN.BatchNorm, (), _batchnorm), (D.Dropout, ("_mask",), _dropout),
        (N.LayerNorm, (), _norm("layernorm")), (N.RMSNorm, (), _norm("rmsnorm")),
        (N.GroupNorm, (), _norm("groupnorm", ("groups", "eps"))),
        (E.Embedding, (), _embedding), (E.PositionalEmbedding, (), _positional),
        (E.TokenPositionEmbedding, (), _token_position), (AT.CausalSelfAttention, (), _attention),
        (RC.RNN, ("_step",), _recurrent("rnn")), (RC.LSTM, ("_step",), _recurrent("lstm")),
        (RC.GRU, ("_step",), _recurrent("gru")),
        (CB.Sequential, (), _sequential), (CB.Residual, (), _wrapper("residual", "block")),
        (CB.Positionwise, (), _wrapper("positionwise", "layer")), (TiedLM, (), _tiedlm),
    ]


def _twin(layer, R, ctx=_Context()):
    """The twin of a built-in layer (or a subclass keeping its forward) under ctx, or None."""
    act = _activation_twin(layer, R)
    if act is not None:
        fwd, bwd = act
        return _Twin(lambda p, x: fwd(x), lambda p, x, dy: ((), bwd(x, dy)))
    for base, helpers, build in _builders():
        if _same_forward(layer, base, *helpers):
            return build(layer, R, ctx)
    return None


def why_missing(obj) -> str:
    if _reference() is None:
        return "reference/ is not importable"
    from fnnet.layers import dropout as D
    if isinstance(obj, D.Dropout) and obj.axis_name is not None:
        return (f"no reference twin for {obj!s}: with axis_name its mask is this device's rows of the "
                f"whole batch's, which only the mesh knows; pass reference=callable")
    return f"no reference twin for {obj!s}; pass reference=callable"


def layer_vjp(layer, state=None, train=True, key=None, forward_kwargs=None):
    """reference vjp (params, x, ct) -> (dparams, dx) for a built-in layer, else None.

    state/train: a stateful layer's state and mode (BatchNorm's eval twin reads the state);
    key: the key a stochastic layer's forward draws from (Dropout's mask, held fixed by
    check_layer); forward_kwargs: the other keywords its forward gets (a recurrent layer's
    initial state), None without any.
    """
    R = _reference()
    if R is None:
        return None
    twin = _twin(layer, R, _Context(state, train, key, tuple((forward_kwargs or {}).items())))
    return None if twin is None else twin.backward


def loss_grad(loss):
    """reference grad(out, target) -> dL/dout for a built-in loss, else None.

    The loss must also keep the built-in's `value` (a copy with a planted bug in `grad` is
    checked against the twin; a different loss that reuses a name is not).
    """
    from fnnet.losses import LOSSES
    from fnnet.losses_seq import SequenceCrossEntropy
    R = _reference()
    if R is None:
        return None
    if _same_value(loss, SequenceCrossEntropy):
        opts = dict(ignore_index=loss.ignore_index, label_smoothing=loss.label_smoothing)
        return lambda out, target: R.sequence_cross_entropy_grad(out, target, **opts)
    name = getattr(loss, "name", None)
    if name not in LOSSES or not _same_value(loss, LOSSES[name]):
        return None
    return getattr(R, name + "_grad", None)


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


_NETWORK_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")


def network_vjp(net, y):
    """reference vjp (params, x, ct) -> (grads, dx) of loss(net, params, x, y), else None.

    Parameter gradients come from fnnet_reference.backward (the twin's own reverse walk);
    dL/dx, which that function does not return, from a walk over reference's per-layer
    backward functions. Both are scaled by the scalar cotangent ct.

    Dense/activation MLPs only. A chain over any layers' twins computes right, but the float64
    replay of a float32 check judges a leaf whose true gradient is exactly 0 (a conv bias
    before BatchNorm: -2e-16 in the rule, -1.3e-15 in the twin) at a floor built from the
    scalar loss alone, and fails the correct rule (`fnnet train --model cnn --batchnorm
    --check`); networks get their twin once that floor counts the reductions' own rounding.
    """
    from fnnet.losses import LOSSES
    R = _reference()
    if R is None or loss_grad(net.loss) is None or getattr(net.loss, "name", None) not in LOSSES \
            or not hasattr(R, net.loss.name):
        return None
    if any(not (_same_forward(l, Dense) or _activation_kind(l) in _NETWORK_ACTIVATIONS) for l in net.layers):
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
