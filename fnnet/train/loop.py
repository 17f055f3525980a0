"""The compiled training loop behind `fnnet.fit`.

One call of `run_chunk` trains up to `spec.chunk` epochs entirely on the device:

    lax.while_loop over epochs  (a dynamic count `active`, stopping early on divergence)
      └─ lax.scan over the full minibatches of the epoch, then one smaller step on the
         remainder (n % batch examples) so that no example is dropped

The carry (the TrainState now, the one before it, first bad epoch) is donated, so a
chunk updates its buffers in place. Divergence is found on the device: an epoch whose
mean loss, new params or validation loss are not all finite is not committed; its index
goes in the carry and the loop stops. The carry keeps the last committed TrainState and
the one before it, because a non-finite loss measured at the start of epoch e also
condemns the params epoch e-1 produced (fit checks the candidates' losses on the host).
The per-epoch records come back as one [chunk, 4] array: one device-to-host copy per chunk.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from fnnet import network as _network
from fnnet import state as _state
from fnnet.custom_vjp import loss_with_manual_grad
from fnnet.train import fsdp as _fsdp
from fnnet.train import sharding as _sharding
from fnnet.train import tensor_parallel as _tp
from fnnet.train.metrics import accuracy_value

# run_chunk's second output is records [chunk, 4] of the params' dtype, one row per epoch:
LOSS, VAL_LOSS, VAL_ACCURACY, STATUS = range(4)   # columns; NaN where not computed
OK, DIVERGED, SKIPPED = 0, 1, 2                   # values of the STATUS column


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    """Everything static about a run; hashable, so it is jit's static argument."""
    net: Any
    optimizer: Any        # optax GradientTransformation (hashed by its functions' identity)
    grad: str             # "manual" (fnnet's hand-written backward) or "autodiff"
    n: int                # training examples
    batch: int            # examples per step; == n for full batch
    shuffle: bool         # a fresh permutation each epoch from fold_in(key, epoch)
    chunk: int            # most epochs one call can run (rows of its records buffer)
    validate: bool        # compute val loss / accuracy after each epoch
    parallel: Any = None  # sharding.DataParallel: each step's batch split over a mesh


class TrainState(NamedTuple):
    """What one epoch reads and writes. Growth: layer state (batchnorm statistics) goes in
    `state` (() for stateless nets); per-step keys derive from (key, epoch, step)."""
    params: Any
    opt_state: Any
    state: Any = ()       # layer state tree; () while no layer has any


class Carry(NamedTuple):
    now: TrainState       # after the last committed epoch
    prev: TrainState      # one committed epoch earlier (== now before any epoch ran)
    bad: jax.Array        # int32 []: first diverged epoch (absolute), -1 while all is finite


class Data(NamedTuple):
    x: jax.Array          # [n, *in_shape]
    y: jax.Array          # [n] labels or [n, k] targets
    x_val: Any = None
    y_val: Any = None


def _protocol_kw(net, state, key):
    """Keywords for nets with stateful / stochastic layers (fnnet/state.py); {} for plain nets,
    which so run exactly as before."""
    kw = {}
    if any(_state.is_stateful(l) for l in net.layers):
        kw["state"] = state
    if any(_state.is_stochastic(l) for l in net.layers):
        kw["key"] = key
    return kw


def step_value_and_grad(net, grad, params, xb, yb, state=(), key=None):
    """-> (loss, grads, new layer state); the state passes through unchanged for stateless nets."""
    kw = _protocol_kw(net, state, key)
    if grad == "manual":
        value, grads, *new = _network.value_and_grad(net, params, xb, yb, **kw)   # hand-written backward
        return value, grads, (new[0] if new else state)
    # --- comparison path only (fit(grad="autodiff")): autodiff of the same forward. ---
    # This is the one place outside fnnet.check where jax.grad appears; fnnet never
    # trains with it unless asked to, so that the two can be compared.
    if "state" in kw:
        (value, new), grads = jax.value_and_grad(lambda p: _network.loss(net, p, xb, yb, **kw), has_aux=True)(params)
        return value, grads, new
    value, grads = jax.value_and_grad(lambda p: _network.loss(net, p, xb, yb, **kw))(params)
    return value, grads, state


