"""Fully sharded data parallelism (FSDP) for `fit`: params and optimizer state split over a
mesh axis named "fsdp", each step's batch split over every device.

    mesh = jax.make_mesh((2, 4), ("data", "fsdp"))     # or jax.make_mesh((8,), ("fsdp",))
    result = fnnet.fit(net, params, x, y, optimizer=optax.adam(1e-3), epochs=10, mesh=mesh)

fit comes here when the mesh has an "fsdp" axis (axes allowed: "fsdp" and "data").

Layout (the rule, a function of a leaf's shape alone, so params and every optimizer-state
leaf of the same shape (adam's μ, ν) get the same one):

    a leaf is split along its FIRST axis whose length is a multiple of F (the fsdp size):
      each device on the fsdp axis keeps 1/F of it, no padding; along "data" it is replicated
    a leaf with no such axis (a bias of 10 on F = 4, a scalar such as adam's count) is
      replicated on every device

Inside the compiled step (jax.shard_map over the mesh, check_vma on), device (d, f) takes
rows [k·q, (k+1)·q) of the batch, k = d·F + f, q = B / (D·F):

    forward, layer by layer: lax.all_gather over "fsdp" of the layer's split leaves, just
      before its forward (one all-gather per split leaf per step: the gathered weights are
      kept for the backward, so a step's temporary memory holds every layer's whole weights;
      a second gather in the backward, as ZeRO-3 does, was merged into the first by XLA:CPU
      even behind lax.optimization_barrier)
    the loss on the device's q rows, weighted q / B (mean losses) or 1 (sum losses)
    backward, layer by layer in reverse, the layers' own hand-written backward on the full
      weights, then for each leaf of dL/dparams:
        split leaf:      lax.psum_scatter over "fsdp" (sum of the F devices' gradients, each
                         device keeping its own slice), then lax.psum over "data"
        replicated leaf: lax.psum over ("data", "fsdp")
      the loss: lax.psum over ("data", "fsdp")
    outside shard_map, on the sharded global arrays (XLA partitions it: no communication for
      elementwise optimizers, each device updates its own slice):
      the L2 term ½λΣw² (its value needs one all-reduce) and λw, then the optimizer update

No gradient here comes from autodiff: the collectives are written by hand around each
layer's hand-written backward. Every step's batch must split evenly over D·F devices; fit
checks every step size before anything is compiled (check_batches).

Checkpoints: fnnet.save writes fit's split result whole; fnnet.checkpoint.save_sharded writes
each device's blocks, and restore_sharded(path, shardings(params, mesh), optimizer) reads
them onto this layout for any fsdp size.

Multi-host: as data parallelism (sharding.py's docstring): jax.distributed.initialize() in
every process, the mesh over jax.devices(), each process passing its own rows or all of them;
2 processes x 4 devices equal 1 x 8 (tests/train/test_multihost.py).

Not handled (refused with ValueError): layers with state or randomness (BatchNorm,
Dropout), grad="autodiff", axes other than "data" and "fsdp" (a "model" axis alone
selects fnnet/train/tensor_parallel.py in fit; the two do not combine yet).
A network layer is the unit of gathering: a composite layer (the GPT's TiedLM, a
Sequential) gathers all of its params at once.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fnnet import contracts
from fnnet import network
from fnnet import state as layer_state
from fnnet.train import sharding

FSDP, DATA = "fsdp", "data"
AXES = (DATA, FSDP)


@dataclasses.dataclass(frozen=True)
class Fsdp:
    """Static description of an FSDP run; hashable (part of jit's static spec).

    mesh: the caller's devices with Auto axis types; user_mesh: the mesh as passed (fit
    returns the params on it); size: devices along "fsdp" (F); data: devices along "data"
    (D, 1 without that axis); reduction: how the loss reduces over the batch.
    """
    mesh: Any
    user_mesh: Any
    size: int
    data: int
    reduction: str

    @property
    def devices(self):
        return self.size * self.data

    @property
    def batch_axes(self):
        """The mesh axes the batch is split over, in the mesh's order."""
        return tuple(a for a in self.mesh.axis_names if a in AXES)

    @property
    def replicated(self):
        return NamedSharding(self.mesh, P())


def wanted(mesh):
    """True when fit should train with FSDP: a Mesh with an "fsdp" axis."""
    return isinstance(mesh, Mesh) and FSDP in mesh.axis_names


def _describe(mesh):
    return "{" + ", ".join(f"{a!r}: {mesh.shape[a]}" for a in mesh.axis_names) + "}"


