"""Training: `fit(net, params, x, y, optimizer=..., epochs=...) -> FitResult`.

    r = fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=100,
            batch_size=32, key=jax.random.key(0), validation=(x_val, y_val))
    r.params, r.history, r.opt_state, r.state, r.epoch

Resuming: the result always carries the optimizer state, the layer state and the
absolute epoch count, however the run was started; pass them back:

    r = fit(net, params, x, y, optimizer=opt, epochs=100)
    fnnet.save(path, net, r.params, opt_state=r.opt_state, epoch=r.epoch, state=r.state)
    ck = fnnet.restore(path, optimizer=opt)
    r = fit(ck.net, ck.params, x, y, optimizer=opt, epochs=100,
            opt_state=ck.opt_state, state=ck.state, initial_epoch=ck.epoch)

is bit-identical to one run of 200 epochs. `checkpoint="run.npz"` (or a callable) with
`checkpoint_every=N` keeps such a file every N epochs, and Ctrl-C stops at the last complete
epoch (fnnet/train/interrupt.py: TrainingInterrupted carries its FitResult, and a
`checkpoint` is written with it first).

Gradients come from the hand-written `value_and_grad` (grad="autodiff" swaps in
jax.value_and_grad of `loss`, for comparison only). The epochs run in compiled chunks
(see fnnet/train/loop.py); the host only wakes between chunks, to report progress and
to raise DivergedError when the device flagged a non-finite epoch.
"""
from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.train import progress as _fit_progress
from fnnet.train import fsdp as _fsdp
from fnnet.train import placement as _placement
from fnnet.train import sharding as _sharding
from fnnet.train import tensor_parallel as _tp
from fnnet import state as _state
from fnnet import contracts
from fnnet.train.loop import (LOSS, OK, STATUS, VAL_ACCURACY, VAL_LOSS, Data, LoopSpec, run_chunk,
                             start_carry)
from fnnet.train.fit_checks import (check_data, check_int, check_key, check_opt_state,  # noqa: F401
                                    check_fit_params)
from fnnet.train.divergence import DivergedError, LossGrowthWarning, diverged, warn_growth  # noqa: F401
from fnnet.train.interrupt import Deferred, TrainingInterrupted
from fnnet.train.result import FitResult, History

__all__ = ["fit", "FitResult", "History", "DivergedError", "TrainingInterrupted"]

GRAD_MODES = ("manual", "autodiff")
MAX_CHUNK = 1 << 16      # most epochs per call (the records buffer is [chunk, 4])
PROGRESS_UPDATES = 100   # adaptive chunks start at ceil(epochs / this) epochs ...
CHUNK_SECONDS = 0.25     # ... and are resized towards this many seconds each


