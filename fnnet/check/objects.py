"""check_layer, check_loss, check_network: fnnet's objects through check_vjp."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import bridge, nondiff as _nd
from fnnet.check.core import run_check


# -- fnnet objects ----------------------------------------------------------------------

def _hashable(*parts):
    """A key naming a pure function of (layer / loss / net, closed-over data), or None."""
    out = []
    for p in parts:
        if hasattr(p, "shape") and hasattr(p, "dtype"):
            a = np.asarray(p)
            p = (a.shape, str(a.dtype), a.tobytes())
        try:
            hash(p)
        except TypeError:
            return None
        out.append(p)
    return tuple(out)


def _resolve_reference(reference, auto, obj):
    """reference="auto" -> the bridge's twin (or n/a), callable -> itself, None -> n/a."""
    if isinstance(reference, str) and reference == "auto":
        found = auto()
        return (found, "") if found is not None else (None, bridge.why_missing(obj))
    if reference is None or reference is False:
        return (None, "not requested (reference=None)")
    if not callable(reference):
        raise TypeError(f"check: reference must be 'auto', None or a callable, got {type(reference).__name__}")
    return (reference, "")


def _protocol(what, layers, state, forward_key, train):
    """Keywords for layers with randomness/state (fnnet/state.py), checked; plus the parts of
    the compile-cache key they add. The key is held fixed, so every witness sees one mask."""
    from fnnet import state as _state
    if train is None:
        train = what != "check_layer" or any(_state.is_stateful(l) or _state.is_stochastic(l) for l in layers)
    _state.check_train(what, train)
    if forward_key is not None:
        forward_key = _state.check_key(what, forward_key)
    fix = ("pass state=layer.init_state(in_shape, dtype)" if what == "check_layer"
           else "pass state=fnnet.init_state(net, dtype)")
    try:
        _state.check_request(layers, state, forward_key, train, fix=fix)
    except ValueError as e:
        raise ValueError(f"{what}: {e} (forward_key=... is the key the forward draws from)") from None
    parts = [train] + [np.asarray(a) for a in jax.tree.leaves(state)]
    if forward_key is not None:
        kd = forward_key if forward_key.dtype == jnp.uint32 else jax.random.key_data(forward_key)
        parts.append(np.asarray(kd))
    return forward_key, train, parts


def check_layer(layer, params, x, *, cotangent=None, key=None, reference="auto", nondiff=(),
                forward_kwargs=None, state=None, train=None, forward_key=None, **options):
    """layer.backward vs jax.vjp / reference / finite differences of layer.forward.

    Primals (params, x): params as layer.init made them (() for parameter-free layers),
    x [batch, *in_shape]. The hand-written vjp is forward (keeping the cache) then backward.
    Integer or bool x (token ids for an embedding, say) is non-differentiable by itself:
    it is held fixed for every witness, only dparams is compared, and backward's dx must
    be None, float0 or zeros. nondiff=("x",) does the same for a floating x, ("params",)
    checks dx alone.
    forward_kwargs: keyword arguments for every layer.forward call, held fixed for every witness.
    Layers with randomness or state (fnnet/state.py): forward_key is the key the forward
    draws from, held fixed (the same mask in every witness); state is the layer's state;
    train (default True for such layers) selects train mode (batch statistics, differentiated
    through) or eval mode (running statistics as constants).
    reference: "auto" (the twin in reference/ by type, n/a for a user's layer), a callable
    (params, x, ct) -> (dparams, dx) on NumPy float64 arrays, or None.
    options: mode, directions, detect, full_max, full_budget, localize_max, step, rtol, atol,
    jit (see check_vjp).
    """
    from fnnet import state as _state
    forward_key, train, parts = _protocol("check_layer", (layer,), state, forward_key, train)
    kw = dict(forward_kwargs or {})
    if _state.is_stochastic(layer):
        kw.update(key=forward_key if train else None, train=train)
    if _state.is_stateful(layer):
        kw.update(state=state, train=train)

    def forward(params, x):
        return layer.forward(params, x, **kw)[0]

    def backward(params, x, ct):
        cache = layer.forward(params, x, **kw)[1]
        return layer.backward(params, cache, ct)

    ref = _resolve_reference(reference, lambda: bridge.layer_vjp(layer, state=state, train=train, key=forward_key,
                                                                 forward_kwargs=forward_kwargs), layer)
    user_kw = dict(forward_kwargs or {})
    kw_key = _nd.hashable_values([user_kw]) if user_kw else ()
    cache_key = None if kw_key is None else _hashable("layer", layer, kw_key, *parts)
    return run_check(forward, backward, params, x, cotangent=cotangent, key=key, reference=ref,
                     nondiff=nondiff, names=("params", "x"), title=str(layer), cache_key=cache_key,
                     rule="layer.backward", **options)


