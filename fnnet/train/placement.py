"""Where fit's arrays live on a data-parallel mesh (fnnet/train/sharding.py): placing the
data and params replicated, gathering a training set that processes hold in parts,
refusing data committed to other devices, returning the trained tree on the caller's mesh,
and building a 1-D mesh for `--devices N`.

dp: a sharding.DataParallel (its `replicated` sharding and `user_mesh`).
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def _same_devices(leaf, dp):
    return getattr(leaf, "sharding", None) is not None and \
        leaf.sharding.device_set == dp.replicated.device_set


def _committed_elsewhere(leaf, dp):
    return isinstance(leaf, jax.Array) and getattr(leaf, "committed", False) and \
        not _same_devices(leaf, dp)


def check_placement(dp, tree, what, where="fit"):
    """Data already committed to devices outside the mesh is an error, not a silent copy."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if _committed_elsewhere(leaf, dp):
            got = sorted(d.id for d in leaf.sharding.device_set)
            want = sorted(d.id for d in dp.replicated.device_set)
            raise ValueError(f"{where}: {what}{jax.tree_util.keystr(path)} is on devices {got}, "
                             f"the mesh is on {want}; pass NumPy arrays (fit places them) or "
                             f"arrays on the mesh's devices")


def whole(tree, what, where="fit"):
    """Each global array that spans processes in parts (jax.make_array_from_process_local_data:
    every process holding only its own rows) gathered onto every device of its own mesh,
    replicated, so that the checks and the epoch's shuffle can read all of it; every other
    leaf as it is. A collective: every process calls it, in the same order.
    Data parallelism, FSDP and tensor parallelism all keep the training set replicated
    (each epoch's minibatches are gathered from it exactly as on one device)."""
    def one(path, leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable or leaf.is_fully_replicated:
            return leaf
        mesh = getattr(leaf.sharding, "mesh", None)
        if mesh is None:
            raise ValueError(f"{where}: {what}{jax.tree_util.keystr(path)} spans processes with a "
                             f"{type(leaf.sharding).__name__}; build it with a NamedSharding "
                             f"(jax.make_array_from_process_local_data(NamedSharding(mesh, P('data')), rows))")
        return jax.jit(lambda a: a, out_shardings=NamedSharding(mesh, P()))(leaf)
    return jax.tree_util.tree_map_with_path(one, tree)


def to_user_mesh(dp, tree):
    """The trained tree replicated on the caller's own mesh (same devices, no copy)."""
    return jax.device_put(tree, NamedSharding(dp.user_mesh, P()))


def replicate(dp, tree):
    """Every leaf as a global array replicated on dp.mesh (any process count).

    Leaves on the mesh's devices are resharded with device_put; NumPy arrays and
    uncommitted single-device arrays are placed from the host value with
    make_array_from_process_local_data (every process must pass the same value).
    PRNG key leaves travel as their key data.
    """
    sharding = dp.replicated

    def place(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(leaf)
            return jax.random.wrap_key_data(place(jax.random.key_data(leaf)), impl=impl)
        if _same_devices(leaf, dp):
            return leaf if leaf.sharding == sharding else jax.device_put(leaf, sharding)
        return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))
    return jax.tree.map(place, tree)


def data_mesh(n, axis="data", where="--devices"):
    """A 1-D mesh over the first `n` of jax.devices() (all processes' devices).

    Call before JAX starts its backends to get simulated CPU devices: when there are
    fewer than `n` devices of the default platform and the CPU backend has not started,
    it asks for `n` CPU devices (jax_num_cpu_devices; these share the host's cores, so
    they show overhead, not speedup). On GPU/TPU machines the real devices are used.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: the device count must be an integer >= 1, got {n!r}")
    import os
    from jax._src import xla_bridge                                 # no public "started?" query
    if not xla_bridge.backends_are_initialized() and \
            "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        jax.config.update("jax_num_cpu_devices", max(n, jax.config.jax_num_cpu_devices))
    devices = jax.devices()
    if len(devices) < n:
        raise ValueError(f"{where} {n}: only {len(devices)} {devices[0].platform} device(s) here; "
                         f"simulated CPU devices must be requested before JAX starts (a fresh "
                         f"process, or XLA_FLAGS=--xla_force_host_platform_device_count={n})")
    return jax.make_mesh((n,), (axis,), devices=devices[:n])