def _value_fn(net, xb, yb, state, key):
    """The batch loss as a function of params, for optax's extra-args transforms, with fnnet's
    hand-written gradient as its VJP. Layer state and the step's key are held fixed."""
    kw = _protocol_kw(net, state, key)
    if not kw:
        manual = loss_with_manual_grad(net)
        return lambda p: manual(p, xb, yb)

    @jax.custom_vjp
    def f(p):
        value = _network.loss(net, p, xb, yb, **kw)
        return value[0] if "state" in kw else value

    def fwd(p):
        value, grads, *_ = _network.value_and_grad(net, p, xb, yb, **kw)   # one hand-written pass
        return value, grads

    def bwd(grads, g):
        return (jax.tree.map(lambda t: (g * t).astype(t.dtype), grads),)

    f.defvjp(fwd, bwd)
    return f


def _step(spec, params, opt_state, xb, yb, state=(), key=None):
    """One optimizer step on the batch; returns the loss measured before the update.

    optax's extra-args protocol: transforms that read the loss (reduce_on_plateau,
    lbfgs's line search, any GradientTransformationExtraArgs) get value, grad and
    value_fn (the batch loss as a function of params, differentiated by jax.grad through
    fnnet's hand-written backward); plain transforms ignore them.
    With spec.parallel the batch is split over the mesh (sharding.py: one psum of the
    gradients, plus the synchronized batchnorm statistics' own); value_fn then runs
    replicated on every device (correct, not split).
    """
    if spec.parallel is None:
        value, grads, state = step_value_and_grad(spec.net, spec.grad, params, xb, yb, state, key)
    elif isinstance(spec.parallel, _fsdp.Fsdp):     # params and grads split over the mesh (fsdp.py)
        value, grads = _fsdp.value_and_grad(spec.parallel, spec.net, params, xb, yb)
    elif isinstance(spec.parallel, _tp.TensorParallel):   # layers split over "model" (tensor_parallel.py)
        value, grads = spec.parallel.value_and_grad(params, xb, yb)
    else:
        def local(net, p, x, y, st, k):
            return step_value_and_grad(net, spec.grad, p, x, y, st, k)
        value, grads, state = _sharding.value_grad_state(spec.parallel, local, spec.net, params, xb, yb,
                                                         state, key)
    value_fn = _value_fn(spec.net, xb, yb, state, key)
    if isinstance(spec.parallel, _tp.TensorParallel):     # params in the split layout: W_qkv permuted
        one_device_fn = value_fn
        value_fn = lambda p: one_device_fn(_tp.natural(spec.parallel, p))   # noqa: E731
    tx = optax.with_extra_args_support(spec.optimizer)
    updates, opt_state = tx.update(grads, opt_state, params, value=value, grad=grads, value_fn=value_fn)
    return optax.apply_updates(params, updates), opt_state, state, value


def _step_key(key, epoch, i):
    """Stochastic layers' key for step i of `epoch`: fold_in(fold_in(key, epoch), i + 1), a
    stream of its own beside the epoch's shuffling key fold_in(key, epoch); None without a key."""
    return None if key is None else jax.random.fold_in(jax.random.fold_in(key, epoch), i + 1)


def _epoch(spec, params, opt_state, data, key, epoch, state=()):
    """All steps of one epoch -> (params, opt_state, layer state, mean of the step losses)."""
    x, y = data.x, data.y
    dtype = jax.tree.leaves(params)[0].dtype
    if spec.batch == spec.n:                                       # full batch: one step
        params, opt_state, state, value = _step(spec, params, opt_state, x, y, state, _step_key(key, epoch, 0))
        return params, opt_state, state, value.astype(dtype)
    full, rem, k = spec.n // spec.batch, spec.n % spec.batch, spec.batch
    if spec.shuffle:                                               # gather this epoch's order
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), spec.n)

        def batch(start, size):
            idx = lax.dynamic_slice_in_dim(perm, start, size)
            return x[idx], y[idx]
    else:                                                          # data order: plain slices
        def batch(start, size):
            return lax.dynamic_slice_in_dim(x, start, size), lax.dynamic_slice_in_dim(y, start, size)

    def body(carry, i):
        p, s, st = carry
        p, s, st, value = _step(spec, p, s, *batch(i * k, k), st, _step_key(key, epoch, i))
        return (p, s, st), value.astype(dtype)

    (params, opt_state, state), values = lax.scan(body, (params, opt_state, state), jnp.arange(full))
    total, steps = values.sum(), full
    if rem:                                                        # the last, smaller batch
        params, opt_state, state, value = _step(spec, params, opt_state, *batch(full * k, rem), state,
                                                _step_key(key, epoch, full))
        total, steps = total + value.astype(dtype), steps + 1
    return params, opt_state, state, total / steps


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))