def setup(net, mesh, batch_axis="data", where="fit", grad="manual") -> Fsdp:
    """Validate an FSDP mesh against `net` before anything is compiled."""
    if not wanted(mesh):
        raise ValueError(f"{where}: FSDP needs a jax.sharding.Mesh with an 'fsdp' axis, got {mesh!r}")
    unknown = [a for a in mesh.axis_names if a not in AXES]
    if unknown:
        raise ValueError(f"{where}: an FSDP mesh takes the axes 'data' and 'fsdp' only; this mesh has "
                         f"axes {_describe(mesh)}, unknown {unknown} (tensor parallelism takes a "
                         f"('data', 'model') mesh; the two do not combine yet)")
    if batch_axis not in (None, DATA):
        raise ValueError(f"{where}: with an FSDP mesh {_describe(mesh)} the batch is split over "
                         f"'data' and 'fsdp' together; batch_axis must stay 'data', got {batch_axis!r}")
    if grad != "manual":
        raise ValueError(f"{where}: FSDP (mesh {_describe(mesh)}) gathers weights and scatters "
                         f"gradients around the hand-written backward; grad must be 'manual', "
                         f"got {grad!r}")
    for i, layer in enumerate(net.layers):
        if layer_state.is_stateful(layer) or layer_state.is_stochastic(layer):
            raise ValueError(f"{where}: layer {i} ({layer}) has layer state or randomness, which FSDP "
                             f"(mesh {_describe(mesh)}) does not handle; train it with a "
                             f"('data',) mesh")
    reduction = sharding.batch_reduction(net, where, f"split over the mesh {_describe(mesh)}")
    data = int(mesh.shape[DATA]) if DATA in mesh.axis_names else 1
    return Fsdp(sharding.auto_axes(mesh), mesh, int(mesh.shape[FSDP]), data, reduction)


def check_batches(fs: Fsdp, n, batch, where="fit"):
    """Every step's batch (batch, and the n % batch left over) must split evenly over the
    D·F devices: each device takes the same number of rows."""
    sizes = {batch} | ({n % batch} if n % batch else set())
    bad = sorted(s for s in sizes if s % fs.devices)
    if bad:
        raise ValueError(f"{where}: FSDP splits each step's batch over all {fs.devices} devices of the "
                         f"mesh {_describe(fs.user_mesh)}; step batches of {bad} example(s) do not "
                         f"divide evenly (n={n}, batch_size={batch}); pick n and batch_size that are "
                         f"multiples of {fs.devices}")


def split_axis(shape, size):
    """The axis a leaf of `shape` is split along over `size` fsdp devices: the first axis
    whose length is a multiple of `size`; None (replicated) when there is none."""
    for axis, length in enumerate(shape):
        if length >= size and length % size == 0:
            return axis
    return None


def spec(shape, size):
    """The PartitionSpec of a leaf of `shape`: FSDP on its split axis, else P()."""
    axis = split_axis(shape, size)
    return P() if axis is None else P(*([None] * axis), FSDP)


def shardings(tree, mesh):
    """A NamedSharding per leaf of `tree` (arrays or ShapeDtypeStructs, e.g. params) on
    `mesh`, by the rule for its "fsdp" axis: where fit's FSDP keeps each leaf, e.g. for
    fnnet.checkpoint.restore_sharded(path, shardings(params, mesh), optimizer)."""
    if not wanted(mesh):
        raise ValueError(f"fsdp.shardings: mesh must be a jax.sharding.Mesh with an 'fsdp' axis, got {mesh!r}")
    size = int(mesh.shape[FSDP])
    return jax.tree.map(lambda leaf: NamedSharding(mesh, spec(np.shape(leaf), size)), tree)


def _leaf_spec(fs, leaf):
    return spec(np.shape(leaf), fs.size)


def _place_leaf(fs, leaf, mesh):
    """One leaf as a global array laid out by the rule on `mesh` (PRNG keys replicated)."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(leaf)
        data = jax.random.key_data(leaf)
        return jax.random.wrap_key_data(jax.device_put(data, NamedSharding(mesh, P())), impl=impl)
    sharding = NamedSharding(mesh, _leaf_spec(fs, leaf))
    if isinstance(leaf, jax.Array) and leaf.sharding.device_set == sharding.device_set:
        return leaf if leaf.sharding == sharding else jax.device_put(leaf, sharding)
    value = np.asarray(leaf)                   # every process passes the whole value
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def place(fs: Fsdp, tree):
    """Every leaf of `tree` (params, optimizer state, a training carry) laid out by the rule
    on fs.mesh: split along its first axis divisible by the fsdp size, else replicated."""
    return jax.tree.map(lambda leaf: _place_leaf(fs, leaf, fs.mesh), tree)


def init_opt_state(fs: Fsdp, optimizer, params):
    """optimizer.init(params) created split by the rule (XLA writes each device's slices
    only): never whole on one device, as a plain init under jit would make it."""
    shapes = jax.eval_shape(optimizer.init, params)
    return jax.jit(optimizer.init, out_shardings=shardings(shapes, fs.mesh))(params)


def to_user_mesh(fs: Fsdp, tree):
    """The trained tree on the caller's devices, still split by the rule (no gathering):
    ordinary jax.Arrays that np.asarray, fnnet.save and fnnet.forward read whole. On the
    mesh with Auto axis types, not the caller's Explicit ones (jax.make_mesh's default):
    with Explicit axes an eager x @ W whose W is split along its rows is refused as
    ambiguous, so fnnet.accuracy on the result would fail; with Auto axes XLA gathers."""
    return jax.tree.map(lambda leaf: _place_leaf(fs, leaf, fs.mesh), tree)


def _leaf_axis(shape, size):
    """split_axis as a tree leaf: -1 for a replicated leaf (None is no leaf to jax.tree)."""
    axis = split_axis(shape, size)
    return -1 if axis is None else axis


def _gather(a, axis):
    """A leaf's local slice -> the whole leaf (all-gather over fsdp), just before its use."""
    return a if axis < 0 else lax.all_gather(a, FSDP, axis=axis, tiled=True)