def fit(net, params, x, y, *, optimizer, epochs, batch_size=None, key=None, grad="manual",
        validation=None, progress=None, chunk_epochs=None, opt_state=None, initial_epoch=0, state=None,
        mesh=None, batch_axis="data", batch_stats="sync", checkpoint=None, checkpoint_every=None):
    """Train `params` of `net` on (x, y) -> FitResult(params, history, opt_state, state, epoch).

    x: [n, *in_shape] of the params' dtype (float32 or float64); y: what the net's loss
    takes, e.g. [n, k] targets or, for softmax cross-entropy, integer labels [n].
    optimizer: an optax GradientTransformation, e.g. optax.sgd(0.1). Transforms that need
      the loss (optax.contrib.reduce_on_plateau, optax.lbfgs: GradientTransformationExtraArgs)
      get value=, grad= and value_fn= (the batch loss, with fnnet's hand-written gradient).
    epochs: >= 1, how many epochs this call runs. batch_size: None = full batch, one step per epoch; 1 = per-sample
      SGD, in data order without a key, reshuffled each epoch with one; k = steps on
      k examples, shuffled each epoch (needs `key`). When k does not divide n, the
      n % k left-over examples make one more, smaller step: no example is dropped.
    key: jax.random.key; epoch e's order is permutation(fold_in(key, e), n), so a run
      of E epochs replays the first E epochs of any longer run with the same key.
    opt_state: the optimizer state to start from (optimizer.init(params) for a fresh
      run, or the one a previous fit returned / fnnet.restore read). None: a fresh
      optimizer.init(params). The final state is the result's opt_state either way.
    initial_epoch: epochs already trained (>= 0): epoch numbers, and so the shuffling
      keys, continue from it. A resumed run (same key, opt_state and initial_epoch)
      is bit-identical to an uninterrupted one.
    grad: "manual" (fnnet's hand-written backward) or "autodiff" (jax.grad of
      fnnet.loss; a comparison path, not for production use).
    validation: (x_val, y_val), checked like (x, y); adds val_loss/val_accuracy.
    progress: None (silent), True (a progress line on stderr) or
      callable(epochs_done, history_so_far), called after each chunk of epochs.
    chunk_epochs: epochs per chunk (at most 65536), the host's only chance to act (report
      progress, write a checkpoint, notice Ctrl-C). Default: chunks that start at 1% of the
      epochs and are resized to take about 0.25 s each (the overhead stays < 1%; where they
      fall depends on timing, never the results).
    checkpoint, checkpoint_every: a path (str or os.PathLike: fnnet.save writes the net, params,
      opt_state, epoch and layer state there, atomically) or a callable(FitResult), used after
      every epoch whose absolute number (initial_epoch + i) is a multiple of checkpoint_every
      (chunks end there), and once more with the last complete epoch when Ctrl-C stops fit.
    Ctrl-C (SIGINT, in the main thread): fit stops after the chunk in flight and raises
      TrainingInterrupted (a KeyboardInterrupt) whose .result is the FitResult of the last
      complete epoch; a second Ctrl-C stops at once and keeps nothing.
    mesh: a jax.sharding.Mesh (e.g. jax.make_mesh((8,), ("data",))) for data-parallel
      training: each step's batch is split over the mesh axis `batch_axis`, params,
      optimizer state and the training set are replicated, and the hand-written
      gradients are combined by one lax.psum weighted by the real example counts
      (see fnnet/train/sharding.py). The returned params (and opt_state, state) are
      replicated on the mesh. Dropout masks are the whole batch's, as on one device.
      A mesh with an "fsdp" axis (("fsdp",) or ("data", "fsdp")) trains with FSDP instead:
      params and optimizer state split over "fsdp", the batch over every device, weights
      gathered per layer and gradients reduce-scattered (fnnet/train/fsdp.py); the returned
      params and opt_state stay split on the mesh. A mesh with a "model" axis (("model",)
      or ("data", "model")) splits the layers instead (tensor parallelism: each Dense ->
      activation -> Dense pair column/row-wise, attention by heads; the batch over "data";
      fnnet/train/tensor_parallel.py); the returned params and opt_state are in the
      one-device layout, split over the mesh's devices.
    batch_stats: with mesh= and BatchNorm layers, "sync" (default: batch statistics over the
      whole step's batch, psummed over the mesh in the layer's forward and backward, so
      training equals one device to rounding) or "local" (each device normalizes with its
      own shard's statistics, as DDP without SyncBatchNorm: no extra communication, but the
      result differs from one device; running statistics are the devices' mean). fit sets
      the layers' axis_name itself. A step whose batch the device count does not divide
      (e.g. the last, smaller minibatch) runs wholly replicated in nets with BatchNorm or
      Dropout, so its statistics and masks stay the whole batch's.

    Raises ValueError/TypeError on bad input before training, and DivergedError
    (a FloatingPointError carrying the last good params) if the loss, the params or the
    validation loss become NaN/Inf.

    How fit grows: everything an epoch reads and writes is one TrainState
    (fnnet/train/loop.py: params, opt_state, and a `state` slot that is () for
    stateless nets). Layer state (batchnorm) threads through that slot, and its
    keyword (state=) adds it to the result after opt_state, as fnnet.forward's does;
    per-step keys for stochastic layers derive from fold_in(key, absolute epoch).
    state: the layer state of a net with stateful layers (fnnet.init_state(net, dtype); BatchNorm's
      running statistics), updated by every step in train mode and returned as the result's
      state; required for such nets. Stochastic layers (Dropout) need `key`: step i of epoch e
      runs with fold_in(fold_in(key, e), i + 1), layer j of it with fold_in(that, j), so a
      resumed run replays the same masks. Validation runs in eval mode (dropout off, running
      statistics as constants).
    """
    epochs = check_int("epochs", epochs, 1)
    if grad not in GRAD_MODES:
        raise ValueError(f"fit: grad must be one of {GRAD_MODES}, got {grad!r}")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"fit: optimizer must be an optax GradientTransformation "
                        f"(e.g. optax.sgd(0.1)), got {optimizer!r}")
    _fit_progress.check(progress)
    every = None if checkpoint_every is None else check_int("checkpoint_every", checkpoint_every, 1)
    hook = _checkpoint_hook(net, checkpoint, every)
    initial_epoch = check_int("initial_epoch", initial_epoch, 0)
    params = check_fit_params(net, params)
    if opt_state is not None:
        opt_state = check_opt_state(optimizer, params, opt_state)
    x, y = check_data(net, params, *_placement.whole((x, y), "training data"), "training data")
    n = x.shape[0]
    batch = n if batch_size is None else check_int("batch_size", batch_size, 1, n)
    if key is not None:
        key = check_key(key)
    # layers with state / randomness (fnnet/state.py): the same checks as fnnet.loss, before training
    layer_state = contracts.check_run(net, params, x, state, key, True, "fit",
                                      fix="pass fit(..., state=fnnet.init_state(net, dtype))",
                                      key_fix="fit(..., key=jax.random.key(...)); fit derives one per step")[0]
    if 1 < batch < n and key is None:
        raise ValueError(f"fit: batch_size={batch} < n={n} shuffles the data each epoch and needs "
                         f"an explicit key=jax.random.key(...) (batch_size=None is full batch, "
                         f"batch_size=1 runs in data order without a key)")
    if batch_stats not in _sharding.BATCH_STATS:
        raise ValueError(f"fit: batch_stats must be one of {_sharding.BATCH_STATS}, got {batch_stats!r}")
    parallel = _layout_for(mesh, net, batch_axis, batch_stats, grad, n, batch)
    if parallel is not None:
        net = _sharding.with_axis(net, None)      # the steps set axis names themselves (sharding.py)
        x, y, params, opt_state, key = _place_on_mesh(parallel, optimizer, x, y, params, opt_state, key)
    data = Data(x, y, *_validation_data(net, params, validation, parallel))
    adaptive, size, capacity = _chunking(epochs, chunk_epochs)
    spec = LoopSpec(net, optimizer, grad, n, batch, key is not None and batch < n, capacity,
                    validation is not None, parallel)
    report = _fit_progress.make(progress, epochs)
    stochastic = any(_state.is_stochastic(l) for l in net.layers)

    def result(now, hist, done):
        """The FitResult for a TrainState after `done` epochs of this call."""
        p, o, st = now
        if parallel is not None:
            p, o, st = _layouts(parallel).to_user_mesh(parallel, (p, o, st))
        return FitResult(p, hist, o, None if layer_state is None else st, initial_epoch + done)

    return _run(spec, params, opt_state, data, key if (spec.shuffle or stochastic) else None, epochs,
                initial_epoch, report, min(size, capacity), adaptive,
                () if layer_state is None else layer_state, result, hook, every)


