"""One process of the multi-host test (tests/train/test_multihost.py).

    python _multihost_worker.py multi PROCESS_ID PORT DATA_DIR OUT.npz   # 2 processes x 4 CPU devices
    python _multihost_worker.py single 0 0 DATA_DIR OUT.npz              # 1 process x 8 CPU devices

Both modes run the same program over 8 devices, one fit per layout (LAYOUTS: data
parallelism, FSDP alone and beside "data", tensor parallelism beside "data"), the meshes
built from jax.devices(). Each process reads only its own rows of DATA_DIR/x.npy and y.npy
(memory-mapped) and hands fit a global array made from them with
jax.make_array_from_process_local_data; fit gathers the training set onto every device
itself. Process 0 writes every layout's params (gathered whole across processes) and loss
history as .npz. The ("data", "fsdp") run's result is also saved by blocks, each process
writing its own (multi), and restored onto ("fsdp",) x 8 (single, which runs after). The coordinator listens on 127.0.0.1 only, and every JAX distributed
time-out is bounded, so a lost peer fails the run instead of hanging.
"""
import sys

import jax

mode, pid, port, data_dir, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
jax.config.update("jax_num_cpu_devices", 4 if mode == "multi" else 8)
jax.config.update("jax_enable_x64", True)
if mode == "multi":
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=pid, initialization_timeout=60,
                               heartbeat_timeout_seconds=30, shutdown_timeout_seconds=30)

import os  # noqa: E402

import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import fnnet  # noqa: E402
import fnnet.checkpoint  # noqa: E402
from fnnet.train import fsdp  # noqa: E402

# name: (mesh shape, axis names, fit options). Minibatches of 40 split evenly over 8
# devices (FSDP and the "data" axis of tensor parallelism ask for it); data parallelism's
# 36 leaves 4 examples over, computed on every device.
LAYOUTS = {
    "data/full": ((8,), ("data",), dict(optimizer=optax.adam(1e-2), epochs=3)),
    "data/minibatch": ((8,), ("data",), dict(optimizer=optax.sgd(0.2), epochs=2, batch_size=36)),
    "fsdp/full": ((8,), ("fsdp",), dict(optimizer=optax.adam(1e-2), epochs=3)),
    "data_fsdp/minibatch": ((2, 4), ("data", "fsdp"), dict(optimizer=optax.adam(1e-2), epochs=2,
                                                           batch_size=40)),
    "data_model/minibatch": ((2, 4), ("data", "model"), dict(optimizer=optax.adam(1e-2), epochs=2,
                                                             batch_size=40)),
}

local = 4 if mode == "multi" else 8
assert jax.device_count() == 8 and jax.local_device_count() == local
x_all = np.load(os.path.join(data_dir, "x.npy"), mmap_mode="r")     # nothing read yet
y_all = np.load(os.path.join(data_dir, "y.npy"), mmap_mode="r")
n = x_all.shape[0]
net = fnnet.mlp([64, 16, 10], activation="tanh", loss="softmax_cross_entropy", l2=1e-3)
p0 = fnnet.init(net, jax.random.key(0), dtype=np.float64)


def own_rows(sharding):
    """[start, stop): the rows of the [n, ...] training set this process's devices hold."""
    index = [i for d, i in sharding.devices_indices_map((n,)).items() if d.process_index == pid]
    start, stop = min(i[0].start or 0 for i in index), max(i[0].stop or n for i in index)
    return start, stop


CHECKPOINTED = "data_fsdp/minibatch"      # its result is saved by blocks, and restored


def sharded_checkpoint(params, opt_state, epoch, whole, optimizer):
    """multi: both processes write their own devices' blocks of the FSDP result
    (fnnet.checkpoint.save_sharded); single (run after multi): restore those blocks onto
    ("fsdp",) x 8, another layout, and record them beside this process's own result."""
    folder = os.path.join(data_dir, "sharded")
    if mode == "multi":
        fnnet.checkpoint.save_sharded(folder, net, params, opt_state=opt_state, epoch=epoch)
        return
    mesh8 = jax.make_mesh((8,), ("fsdp",))
    ck = fnnet.checkpoint.restore_sharded(folder, fsdp.shardings(params, mesh8), optimizer)
    out["ckpt/files"] = np.array(sorted(os.listdir(folder)))
    out["ckpt/epoch"] = np.array(ck.epoch)
    out["ckpt/specs"] = np.array([str(a.sharding.spec) for a in jax.tree.leaves(ck.params)])
    for i, (a, b) in enumerate(zip(jax.tree.leaves((ck.params, ck.opt_state)), jax.tree.leaves(whole))):
        out[f"ckpt/{i}"], out[f"ckpt/own/{i}"] = np.asarray(a), np.asarray(b)


out, read = {f"init/{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(p0))}, set()
for name, (shape, axes, kw) in LAYOUTS.items():
    mesh = jax.make_mesh(shape, axes)
    rows = NamedSharding(mesh, P(axes))               # the batch axis over every device
    start, stop = own_rows(rows)
    read.add((start, stop))
    x = jax.make_array_from_process_local_data(rows, np.asarray(x_all[start:stop]), (n, 64))
    y = jax.make_array_from_process_local_data(rows, np.asarray(y_all[start:stop]), (n,))
    if "batch_size" in kw:
        kw = dict(kw, key=jax.random.key(1))
    params, hist, opt_state, _, epoch = fnnet.fit(net, p0, x, y, mesh=mesh, **kw)
    assert {d.process_index for d in jax.tree.leaves(params)[0].sharding.device_set} == \
        ({0, 1} if mode == "multi" else {0})
    whole = multihost_utils.process_allgather((params, opt_state), tiled=True)   # every block
    for i, leaf in enumerate(jax.tree.leaves(whole[0])):
        out[f"{name}/{i}"] = np.asarray(leaf)
    out[f"{name}/loss"] = hist.loss
    if name == CHECKPOINTED:
        sharded_checkpoint(params, opt_state, epoch, whole, kw["optimizer"])
out["rows_read"] = np.array(sorted(read))
if pid == 0:
    np.savez(path, **out)
spans = sorted({d.process_index for d in jax.devices()})
print(f"process {pid}: ok, {jax.process_count()} processes, {jax.device_count()} devices, "
      f"devices of processes {spans}, rows read {sorted(read)} of {n}")