def _where(ok, new, old):
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def eval_loss(net, params, x, y, state=()):
    """The loss in eval mode (dropout off, running statistics): validation and divergence checks."""
    kw = _protocol_kw(net, state, None)
    if not kw:
        return _network.loss(net, params, x, y)
    value = _network.loss(net, params, x, y, state=kw.get("state"), train=False)
    return value[0] if "state" in kw else value


@functools.partial(jax.jit, static_argnums=0)
def start_carry(optimizer, params, opt_state=None, state=()):
    """The first carry, in fresh buffers (copies, never the caller's: they get donated).

    opt_state None: optimizer.init(params); else the given state (a resumed run).
    state: the layer state (fnnet.init_state), () for stateless nets."""
    params = jax.tree.map(jnp.copy, params)
    if opt_state is None:
        opt_state = optimizer.init(params)
    now = TrainState(params, jax.tree.map(jnp.copy, opt_state), jax.tree.map(jnp.copy, state))
    return Carry(now, jax.tree.map(jnp.copy, now), jnp.int32(-1))


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def run_chunk(spec: LoopSpec, carry: Carry, data: Data, key, start, active):
    """Train epochs start, start+1, ... : `active` (<= spec.chunk) of them, or up to and
    including the first diverged one -> (carry, records [spec.chunk, 4]).

    start: the absolute epoch number (a resumed run passes its epoch count), which the
    shuffling keys fold in; records row i is epoch start + i.

    A while_loop with a dynamic trip count: one executable serves every chunk size, so
    the host can resize chunks (and run a shorter last one) without recompiling, and a
    diverged run stops at once. Rows past the last epoch run are SKIPPED.
    """
    dtype = jax.tree.leaves(carry.now.params)[0].dtype
    nan = jnp.full((), jnp.nan, dtype)
    records = jnp.full((spec.chunk, 4), jnp.nan, dtype).at[:, STATUS].set(SKIPPED)

    def more(state):
        i, c, _ = state
        return (i < active) & (c.bad < 0)

    def epoch(state):
        i, c, records = state
        e = start + i
        params, opt_state, st, value = _epoch(spec, c.now.params, c.now.opt_state, data, key, e, c.now.state)
        ok = jnp.isfinite(value) & _all_finite(params) & _all_finite(st)
        if spec.validate:                                          # on the params after epoch e, eval mode
            plain = params                                         # in the one-device layout
            if isinstance(spec.parallel, _tp.TensorParallel):
                plain = _tp.natural(spec.parallel, params)
            vl = eval_loss(spec.net, plain, data.x_val, data.y_val, st).astype(dtype)
            va = accuracy_value(spec.net, plain, data.x_val, data.y_val,
                                _protocol_kw(spec.net, st, None).get("state")).astype(dtype)
            ok = ok & jnp.isfinite(vl)
        else:
            vl = va = nan
        new = TrainState(params, opt_state, st)
        now = _where(ok, new, c.now)                               # commit only a finite epoch
        prev = _where(ok, c.now, c.prev)
        row = jnp.stack([value.astype(dtype), vl, va, jnp.where(ok, OK, DIVERGED).astype(dtype)])
        c = Carry(now, prev, jnp.where(ok, c.bad, e).astype(jnp.int32))
        return i + 1, c, lax.dynamic_update_slice(records, row[None, :], (i, jnp.int32(0)))

    _, carry, records = lax.while_loop(more, epoch, (jnp.int32(0), carry, records))
    return carry, records