def _reduce(fs, g, axis):
    """One device's gradient of a whole leaf -> this device's slice of the sum over all
    devices: reduce-scatter over fsdp, then all-reduce over data; replicated leaves (axis -1):
    all-reduce over every device."""
    if axis < 0:
        return lax.psum(g, fs.batch_axes)                                  # Σ over every device
    g = lax.psum_scatter(g, FSDP, scatter_dimension=axis, tiled=True)    # Σ over fsdp, own slice
    return lax.psum(g, DATA) if DATA in fs.batch_axes else g             # Σ over data


def _local(fs, net, axes, weight, p_local, x, y):
    """On one device: its rows x [q, *in_shape], y [q, ...] and its params slices ->
    (Σ-over-devices loss, its slices of the Σ-over-devices gradient)."""
    shapes = contracts.layout(net)
    inputs, caches, full = [], [], []
    for i, layer in enumerate(net.layers):
        p = jax.tree.map(_gather, p_local[i], axes[i])                   # gather just before use
        inputs.append(x)
        x_next, cache, _ = layer_state.call_layer(layer, i, p, x, (), None, True)
        contracts.check_forward(i, layer, x, x_next, shapes[i][2])
        x = x_next
        caches.append(cache)
        full.append(p)
    w = jnp.asarray(weight, x.dtype)
    value = lax.psum(net.loss.value(x, y) * w, fs.batch_axes)           # L = Σ_devices w·L_device
    d = net.loss.grad(x, y) * w                                          # dL/dout of w·L_device
    grads = [None] * len(net.layers)
    for i in reversed(range(len(net.layers))):
        dp, d = contracts.check_backward(i, net.layers[i], full[i], inputs[i],
                                         net.layers[i].backward(full[i], caches[i], d))
        grads[i] = jax.tree.map(lambda g, a: _reduce(fs, g, a), dp, axes[i])   # scatter as soon as known
    return value, tuple(grads)


def value_and_grad(fs: Fsdp, net, params, xb, yb):
    """(loss, grads) of `net` on the batch xb [B, *in_shape], yb [B, ...] with FSDP.

    params: laid out by `place` (global arrays on fs.mesh); grads come back in the same
    layout. Equal to fnnet.value_and_grad(net, params, xb, yb) up to rounding, under jit
    or not; B must be a multiple of the mesh's device count.
    """
    batch = xb.shape[0]
    if batch % fs.devices:
        raise ValueError(f"FSDP value_and_grad: a batch of {batch} does not split evenly over the "
                         f"{fs.devices} devices of the mesh {_describe(fs.user_mesh)}")
    weight = 1.0 if fs.reduction == "sum" else 1.0 / fs.devices        # q / B = 1 / (D·F)
    axes = jax.tree.map(lambda a: _leaf_axis(a.shape, fs.size), params)   # per leaf, -1: replicated
    specs = jax.tree.map(lambda a: _leaf_spec(fs, a), params)
    data_net = dataclasses.replace(net, l2=0.0)                         # L2 added once, below
    rows = P(fs.batch_axes)

    def shard(p, x, y):
        return _local(fs, data_net, axes, weight, p, x, y)

    run = jax.shard_map(shard, mesh=fs.mesh, in_specs=(specs, rows, rows), out_specs=(P(), specs))
    # The batch whole on every device (it is gathered from the replicated training set), so
    # that shard_map's split of it is a local slice: left unconstrained, XLA splits the
    # epoch's shuffle and gather instead, with collectives of its own.
    xb, yb = lax.with_sharding_constraint((xb, yb), fs.replicated)
    value, grads = run(params, xb, yb)
    if net.l2:                               # on the sharded arrays: XLA partitions it
        value = value + network.l2_value(net, params)                    # + ½λΣw²
        grads = tuple(jax.tree.map(lambda g, w, m: g + net.l2 * w if m else g, gi, pi, mi)   # + λw
                      for gi, pi, mi in zip(grads, params, network.l2_masks(net, params)))
    return value, grads
