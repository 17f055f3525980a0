"""check_shard_map's cases on 8 simulated CPU devices; run by tests/check/test_check_shard_map.py.

    python tests/check/_shard_map_cases.py OUT.json

Simulated devices must be configured before JAX starts, so this runs in its own process and
writes each case's failed primals, row kinds and notes to OUT.json; the test asserts on them.
"""
import json
import sys
import traceback

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P  # noqa: E402

from fnnet import check  # noqa: E402

# Auto axes, as fnnet's training meshes (fnnet.train.sharding.auto_axes): under jax.jit an
# argument placed otherwise than in_specs says is resharded, not refused
MESH = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
SPECS = dict(in_specs=(P(None, "model"), P("data", None)), out_specs=P("data", "model"))


def tanh_dense(reduce):
    """y = tanh(x @ w) per shard, x [n, d] split over "data", w [d, k] over "model".
    reduce: what bwd does with the partial cotangents of the inputs that are not split over
    the axis the computation varies over: lax.psum (right), lax.pmean (wrong by the axis
    size), or nothing (right on one device, not under shard_map)."""
    @jax.custom_vjp
    def f(w, x):
        return jnp.tanh(x @ w)

    def fwd(w, x):
        y = jnp.tanh(x @ w)
        return y, (w, x, y)

    def bwd(res, ct):
        w, x, y = res
        dz = ct * (1 - y * y)                                    # dz = ct ⊙ (1 - y²)
        dw, dx = x.T @ dz, dz @ w.T                              # this shard's parts of dw, dx
        if reduce is not None:
            dw, dx = reduce(dw, "data"), reduce(dx, "model")     # dw = Σ_data, dx = Σ_model
        return dw, dx
    f.defvjp(fwd, bwd)
    return f


def summary(rep):
    return {"ok": rep.ok, "failed": list(rep.failed_primals), "kinds": sorted({r.kind for r in rep.rows}),
            "notes": [r.note for r in rep.failures], "summary": rep.summary(), "seconds": round(rep.seconds, 2)}


def main(path):
    out = {"devices": jax.device_count()}
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        w, x = rng.standard_normal((3, 8)).astype(dtype), rng.standard_normal((8, 3)).astype(dtype)
        cases = {
            "psum": lambda: check.check_shard_map(tanh_dense(jax.lax.psum), w, x, mesh=MESH, **SPECS),
            "pmean": lambda: check.check_shard_map(tanh_dense(jax.lax.pmean), w, x, mesh=MESH, **SPECS),
            "none": lambda: check.check_shard_map(tanh_dense(None), w, x, mesh=MESH, **SPECS),
            # w placed replicated while in_specs splits it: its gradient comes back split
            "replicated": lambda: check.check_shard_map(
                tanh_dense(jax.lax.psum), jax.device_put(w, NamedSharding(MESH, P())), x, mesh=MESH, **SPECS),
            # fun with a hand-written vjp, not a custom_vjp
            "vjp=": lambda: check.check_shard_map(
                lambda w, x: jnp.tanh(x @ w), w, x, mesh=MESH,
                vjp=lambda w, x, ct: tanh_dense(jax.lax.psum).bwd((w, x, jnp.tanh(x @ w)), ct), **SPECS),
        }
        for name, case in cases.items():
            try:
                out[f"{np.dtype(dtype).name}/{name}"] = summary(case())
            except Exception:  # noqa: BLE001 - reported, and the test fails on it
                out[f"crash/{np.dtype(dtype).name}/{name}"] = traceback.format_exc()
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
