"""Data parallelism for `fit`: each step's batch split over a device mesh, params replicated.

    mesh = jax.make_mesh((8,), ("data",))              # any one-axis mesh, or one with a "data" axis
    result = fnnet.fit(net, params, x, y, optimizer=optax.sgd(0.1), epochs=10,
                       mesh=mesh)                # batch_axis: "data", or a 1-D mesh's axis

Inside the compiled step (JAX's own SPMD machinery, nothing home-made):

    jax.shard_map over the mesh, everything replicated in (P()); device i slices its
      q = B // D examples [i·q, (i+1)·q) out of the batch (lax.axis_index: no transfer)
      each device: fnnet's hand-written value_and_grad on its q examples
      lax.psum over batch_axis of (loss, grads) weighted by q / B: the only collective
      (BatchNorm with synchronized statistics adds its own, below)
    outside shard_map, replicated on every device (no communication):
      the r = B % D left-over examples' value_and_grad, weighted r / B
      the L2 term ½λΣw² and its gradient λw, added once
      the optimizer update

So a batch of B examples on D devices counts every example exactly once, with the
weights of the single-device mean: Σ_devices (q/B)·mean_q + (r/B)·mean_r = mean_B.
Losses that sum over the batch (`batch_reduction = "sum"`, e.g. half_sse) are summed
instead (weights 1). Batches smaller than D (q = 0) run replicated on every device.

The training set is replicated on every device: each epoch's shuffled minibatches are
gathered exactly as on one device, which is what makes the result equal single-device
fit; only the step's batch is split. Multi-host: call jax.distributed.initialize() in
every process and build the mesh over jax.devices() (all processes' devices); then either
pass the same data in every process (fit places it with
jax.make_array_from_process_local_data), or let each process read only its own rows and
pass the global array jax.make_array_from_process_local_data(NamedSharding(mesh,
P("data")), rows) builds: fit gathers it onto every device (placement.whole). The same
holds for FSDP and tensor parallelism (tests/train/test_multihost.py: 2 processes x 4
devices equal 1 x 8 in every layout).

Placement: NumPy and uncommitted arrays are placed replicated; arrays on the mesh's
devices in another layout are resharded once; arrays committed to other devices raise
ValueError. fit returns params (and opt_state, layer state) replicated on the caller's mesh.

Layers with state or randomness (fnnet/state.py) take part through an `axis_name` field,
which fit sets itself (with_axis, a dataclasses.replace per layer; a layer without that field
is refused with ValueError rather than run per shard):

    Dropout(axis_name=axis): every device draws the whole batch's mask from the same key and
      keeps its rows (lax.axis_index): the masks of one device, no communication.
    BatchNorm, batch_stats="sync" (default): statistics over the whole step's batch, psummed
      inside the layer (fnnet/layers/batchnorm.py): forward psum(Σx) -> μ, then psum(Σ(x-μ)²)
      -> σ² (two passes, as on one device); backward one stacked psum of its two sums (Σdx̂,
      Σdx̂ ⊙ x̂). Running statistics come from the global μ, σ²: the same on every device.
      All-reduces per step: 1 (gradients) + 3 per BatchNorm layer (a test reads the HLO;
      XLA may merge the backward's psum with part of the gradients', the count stays).
      Training equals one device to rounding: 1e-15 in float64 after several epochs.
    BatchNorm, batch_stats="local": each device normalizes with its own shard's statistics
      (as DDP without SyncBatchNorm): no collective in the layer, one all-reduce per step,
      but a different training run from one device; the running statistics are the mean
      over devices of each device's update, carried in the gradients' psum.
    A step whose batch D does not divide (q·D + r, r > 0, or B < D) runs wholly replicated in
      such nets: the whole batch on every device, no communication, statistics and masks
      those of one device. (Splitting q·D rows plus r replicated would give the r rows
      statistics of their own.) Pick batch sizes divisible by D to keep every step split.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from fnnet import network as _network
from fnnet import state as _state
from fnnet.train.placement import check_placement, data_mesh, replicate, to_user_mesh  # noqa: F401

REDUCTIONS = ("mean", "sum")
BATCH_STATS = ("sync", "local")


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Static description of a data-parallel run; hashable (part of jit's static spec).

    mesh: the caller's devices and axis names with Auto axis types (the loop's arrays are
      all replicated and only shard_map splits the batch, so sharding-in-types has
      nothing to add); user_mesh: the mesh as passed, on which fit returns the params;
    axis: the mesh axis the batch is split over; size: devices along `axis`;
    reduction: how the net's loss reduces over the batch ("mean" or "sum");
    batch_stats: "sync" or "local", for stateful layers (BatchNorm): see with_axis.
    """
    mesh: Any
    user_mesh: Any
    axis: str
    size: int
    reduction: str
    batch_stats: str = "sync"

    @property
    def replicated(self):
        return NamedSharding(self.mesh, P())


