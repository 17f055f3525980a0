"""Data-parallel cases on 8 simulated CPU devices; run by tests/train/test_sharding.py.

    python tests/train/_sharding_cases.py OUT.json

Simulated devices must be configured before JAX starts its backends, which pytest's own
process has already done, hence a subprocess. Every case compares the sharded result
with the single-device one and writes the measured relative errors (or the exception a
bad input raised) to OUT.json; the test asserts on them. Small nets, few epochs: the
cost is XLA compile time on 2 shared cores.
"""
import json
import os
import re
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import fnnet  # noqa: E402
from fnnet.train import loop, sharding  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from helpers import rel_err  # noqa: E402
from _mesh_subprocess import record_errors, run  # noqa: E402

N = 203                      # = 8·25 + 3: full batch leaves 3 examples over
COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "reduce-scatter",
               "send", "recv", "infeed", "outfeed", "custom-call")


def tree_err(a, b):
    return max(rel_err(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def data(dtype):
    x, y, xt, yt = fnnet.datasets.digits()
    rng = np.random.default_rng(7)
    x = (x[:N] + 0.1 * rng.standard_normal((N, 64))).astype(dtype)   # non-symmetric inputs
    return x, y[:N], xt[:60].astype(dtype), yt[:60]


NET = fnnet.mlp([64, 24, 10], activation="tanh", loss="softmax_cross_entropy", l2=1e-3)
SSE = fnnet.mlp([64, 16, 10], activation="sigmoid", loss="half_sse", l2=1e-3)


def value_and_grad_cases(out):
    """sharding.value_and_grad against fnnet.value_and_grad on one batch, in one jit per
    (loss, dtype): batches of 16 (even), 203 (8·25 + 3) and 5 (fewer than 8 devices)."""
    mesh = jax.make_mesh((8,), ("data",))
    hand = lambda n, q, a, c: fnnet.value_and_grad(n, q, a, c)                 # noqa: E731
    auto = lambda n, q, a, c: jax.value_and_grad(lambda w: fnnet.loss(n, w, a, c))(q)  # noqa: E731
    sizes = (16, N, 5)
    for net, tag in ((NET, "mean"), (SSE, "sum")):
        dp = sharding.setup(net, mesh)
        for dtype in (np.float64, np.float32) if tag == "mean" else (np.float64,):
            x, y, _, _ = data(dtype)
            target = y if tag == "mean" else np.eye(10, dtype=dtype)[y]
            params = fnnet.init(net, jax.random.key(2), dtype=dtype)
            x, target, params = sharding.replicate(dp, (x, target, params))
            rules = (hand, auto) if tag == "mean" and dtype == np.float64 else (hand,)

            @jax.jit
            def both(p, x, t):
                return [(sharding.value_and_grad(dp, rule, net, p, x[:b], t[:b]),
                         fnnet.value_and_grad(net, p, x[:b], t[:b])) for b in sizes for rule in rules]
            results = iter(both(params, x, target))
            for b in sizes:
                for rule in rules:
                    got, want = next(results)
                    kind = "" if rule is hand else "/autodiff"
                    out[f"vg/{tag}/{np.dtype(dtype).name}/b{b}{kind}"] = tree_err(got, want)


def resumed_and_2d_mesh(out, x, y, p0, args, a):
    """Against the same 6 plain epochs `a`, reusing the chunk-of-2 executable where it can:
    4 + 2 epochs on the mesh with opt_state in and out, and a 2-D mesh whose "data" axis (4)
    splits the batch while a second axis (2) replicates it (not "model", which would split
    the layers: tensor_parallel.py)."""
    mesh = jax.make_mesh((8,), ("data",))
    opt = args["optimizer"]
    b, _, s, *_ = fnnet.fit(NET, p0, x, y, optimizer=opt, epochs=4, opt_state=opt.init(p0), mesh=mesh,
                        chunk_epochs=2)
    b, _, s, *_ = fnnet.fit(NET, b, x, y, optimizer=opt, epochs=2, opt_state=s, initial_epoch=4,
                        mesh=mesh, chunk_epochs=2)
    out["fit/resumed/float64"] = tree_err(a, b)
    b, *_ = fnnet.fit(NET, p0, x, y, optimizer=opt, epochs=6, chunk_epochs=2,
                     mesh=jax.make_mesh((4, 2), ("data", "replica")))
    out["fit/mesh2d/float64"] = tree_err(a, b)


def fit_cases(out):
    """fit(mesh=) against fit() after several epochs: full batch (203 = 8·25 + 3) and
    minibatches of 50 (8·6 + 2) with a last step of 3 (fewer than 8: replicated)."""
    mesh = jax.make_mesh((8,), ("data",))
    for dtype in (np.float64, np.float32):
        x, y, xt, yt = data(dtype)
        p0 = fnnet.init(NET, jax.random.key(1), dtype=dtype)
        for mode, kw in (("full", dict(epochs=6)),
                         ("minibatch", dict(epochs=3, batch_size=50, key=jax.random.key(3),
                                            validation=(xt, yt)))):
            calls = []
            args = dict(optimizer=optax.adam(1e-2), **kw)
            a, ha, *_ = fnnet.fit(NET, p0, x, y, **args)
            b, hb, *_ = fnnet.fit(NET, p0, x, y, mesh=mesh,
                              progress=lambda e, h: calls.append(e), chunk_epochs=2, **args)
            name = f"fit/{mode}/{np.dtype(dtype).name}"
            out[name] = tree_err(a, b)
            out[name + "/loss"] = rel_err(ha.loss, hb.loss)
            out[name + "/moved"] = rel_err(a[0].w, p0[0].w)   # training really changed params
            out[name + "/progress"] = calls
            out[name + "/sharding"] = str(jax.tree.leaves(b)[0].sharding.spec)
            out[name + "/devices"] = len(jax.tree.leaves(b)[0].sharding.device_set)
            if kw.get("validation"):
                out[name + "/val_loss"] = rel_err(ha.val_loss, hb.val_loss)
            if mode == "full" and dtype == np.float64:
                resumed_and_2d_mesh(out, x, y, p0, args, a)
    # the CNN (fnnet.cnn: Conv2D, MaxPool2D, Flatten, Dense): float64 full batch of 101
    # (8·12 + 5), float32 minibatches of 30 (8·3 + 6) and a last one of 11 (8·1 + 3)
    x, y, _, _ = data(np.float64)
    cnn = fnnet.cnn((8, 8, 1), classes=10, conv=(4,), dense=(16,))
    for dtype, kw in ((np.float64, dict(epochs=3)),
                      (np.float32, dict(epochs=2, batch_size=30, key=jax.random.key(1)))):
        xi = x[:101].reshape(-1, 8, 8, 1).astype(dtype)
        p0 = fnnet.init(cnn, jax.random.key(0), dtype=dtype)
        a, *_ = fnnet.fit(cnn, p0, xi, y[:101], optimizer=optax.adam(1e-2), **kw)
        b, *_ = fnnet.fit(cnn, p0, xi, y[:101], optimizer=optax.adam(1e-2), mesh=mesh, **kw)
        out[f"fit/cnn/{np.dtype(dtype).name}"] = tree_err(a, b)
        out[f"fit/cnn/{np.dtype(dtype).name}/moved"] = rel_err(jax.tree.leaves(a)[0],
                                                               jax.tree.leaves(p0)[0])


def hlo_cases(out):
    """Collectives in the compiled chunk of epochs: all-reduces, their operands, nothing else."""
    mesh = jax.make_mesh((8,), ("data",))
    dp = sharding.setup(NET, mesh)
    x, y, xt, yt = data(np.float32)
    x, y, xt, yt, p0 = sharding.replicate(dp, (x, y, xt, yt, fnnet.init(NET, jax.random.key(1))))
    key = sharding.replicate(dp, jax.random.key(0))
    # full batch 203: one step; batch 48: 4 steps in the scan + the 11-example step (8·1 + 3)
    for batch in (N, 48):
        spec = loop.LoopSpec(NET, optax.adam(1e-2), "manual", N, batch, batch < N, 4, True, dp)
        carry = sharding.replicate(dp, loop.start_carry(spec.optimizer, p0))
        text = loop.run_chunk.lower(spec, carry, loop.Data(x, y, xt, yt), key, np.int32(0),
                                    np.int32(2)).compile().as_text()
        reduces = [line for line in text.splitlines() if re.search(r"\ball-reduce(-start)?\(", line)]
        out[f"hlo/b{batch}/all_reduce_lines"] = [r.strip()[:400] for r in reduces]
        out[f"hlo/b{batch}/operands"] = [len(re.search(r"all-reduce(?:-start)?\((.*?)\)", r).group(1)
                                             .split(",")) for r in reduces]
        out[f"hlo/b{batch}/others"] = sorted({c for c in COLLECTIVES
                                              if re.search(rf"\b{c}(-start)?\(", text)})
        out["hlo/grad_leaves"] = len(jax.tree.leaves(p0))


def bad_input_cases(out):
    x, y, _, _ = data(np.float32)
    p0 = fnnet.init(NET, jax.random.key(1))
    devices = jax.devices()
    cases = {
        "wrong_devices": lambda: fnnet.fit(
            NET, p0, jax.device_put(x, devices[0]), y, optimizer=optax.sgd(0.1), epochs=1,
            mesh=jax.make_mesh((4,), ("data",), devices=devices[4:])),
        "wrong_devices_val": lambda: fnnet.fit(
            NET, p0, x, y, optimizer=optax.sgd(0.1), epochs=1,
            validation=(jax.device_put(x[:9], devices[5]), y[:9]),
            mesh=jax.make_mesh((4,), ("data",), devices=devices[:4])),
        "no_axis": lambda: fnnet.fit(NET, p0, x, y, optimizer=optax.sgd(0.1), epochs=1,
                                     mesh=jax.make_mesh((4, 2), ("batch", "replica"))),
    }
    record_errors(cases, out)
    # data already sharded on the mesh's own devices is accepted (resharded to replicated)
    mesh = jax.make_mesh((8,), ("data",))
    xs = jax.device_put(x[:200], NamedSharding(mesh, P("data")))
    a, *_ = fnnet.fit(NET, p0, x[:200], y[:200], optimizer=optax.sgd(0.1), epochs=2)
    b, *_ = fnnet.fit(NET, p0, xs, y[:200], optimizer=optax.sgd(0.1), epochs=2, mesh=mesh)
    out["bad/presharded_ok"] = tree_err(a, b)


def bench_cases(out):
    """`fnnet bench --devices 1,2 --quick`: the scaling table is written and its rows agree."""
    import tempfile
    from fnnet.bench import cli
    with tempfile.TemporaryDirectory() as d:
        out["bench/rc"] = cli.main(["--devices", "1,2", "--quick", "--workloads", "W1",
                                    "--out", d, "--quiet"])
        with open(os.path.join(d, "scaling-cpu.json")) as f:
            rows = json.load(f)["workloads"]["W1"]["rows"]
        with open(os.path.join(d, "scaling-cpu.md")) as f:
            out["bench/md"] = f.read()
    out["bench/devices"] = [r["devices"] for r in rows]
    out["bench/positive_times"] = all(r["median_s"] > 0 for r in rows)
    out["bench/max_rel_diff"] = max(r["max_rel_diff_params"] for r in rows)
    # `fnnet bench --devices 4 --layouts`: every layout over the first 4 of the 8 devices
    with tempfile.TemporaryDirectory() as d:
        out["layouts/rc"] = cli.main(["--devices", "4", "--layouts", "--quick", "--workloads", "mlp",
                                      "--out", d, "--quiet"])
        out["layouts/files"] = sorted(os.listdir(d))
        with open(os.path.join(d, "devices-cpu.json")) as f:
            out["layouts/mlp"] = json.load(f)["workloads"]["mlp"]["rows"]
        with open(os.path.join(d, "devices-cpu.md")) as f:
            out["layouts/md"] = f.read()


def cli_cases(out):
    """`fnnet train --devices 3` (the first 3 of this process's 8 devices) and the same run
    without --devices: blobs, full batch of 13500 = 3·4500, float64."""
    import contextlib
    import io
    import tempfile
    from fnnet.cli import train as cli_train
    args = ["--dataset", "blobs", "--epochs", "25", "--dtype", "float64", "--quiet", "--json"]
    with tempfile.TemporaryDirectory() as d:
        for name, extra in (("three", ["--devices", "3"]), ("one", [])):
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                out[f"cli/{name}/rc"] = cli_train.main([*extra, *args, os.path.join(d, name + ".json")])
            out[f"cli/{name}/stdout"] = text.getvalue()
            with open(os.path.join(d, name + ".json")) as f:
                out[f"cli/{name}"] = json.load(f)


def main(path):
    run((value_and_grad_cases, fit_cases, hlo_cases, bad_input_cases, bench_cases, cli_cases), path)


if __name__ == "__main__":
    main(sys.argv[1])