def _checkpoint_hook(net, checkpoint, every):
    """fit's `checkpoint` as a callable(FitResult), or None; checked before training."""
    if checkpoint is None:
        if every is not None:
            raise ValueError("fit: checkpoint_every needs checkpoint= (a path or a callable(FitResult))")
        return None
    if every is None:
        raise ValueError("fit: checkpoint= needs checkpoint_every=N (epochs between checkpoints)")
    if callable(checkpoint):
        return checkpoint
    import os
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"fit: checkpoint must be a path or a callable(FitResult), got {checkpoint!r}")
    from fnnet import checkpoint as _checkpoint
    _checkpoint.net_to_json(net)         # a net save cannot describe fails now, not after N epochs

    def save(r):
        _checkpoint.save(checkpoint, net, r.params, opt_state=r.opt_state, epoch=r.epoch, state=r.state)
    return save


def _resize(size, seconds, cap):
    """Next adaptive chunk size: aim at CHUNK_SECONDS per chunk, changing by x0.5 .. x4."""
    factor = min(4.0, max(0.5, CHUNK_SECONDS / max(seconds, 1e-6)))
    return max(1, min(cap, int(size * factor)))


def _validation_data(net, params, validation, parallel):
    """() without validation, else (x_val, y_val) checked against the net and placed on the
    run's mesh like the training data."""
    if validation is None:
        return ()
    if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
        raise ValueError("fit: validation must be a pair (x_val, y_val)")
    val = check_data(net, params, *_placement.whole(tuple(validation), "validation data"), "validation data")
    if parallel is not None:
        _sharding.check_placement(parallel, val, "validation data")
        val = _sharding.replicate(parallel, val)
    return val