def check_loss(loss, out, target, *, key=None, reference="auto", **options):
    """loss.grad vs jax.vjp / reference / finite differences of loss.value, wrt out [batch, k].

    The cotangent is a random scalar, so the hand-written side is ct · loss.grad(out, target).
    """
    from fnnet import losses as _losses
    loss = _losses.get(loss)
    target_np = np.asarray(target)

    def value(out):
        return loss.value(out, target)

    def grad(out, ct):
        return (ct * loss.grad(out, target),)

    def auto():
        g = bridge.loss_grad(loss)
        return None if g is None else (lambda out, ct: (ct * g(out, target_np),))

    ref = _resolve_reference(reference, auto, loss)
    return run_check(value, grad, out, key=key, reference=ref, names=("out",), title=f"loss {loss}",
                     cache_key=_hashable("loss", loss, target_np), **options)


def check_network(net, params, x, y, *, wrt_x=True, key=None, reference="auto", state=None, train=True,
                  forward_key=None, **options):
    """fnnet.backprop vs jax.vjp / reference / finite differences of fnnet.loss.

    Primals (params, x) (or params alone with wrt_x=False); the cotangent is 1, so the rows
    compare the gradient of the loss itself (L2 term included when net.l2 > 0).
    reference: "auto" (reference.backward for the parameters, reference's per-layer
    backwards for dL/dx; n/a when a layer or the loss has no twin), a callable
    (params, x, ct) -> (grads, dx) on NumPy float64 arrays, or None.
    Nets with randomness or state: forward_key (the network's key, held fixed: the same
    masks in every witness), state (fnnet.init_state(net)), train (True: batch statistics
    differentiated through; False: running statistics as constants, dropout off).
    """
    from fnnet import network as _network
    forward_key, train, parts = _protocol("check_network", net.layers, state, forward_key, train)

    def kw(x):   # finite differences run in float64: the state follows x's dtype, as init_state would
        s = None if state is None else jax.tree.map(lambda a: jnp.asarray(a, x.dtype), state)
        return dict(state=s, key=forward_key, train=train)

    def loss(params, x):
        value = _network.loss(net, params, x, y, **kw(x))
        return value if state is None else value[0]

    def backward(params, x, ct):
        _, grads, dx, *_ = _network.backprop(net, params, x, y, **kw(x))
        return jax.tree.map(lambda g: ct * g, grads), None if dx is None else ct * dx   # None: integer ids

    ref = _resolve_reference(reference, lambda: bridge.network_vjp(net, y), net)
    ct = np.ones((), (jax.tree.leaves(params) or [np.asarray(x)])[0].dtype)
    if wrt_x:
        return run_check(loss, backward, params, x, cotangent=ct, key=key, reference=ref,
                         names=("params", "x"), title=str(net), cache_key=_hashable("net", net, y, *parts),
                         cotangent_text="1 (the rows compare dL/dparams and dL/dx)", **options)
    ref_fn, why = ref
    ref_p = (None if ref_fn is None else (lambda p, c: (ref_fn(p, np.asarray(x, np.float64), c)[0],)), why)

    def held(p):   # x held fixed follows the params' dtype (finite differences run them in float64)
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating) or not jax.tree.leaves(p):
            return x
        return jnp.asarray(x, jax.tree.leaves(p)[0].dtype)
    return run_check(lambda p: loss(p, held(p)), lambda p, c: (backward(p, held(p), c)[0],), params, cotangent=ct,
                     key=key, reference=ref_p, names=("params",), title=str(net),
                     cotangent_text="1 (the rows compare dL/dparams)", **options)
