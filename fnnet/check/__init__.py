"""fnnet.check: prove a hand-written backward against three independent oracles.

    report = check_vjp(fun, vjp, *primals, cotangent=None, key=None)
    #   fun(*primals) -> y                  pure JAX forward (array or pytree)
    #   vjp(*primals, cotangent) -> tuple   one cotangent per primal (pytrees allowed)
    report.ok                  # every comparison passed
    print(report)              # table: primal | oracle | max abs err | rel err | worst index | tol | verdict
    report.raise_if_failed()   # AssertionError carrying the table

    check_layer(layer, params, x)            # layer.backward vs jax / reference / FD
    check_network(net, params, x, y)         # fnnet.backprop (params and x) vs the same
    check_loss(loss, out, target)            # loss.grad vs the same

The oracles, per primal leaf (pytree path such as `params.w` or `x`):
  jax.vjp    autodiff of `fun`, in the primals' dtype, element by element;
  reference  the NumPy float64 twin in reference/ (check_layer/network/loss find it
             through fnnet.check.bridge; check_vjp takes reference=callable), "n/a" if none;
  finite differences of g = <cotangent, fun> in float64 (fnnet.check.fd), under
             jax.enable_x64 whatever the user's setting: one difference per element for
             small leaves (mode="auto": <= full_max elements, <= full_budget in all), a few
             random directions for the others, localized per element when one fails.
Kinks (relu at 0, max ties) are not failures: where two answers disagree, or one disagrees
with the central difference, and both lie inside the interval spanned by the one-sided
differences of a genuine kink, the element is "accepted at kink" and counted (the rules,
including several kinks crossed at once: fnnet.check.fd.compare_per_element).
Tolerances and why (dtype-aware rtol, resolution floor, FD noise, autodiff yardstick):
fnnet.check.compare. Validation of what goes in and comes out: fnnet.check.inputs.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check import bridge
from fnnet.check.compare import RTOL_FD, compare, eps, resolution_floor, rtol
from fnnet.check.fd import JIT_OPTIONS, FiniteDifferences, compare_directional, compare_per_element
from fnnet.check.inputs import (Leaf, annotate, as_primal, call_reference, make_cotangent, match_hand,
                                 primal_names, rng_for, x64_context)
from fnnet.check.report import Report, Row

__all__ = ["check_vjp", "check_layer", "check_network", "check_loss", "Report", "Row"]

MODES = ("auto", "directional", "full")


# -- the core ---------------------------------------------------------------------------

def check_vjp(fun, vjp, *primals, cotangent=None, key=None, reference=None, mode="auto",
              names=None, directions=4, full_max=2000, full_budget=1024, localize_max=50_000,
              step=1e-6, jit=True, title=None, _cache_key=None, _cotangent_text=None):
    """Compare a hand-written vjp with jax.vjp, an optional reference and finite differences.

    fun(*primals) -> y: pure JAX (y an array or pytree of floating arrays).
    vjp(*primals, cotangent) -> tuple with one cotangent per primal, each of its primal's
        tree, shapes and dtype (e.g. (DenseParams(dw, db), dx)).
    cotangent: tree of y; default standard normal drawn from `key`.
    key: jax.random key or int seed (default key(0)); cotangent and directions derive from it.
    reference: callable like vjp but on NumPy float64 arrays, or None (reported "n/a").
    mode: "auto": per element for leaves of <= full_max elements, smallest first, while the
        check's per-element total stays <= full_budget (each element costs two evaluations
        of fun); the other leaves directional. "full": always per element. "directional":
        `directions` random directions per leaf. A leaf failing a directional check is re-run
        per element (if it has <= localize_max elements) to find the index.
    step: finite-difference step, scaled per element by max(1, |x_i|).
    jit: evaluate fun, vjp and jax.vjp inside one jax.jit (one compilation instead of one
        per eager op); jit=False runs them eagerly, exactly as given.
    names: display names of the primals (default: fun's parameter names).
    Returns a Report; never raises for a wrong answer (raise_if_failed() does), but raises
    ValueError/TypeError when the vjp's output cannot be matched to the primals at all.
    """
    t0 = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"check: mode must be one of {MODES}, got {mode!r}")
    if not primals:
        raise ValueError("check: give at least one primal")
    names = primal_names(fun, len(primals), names)
    title = title or getattr(fun, "__name__", "fun")
    if isinstance(key, int):
        key = jax.random.key(key)
    ref_note = "no reference given (pass reference=callable)"
    if isinstance(reference, tuple):   # (callable or None, why missing) from the wrappers below
        reference, ref_note = reference

    with x64_context((primals, cotangent)):
        primals = tuple(jax.tree_util.tree_map_with_path(lambda p, l, n=n: as_primal(n, p, l), prim)
                        for n, prim in zip(names, primals))
        leaves, offset = [], 0
        for i, (n, prim) in enumerate(zip(names, primals)):
            for path, leaf in jax.tree_util.tree_leaves_with_path(prim):
                leaves.append(Leaf(n + jax.tree_util.keystr(path), i, tuple(leaf.shape),
                                    np.dtype(leaf.dtype), offset, int(leaf.size)))
                offset += int(leaf.size)
        out = jax.eval_shape(fun, *primals)
        for path, leaf in jax.tree_util.tree_leaves_with_path(out):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(f"check: fun's output{jax.tree_util.keystr(path)} must be a floating "
                                f"array, got dtype {leaf.dtype}")
        ct, ct_text = make_cotangent(cotangent, out, rng_for(key, 0))
        y, hand, by_jax = _evaluate(fun, vjp, primals, ct, jit)
        terms = [np.abs(np.asarray(c, np.float64) * np.asarray(v, np.float64))
                 for c, v in zip(jax.tree.leaves(ct), jax.tree.leaves(y))]
        largest_term = max((float(t.max(initial=0.0)) for t in terms), default=0.0)   # max |ct_j·y_j|
        n_out = sum(t.size for t in terms)
        inner = (sum(float(np.abs(np.asarray(c, np.float64)).sum()) for c in jax.tree.leaves(ct))
                 * max([1.0] + [float(np.abs(np.asarray(l)).max(initial=0.0)) for l in jax.tree.leaves(primals)]))

    rows, hand_leaf, skip = match_hand(hand, primals, names, leaves, title)

    by_ref = call_reference(reference, primals, ct, names, leaves) if reference is not None else None
    fd = FiniteDifferences(fun, primals, ct, step, _cache_key) if offset else None
    jax_leaves = dict(zip([l.name for l in leaves], (np.asarray(v, np.float64) for v in jax.tree.leaves(by_jax))))
    if len(jax_leaves) != len(leaves):  # jax.vjp always matches; guard against odd custom pytrees
        raise RuntimeError("check: jax.vjp returned a different number of leaves than the primals have")

    per_element, spent = set(), 0
    for leaf in sorted(leaves, key=lambda l: l.size):
        if mode == "full" or (mode == "auto" and leaf.size <= full_max and spent + leaf.size <= full_budget):
            per_element.add(leaf.name)
            spent += leaf.size
    rngs = {leaf.name: rng_for(key, 1, k) for k, leaf in enumerate(leaves)}
    if fd is not None:   # all finite differences of the check in one go (fewest padded chunks)
        todo = [l for l in leaves if l.name not in skip]
        fd.prefetch(np.concatenate([np.arange(l.offset, l.offset + l.size) for l in todo
                                    if l.name in per_element] + [np.zeros(0, np.int64)]),
                    [(l.offset, l.size, directions, rngs[l.name]) for l in todo if l.name not in per_element])

    for k, leaf in enumerate(leaves):
        if leaf.name in skip:
            continue
        h, h_dtype = hand_leaf[leaf.name]
        j = jax_leaves[leaf.name]
        dtype = max((leaf.dtype, h_dtype), key=eps)          # the coarser of the two
        rt = rtol(dtype)
        atol = resolution_floor(dtype, largest_term, n_out, inner, leaf.size)
        rt_fd = max(RTOL_FD, rt)

        def adjudicate(bad, leaf=leaf, h=h, j=j):
            c, f, b, tmin = fd.per_element(leaf.offset + bad)
            scale = max(np.abs(h).max(initial=0.0), np.abs(j).max(initial=0.0), np.abs(c).max(initial=0.0))
            return np.minimum(f, b), np.maximum(f, b), rt_fd * scale + atol + 2 * fd.noise(tmin)

        adj = adjudicate if fd is not None else None
        res = compare(h, j, rt, atol, adj)
        rows.append(_row(leaf.name, "jax.vjp", "jax", res))
        jax_allowed = res["tol"] * max(np.abs(h).max(initial=0.0), np.abs(j).max(initial=0.0))
        if by_ref is None:
            rows.append(Row(leaf.name, "reference", "reference", "n/a", note=ref_note))
        else:
            rows.append(_row(leaf.name, "reference", "reference",
                             compare(h, by_ref[leaf.name], rt, atol, adj, yardstick=(j, dtype))))
        if fd is not None:
            rows.append(_fd_row(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype, leaf.name in per_element,
                                directions, localize_max, rngs[leaf.name]))

    order = {l.name: k for k, l in reversed(list(enumerate(leaves)))}
    order.update({n: order.get(next((l.name for l in leaves if l.primal == i), ""), -1)
                  for i, n in enumerate(names) if n not in order})
    rows.sort(key=lambda r: order.get(r.primal, -1))    # leaf order; structure rows first within a leaf
    dtypes = sorted({str(l.dtype) for l in leaves})
    fd_text = (f"finite differences in float64, step {step:g}·max(1, |x|)" if fd is None or fd.fd_eps <= eps(np.float64)
               else f"finite differences limited to {sorted(map(str, fd.out_dtypes))} (fun's output under x64)")
    header = f"primals {'/'.join(dtypes)}; cotangent {_cotangent_text or ct_text}; {fd_text}"
    return Report(title, tuple(rows), header, time.perf_counter() - t0)


def _evaluate(fun, vjp, primals, ct, jit):
    """(y, hand-written cotangents, jax.vjp's cotangents), by default in one jitted call."""
    def hand_written(primals, ct):
        try:
            return vjp(*primals, ct)
        except Exception as e:
            raise annotate(e, "the hand-written vjp")

    def both(primals, ct):
        y, pullback = jax.vjp(fun, *primals)
        return y, hand_written(primals, ct), pullback(ct)

    if not jit:
        return both(primals, ct)
    try:
        return jax.jit(both, compiler_options=JIT_OPTIONS)(primals, ct)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerIntegerConversionError):
        return both(primals, ct)   # value-dependent Python in the vjp: it only runs eagerly
    except TypeError as e:
        if "not a valid JAX type" not in str(e):
            raise
        return both(primals, ct)   # the vjp returned non-arrays (None, strings): let the checks name it


def _row(primal, oracle, kind, res, note=""):
    return Row(primal, oracle, kind, "ok" if res["ok"] else "FAIL", res["max_abs_err"], res["rel_err"],
               res["worst_index"], res["tol"], res["kinks"], note)


_UNRESOLVED = ("inconclusive: the whole leaf is below what float64 differences resolve "
               "(tol > 1); the other oracles judge it")


def _fd_row(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype, full, directions, localize_max, rng):
    if full:
        res = compare_per_element(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype)
        return _row(leaf.name, "finite diff (per element)", "fd", res,
                    note=_UNRESOLVED if res["ok"] and res["tol"] > 1 else "")
    res = compare_directional(fd, leaf, h, j, rt_fd, atol, directions, rng, dtype)
    label = f"finite diff ({directions} directions)"
    if res["ok"]:
        return _row(leaf.name, label, "fd", res, note=_UNRESOLVED if res["tol"] > 1 else "")
    what = f"{directions} random directions: rel err {res['rel_err']:.2g} > tol {res['tol']:.2g}"
    if leaf.size > localize_max:
        return _row(leaf.name, label, "fd", res,
                    note=f"{what}; the leaf ({leaf.size} elements) is too large to localize per element "
                         f"(localize_max={localize_max}); the jax.vjp row has the index, or pass mode='full'")
    local = compare_per_element(fd, leaf, h, j, rt_fd, atol, jax_allowed, dtype)
    note = (f"{what}; per element ({leaf.size} differences) localizes it" if not local["ok"] else
            f"{what}, but per element every entry agrees: the directions crossed several kinks at once")
    return _row(leaf.name, "finite diff (per element)", "fd", local, note=note)


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


def check_layer(layer, params, x, *, cotangent=None, key=None, reference="auto", state=None, train=None,
                forward_key=None, **options):
    """layer.backward vs jax.vjp / reference / finite differences of layer.forward.

    Primals (params, x): params as layer.init made them (() for parameter-free layers),
    x [batch, *in_shape]. The hand-written vjp is forward (keeping the cache) then backward.
    reference: "auto" (the twin in reference/ by type, n/a for a user's layer), a callable
    (params, x, ct) -> (dparams, dx) on NumPy float64 arrays, or None.
    Layers with randomness or state (fnnet/state.py): forward_key is the key the forward
    draws from, held fixed (the same mask in every witness); state is the layer's state;
    train (default True for such layers) selects train mode (batch statistics, differentiated
    through) or eval mode (running statistics as constants).
    options: mode, directions, full_max, full_budget, localize_max, step, jit (see check_vjp).
    """
    from fnnet import state as _state
    forward_key, train, parts = _protocol("check_layer", (layer,), state, forward_key, train)
    kwargs = {}
    if _state.is_stochastic(layer):
        kwargs.update(key=forward_key if train else None, train=train)
    if _state.is_stateful(layer):
        kwargs.update(state=state, train=train)

    def forward(params, x):
        return layer.forward(params, x, **kwargs)[0]

    def backward(params, x, ct):
        cache = layer.forward(params, x, **kwargs)[1]
        return layer.backward(params, cache, ct)

    ref = _resolve_reference(reference, lambda: bridge.layer_vjp(layer, state=state, train=train), layer)
    return check_vjp(forward, backward, params, x, cotangent=cotangent, key=key, reference=ref,
                     names=("params", "x"), title=str(layer),
                     _cache_key=_hashable("layer", layer, *parts), **options)


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
    return check_vjp(value, grad, out, key=key, reference=ref, names=("out",), title=f"loss {loss}",
                     _cache_key=_hashable("loss", loss, target_np), **options)


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
        return jax.tree.map(lambda g: ct * g, grads), ct * dx

    ref = _resolve_reference(reference, lambda: bridge.network_vjp(net, y), net)
    ct = np.ones((), (jax.tree.leaves(params) or [np.asarray(x)])[0].dtype)
    if wrt_x:
        return check_vjp(loss, backward, params, x, cotangent=ct, key=key, reference=ref,
                         names=("params", "x"), title=str(net), _cache_key=_hashable("net", net, y, *parts),
                         _cotangent_text="1 (the rows compare dL/dparams and dL/dx)", **options)
    ref_fn, why = ref
    ref_p = (None if ref_fn is None else (lambda p, c: (ref_fn(p, np.asarray(x, np.float64), c)[0],)), why)
    return check_vjp(lambda p: loss(p, x), lambda p, c: (backward(p, x, c)[0],), params, cotangent=ct,
                     key=key, reference=ref_p, names=("params",), title=str(net),
                     _cotangent_text="1 (the rows compare dL/dparams)", **options)