def _chunking(epochs, chunk_epochs):
    """(adaptive, size, capacity): capacity is the records buffer's length, rounded up to a
    power of two so that runs of similar length share one executable; size is how many epochs
    a call runs (adaptive: resized from the measured time, see _resize)."""
    adaptive = chunk_epochs is None
    size = epochs if adaptive else check_int("chunk_epochs", chunk_epochs, 1)
    capacity = min(MAX_CHUNK, 1 << (size - 1).bit_length())
    if adaptive:
        size = math.ceil(epochs / PROGRESS_UPDATES)
    return adaptive, size, capacity


def _layout_for(mesh, net, batch_axis, batch_stats, grad, n, batch):
    """What a mesh asks for, validated before anything is compiled: None (no mesh), FSDP (an
    "fsdp" axis), tensor parallelism (a "model" axis) or data parallelism (otherwise)."""
    if mesh is None:
        return None
    if _fsdp.wanted(mesh):                   # params split too (fsdp.py)
        parallel = _fsdp.setup(net, mesh, batch_axis, grad=grad)
        _fsdp.check_batches(parallel, n, batch)
        return parallel
    if _tp.wanted(mesh):                     # layers split (tensor_parallel.py)
        if batch_axis not in (None, "data"):
            raise ValueError(f"fit: with a 'model' axis the batch is split over 'data'; batch_axis "
                             f"must stay 'data', got {batch_axis!r}")
        parallel = _tp.setup(net, mesh, where="fit", grad=grad)
        _tp.check_batches(parallel, n, batch)
        return parallel
    return _sharding.setup(net, mesh, batch_axis, batch_stats=batch_stats)


def _place_on_mesh(parallel, optimizer, x, y, params, opt_state, key):
    """(x, y, params, opt_state, key) on the run's mesh: data and key replicated; params and
    optimizer state replicated (data parallel), split by FSDP's rule, or permuted and split
    by tensor parallelism's. Data committed to other devices is refused."""
    _sharding.check_placement(parallel, (x, y), "training data")
    _sharding.check_placement(parallel, opt_state, "opt_state")
    x, y = _sharding.replicate(parallel, (x, y))
    if isinstance(parallel, _tp.TensorParallel):      # W_qkv's columns permuted once, here
        params, opt_state = parallel.shard(params, opt_state) if opt_state is not None else \
            (parallel.shard(params), None)
    else:
        fsdp = isinstance(parallel, _fsdp.Fsdp)
        params, opt_state = (_fsdp.place if fsdp else _sharding.replicate)(parallel, (params, opt_state))
        if fsdp and opt_state is None:    # created split: never whole on a device (fsdp.py)
            opt_state = _fsdp.init_opt_state(parallel, optimizer, params)
    key = None if key is None else _sharding.replicate(parallel, key)
    return x, y, params, opt_state, key


def _layouts(parallel):
    """The module that places a run's arrays on its mesh and hands them back: fsdp.py (params
    split over "fsdp"), tensor_parallel.py (layers split over "model") or sharding.py (data
    parallel, params replicated)."""
    if isinstance(parallel, _fsdp.Fsdp):
        return _fsdp
    if isinstance(parallel, _tp.TensorParallel):
        return _tp
    return _sharding