def setup(net, mesh, batch_axis="data", where="fit", batch_stats="sync") -> DataParallel:
    """Validate `mesh` / `batch_axis` against `net` before anything is compiled.

    batch_axis "data" (the default) or None on a mesh of one axis means that axis, whatever
    its name; a mesh of several axes must name the batch axis "data" or be given batch_axis.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: mesh must be a jax.sharding.Mesh such as "
                        f"jax.make_mesh((jax.device_count(),), ('data',)), got {type(mesh).__name__}")
    if batch_axis in (None, "data") and batch_axis not in mesh.axis_names and len(mesh.axis_names) == 1:
        batch_axis = mesh.axis_names[0]        # a one-axis mesh: its axis, whatever its name
    if not isinstance(batch_axis, str) or batch_axis not in mesh.axis_names:
        raise ValueError(f"{where}: mesh has axes {tuple(mesh.axis_names)}, no batch axis "
                         f"{batch_axis!r}; name it in the mesh or pass batch_axis=<one of them>")
    if batch_stats not in BATCH_STATS:
        raise ValueError(f"{where}: batch_stats must be one of {BATCH_STATS} ('sync': batchnorm statistics "
                         f"over the whole batch, equal to one device; 'local': each device's shard), "
                         f"got {batch_stats!r}")
    for i, layer in enumerate(net.layers):
        # Layer state (batchnorm statistics) and per-step keys (dropout) must know the mesh axis
        # to equal one device; a layer that cannot be told it is refused, not run per shard.
        if (_state.is_stateful(layer) or _state.is_stochastic(layer)) and not _has_axis_name(layer):
            raise ValueError(f"{where}: layer {i} ({layer}) has layer state or randomness but no "
                             f"axis_name field, so data-parallel training (mesh=) cannot make its "
                             f"statistics or random draws span the mesh; give it an axis_name field "
                             f"as BatchNorm and Dropout have (fnnet/train/sharding.py)")
    reduction = batch_reduction(net, where, "averaged across devices")
    return DataParallel(auto_axes(mesh), mesh, batch_axis, int(mesh.shape[batch_axis]), reduction, batch_stats)


def batch_reduction(net, where, how):
    """The net's loss's batch_reduction ("mean" or "sum"), which every layout that splits the
    batch needs to weight its devices' losses; ValueError saying what else it must be."""
    reduction = getattr(net.loss, "batch_reduction", None)
    if reduction not in REDUCTIONS:
        note = getattr(net.loss, "batch_reduction_note", None)
        raise ValueError(f"{where}: loss {net.loss} must declare batch_reduction = 'mean' or 'sum' "
                         f"(how its value combines over examples) to be {how}; "
                         f"got {reduction!r}" + (f": {note}" if note else ""))
    return reduction


def auto_axes(mesh):
    """The mesh's devices and axis names with Auto axis types (jax.make_mesh's default is
    Explicit): the layouts place arrays by NamedSharding and split them in shard_map, so
    sharding-in-types has nothing to add, and eager use of their results needs Auto axes."""
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def _has_axis_name(layer):
    return dataclasses.is_dataclass(layer) and "axis_name" in {f.name for f in dataclasses.fields(layer)}


def with_axis(net, axis, batch_stats="sync"):
    """`net` with each stateful / stochastic layer's axis_name set for one shard_map step.

    axis None: every axis_name None (the replicated path: the whole batch on each device).
    Otherwise stochastic layers (Dropout) get `axis` (their masks are the whole batch's);
    stateful ones (BatchNorm) get it with batch_stats "sync" and None with "local"
    (each device normalizes with its own shard's statistics).
    """
    def one(layer):
        if not _has_axis_name(layer) or not (_state.is_stateful(layer) or _state.is_stochastic(layer)):
            return layer
        local = axis is None or (batch_stats == "local" and _state.is_stateful(layer))
        name = None if local else axis
        return layer if layer.axis_name == name else dataclasses.replace(layer, axis_name=name)
    layers = tuple(one(layer) for layer in net.layers)
    return net if layers == net.layers else dataclasses.replace(net, layers=layers)


def split(batch, size):
    """(q, r): each of the `size` devices takes q = batch // size examples, and the
    r = batch % size left over are computed on every device (replicated)."""
    return divmod(batch, size)


def _weight(dp, part, batch):
    return 1.0 if dp.reduction == "sum" else part / batch


