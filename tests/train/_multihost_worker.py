"""One process of the multi-host test (tests/train/test_multihost.py).

    python _multihost_worker.py multi PROCESS_ID PORT OUT.npz   # 2 processes x 2 CPU devices
    python _multihost_worker.py single 0 0 OUT.npz              # 1 process x 4 CPU devices

Both modes run the same program: fit(mesh=) over a 4-device ("data",) mesh built from
jax.devices(), full batch then minibatch (test_sharding.py proves mesh == one device).
Process 0 writes the params as .npz. The coordinator listens on 127.0.0.1 only, and every
JAX distributed time-out is bounded, so a lost peer fails the run instead of hanging.
"""
import sys

import jax

mode, pid, port, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
jax.config.update("jax_num_cpu_devices", 2 if mode == "multi" else 4)
jax.config.update("jax_enable_x64", True)
if mode == "multi":
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=pid, initialization_timeout=60,
                               heartbeat_timeout_seconds=30, shutdown_timeout_seconds=30)

import numpy as np  # noqa: E402
import optax  # noqa: E402

import fnnet  # noqa: E402

assert jax.device_count() == 4 and jax.local_device_count() == (2 if mode == "multi" else 4)
x, y, _, _ = fnnet.datasets.digits()
rng = np.random.default_rng(5)
x = x[:150] + 0.1 * rng.standard_normal((150, 64))      # 150 = 4·37 + 2: uneven full batch
y = y[:150]
net = fnnet.mlp([64, 16, 10], activation="tanh", loss="softmax_cross_entropy", l2=1e-3)
p0 = fnnet.init(net, jax.random.key(0), dtype=np.float64)
mesh = jax.make_mesh((4,), ("data",))
spans = sorted({d.process_index for d in mesh.devices.flat})     # [0, 1] when multi-host
runs = {
    "full": dict(optimizer=optax.adam(1e-2), epochs=4),
    "minibatch": dict(optimizer=optax.sgd(0.2), epochs=2, batch_size=36, key=jax.random.key(1)),
}
out = {}
for name, kw in runs.items():
    params, hist, *_ = fnnet.fit(net, p0, x, y, mesh=mesh, **kw)
    assert len(jax.tree.leaves(params)[0].sharding.device_set) == 4
    for i, leaf in enumerate(jax.tree.leaves(params)):
        out[f"{name}/{i}"] = np.asarray(leaf)            # fully replicated: readable here
    out[f"{name}/loss"] = hist.loss
if pid == 0:
    np.savez(path, **out)
print(f"process {pid}: ok, {jax.process_count()} processes, {jax.device_count()} devices, "
      f"mesh over processes {spans}")