def _run(spec, params, opt_state, data, key, epochs, initial_epoch, report, size, adaptive, state, result,
         hook, every):
    initial = (params, opt_state, state)   # the caller's buffers: start_carry copies, never donates
    carry = start_carry(spec.optimizer, params, opt_state, state)
    if spec.parallel is not None:       # optimizer constants too, not on a default device
        layouts = _layouts(spec.parallel)
        carry = (layouts.replicate if layouts is _sharding else layouts.place)(spec.parallel, carry)
    table = np.full((epochs, 4), np.nan, jax.tree.leaves(params)[0].dtype)  # rows: epochs

    def history(upto):
        cols = table[:upto, LOSS], table[:upto, VAL_LOSS], table[:upto, VAL_ACCURACY]
        return History(cols[0], *(cols[1:] if spec.validate else (None, None)))

    def snapshot(upto):
        return jax.tree.map(np.copy, history(upto))

    def collect(start, active, records, saved):
        """Copy one finished chunk's records to the host; report; checkpoint; find divergence.
        saved: a copy of the chunk's final TrainState when it ends on a checkpoint epoch."""
        rows = np.asarray(records)[:active]
        table[start:start + active] = rows
        warn_growth(table, start, active)     # LossGrowthWarning: the loss grew 100x, still finite
        flagged = np.flatnonzero(rows[:, STATUS] != OK)
        if flagged.size:                      # the first non-OK epoch is the diverged one
            return start + int(flagged[0])
        if report is not None:
            report(start + active, history(start + active))
        if saved is not None:
            hook(result(saved, snapshot(start + active), start + active))
        return None

    def chunk_length(start):
        """The next chunk's epochs: `size`, cut at the run's end and the next checkpoint epoch."""
        active = min(size, epochs - start)
        if every is not None:
            active = min(active, every - (initial_epoch + start) % every)
        return active

    # Chunks of `size` epochs; adaptive ones (progress on, chunk_epochs not given) start at
    # 1% of the run and are resized towards CHUNK_SECONDS each, so that the ~0.1 ms of
    # host work per chunk stays far below 1% of the run.
    # A chunk ending on a checkpoint epoch has its final TrainState copied before the next
    # chunk is dispatched (dispatch donates the carry). Ctrl-C (interrupt.Deferred) stops
    # the dispatching; the chunk in flight is collected and its carry is the result.
    start, pending, bad, last, hooked = 0, None, None, None, None
    stop = Deferred()
    try:
        stop.__enter__()
        while pending is not None or start < epochs and not stop.requested:
            dispatched = None
            if start < epochs and not stop.requested:
                # Dispatch the next chunk before reading the previous one's records, so that
                # the host's reporting overlaps the device's training.
                active = chunk_length(start)
                carry, records = run_chunk(spec, carry, data, key, np.int32(initial_epoch + start),
                                           np.int32(active))
                at = hook is not None and (initial_epoch + start + active) % every == 0
                saved = jax.tree.map(jnp.copy, carry.now) if at else None
                dispatched, start = (start, active, records, saved), start + active
                hooked = start if at else hooked
            if pending is not None:
                bad = collect(*pending)
                now = time.perf_counter()
                if adaptive and last is not None:       # the chunk collected ran since `last`
                    size = _resize(pending[1], now - last, spec.chunk)
                last = now
                if bad is not None:
                    break
            pending = dispatched
    finally:
        stop.__exit__(None, None, None)
        if isinstance(report, _fit_progress.ProgressBar):
            report.close()
    if bad is not None:
        raise diverged(spec, data, carry, bad, initial, table, history)
    if start < epochs or stop.requested:          # Ctrl-C: the last complete epoch, kept
        out = result(carry.now, snapshot(start), start)
        if hook is not None and hooked != start:
            hook(out)
        raise TrainingInterrupted(out)
    return result(carry.now, history(epochs), epochs)