def _scale(tree, w):
    return jax.tree.map(lambda a: a * jnp.asarray(w, a.dtype), tree)


def value_and_grad(dp: DataParallel, local, net, params, xb, yb):
    """(loss, grads) of `net` on the batch xb [B, *in_shape], yb [B, ...], data-parallel.

    local(net, params, x, y) -> (loss, grads): the per-device rule (fnnet's hand-written
    value_and_grad, or the autodiff comparison path). Equal to local(net, params, xb, yb)
    up to rounding; call it inside jit with xb, yb and params replicated on dp.mesh.
    For nets with layer state or keys, see value_grad_state.
    """
    def rule(n, p, x, y, st, key):
        del st, key
        return (*local(n, p, x, y), ())
    return value_grad_state(dp, rule, net, params, xb, yb)[:2]


def value_grad_state(dp: DataParallel, local, net, params, xb, yb, state=(), key=None):
    """(loss, grads, new layer state) of `net` on the batch xb, yb, data-parallel.

    local(net, params, x, y, state, key) -> (loss, grads, new_state): the per-device rule.
    state: the layer state tuple (() entries for layers without), replicated; key: the
    step's PRNG key (None without stochastic layers), replicated: every device gets the same.

    Nets without layer state or keys: q = B // D examples per device in shard_map and the
    r = B % D left over replicated (module docstring). Nets with them: a batch that D divides
    runs in shard_map with the layers' axis_name set (with_axis), so batchnorm statistics
    (batch_stats="sync") and dropout masks are the whole batch's; a batch D does not divide
    runs wholly replicated, the whole batch on every device (no communication), because a
    split into shards plus a replicated remainder would give the remainder statistics and
    masks of its own. The new state is the same on every device: synchronized statistics are
    (psum), and with batch_stats="local" the devices' states are averaged in the gradients'
    psum (Σ_devices state / D).
    """
    batch = xb.shape[0]
    q, r = split(batch, dp.size)
    data_net = dataclasses.replace(with_axis(net, None), l2=0.0)   # L2 added once, below
    protocol = _state.has_protocol(net.layers)
    stateful = any(_state.is_stateful(layer) for layer in net.layers)
    if protocol and (r or not q):          # D does not divide the batch: all of it, replicated
        value, grads, state = local(data_net, params, xb, yb, state, key)
        return _add_l2(net, params, value, grads) + (state,)
    shard_net = dataclasses.replace(with_axis(net, dp.axis, dp.batch_stats), l2=0.0)
    parts = []
    if q:
        average = stateful and dp.batch_stats == "local"        # per-device states, averaged

        def shard(p, xs, ys, st, k):                  # on each device: its q examples
            start = lax.axis_index(dp.axis) * q       # a local slice of the replicated batch
            xs, ys = (lax.dynamic_slice_in_dim(a, start, q) for a in (xs, ys))
            # Params typed device-varying (a no-op on values): the local rule's gradient is
            # this device's alone; autodiff would otherwise insert its own psum for them.
            p = jax.tree.map(lambda a: lax.pcast(a, dp.axis, to="varying"), p)
            v, g, st = local(shard_net, p, xs, ys, st, k)
            vg = _scale((v, g), _weight(dp, q, batch))
            if average:                               # one psum: Σ_devices (w·(L, ∇L), state / D)
                vg, st = lax.psum((vg, _scale(st, 1.0 / dp.size)), dp.axis)
                return vg, st
            return lax.psum(vg, dp.axis), st          # Σ_devices w·(L, ∇L); st: already the same everywhere

        run = jax.shard_map(shard, mesh=dp.mesh, in_specs=(P(), P(), P(), P(), P()),
                            out_specs=(P(), P()))
        vg, state = run(params, xb, yb, state, key)
        parts.append(vg)
    if r:                                             # the r < D left-over examples (stateless nets)
        v, g, _ = local(data_net, params, xb[q * dp.size:], yb[q * dp.size:], (), None)
        parts.append(_scale((v, g), _weight(dp, r, batch)))
    value, grads = parts[0] if len(parts) == 1 else jax.tree.map(jnp.add, *parts)
    return _add_l2(net, params, value, grads) + (state,)


def _add_l2(net, params, value, grads):
    """(value + ½λΣw², grads + λw): the L2 term, once, on the replicated params."""
    if net.l2:
        value = value + _network.l2_value(net, params)                  # + ½λΣw²
        grads = tuple(jax.tree.map(lambda g, w, m: g + net.l2 * w if m else g, gi, pi, mi)  # + λw
                      for gi, pi, mi in zip(grads, params, _network.l2_masks(net, params)))
    return value, grads
