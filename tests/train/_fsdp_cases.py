"""FSDP cases on 8 simulated CPU devices; run by tests/train/test_fsdp.py.

    python tests/train/_fsdp_cases.py OUT.json

Simulated devices must be configured before JAX starts its backends, hence a subprocess.
Each case writes what it measured (relative errors, bytes, collective counts, or the
exception a bad input raised) to OUT.json; the test asserts on them. Small nets, few
epochs: the cost is XLA compile time on 2 shared cores.
"""
import os
import re
import sys
import tempfile
import warnings

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np  # noqa: E402
import optax  # noqa: E402

import fnnet  # noqa: E402
from fnnet.train import fsdp, loop, sharding  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from helpers import rel_err  # noqa: E402
from _mesh_subprocess import record_errors, run  # noqa: E402

N = 200                      # examples: minibatches of 48 -> 4 steps of 48 and one of 8
MESHES = {"fsdp8": ((8,), ("fsdp",)), "data2xfsdp4": ((2, 4), ("data", "fsdp"))}
OTHERS = ("all-to-all", "collective-permute", "send", "recv", "infeed", "outfeed", "custom-call")
MLP = fnnet.mlp([64, 24, 10], activation="tanh", loss="softmax_cross_entropy", l2=1e-3)
# GPT: wte [11, 8] splits along C (8), the attention / MLP weights along their first axis;
# LayerNorm's and small biases too where 4 or 8 divides them. SGD: with Adam the GPT's
# float32 run is chaotic on one device (tests/train/_sharding_state_cases.py).
GPT = fnnet.gpt(vocab=11, context=8, layers=1, heads=2, dim=8)
MODES = {"mlp": {"full": dict(epochs=4, optimizer=optax.adam(1e-2)),
                 "minibatch": dict(epochs=2, batch_size=48, key=jax.random.key(3),
                                   optimizer=optax.adam(1e-2))},
         "gpt": {"minibatch": dict(epochs=3, batch_size=16, key=jax.random.key(3),
                                   optimizer=optax.sgd(0.1))}}


def tree_err(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max((rel_err(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))), default=0.0)


def mesh(name):
    return jax.make_mesh(*MESHES[name])


def data(model, dtype):
    if model == "gpt":
        ids = np.random.default_rng(5).integers(0, 11, size=(48, 9))
        return ids[:, :8], ids[:, 1:]
    x, y, _, _ = fnnet.datasets.digits()
    rng = np.random.default_rng(7)
    return (x[:N] + 0.1 * rng.standard_normal((N, 64))).astype(dtype), y[:N]   # non-symmetric


def fit_cases(out):
    """FSDP fit against one device after several steps, for both meshes and both dtypes
    (float32: the MLP's full batch and the GPT's minibatches, to keep the compiles few).
    float32 also records its floor: the 1-device float32 params against float64's."""
    for model, net in (("mlp", MLP), ("gpt", GPT)):
        reference = {}
        for dtype in (np.float64, np.float32):
            x, y = data(model, dtype)
            p0 = fnnet.init(net, jax.random.key(1), dtype=dtype)
            for mode, kw in MODES[model].items():
                if (model, mode, dtype) == ("mlp", "minibatch", np.float32):
                    continue                   # float32 is the full batch's and the GPT's minibatches'
                one = fnnet.fit(net, p0, x, y, **kw)
                if dtype == np.float64:
                    reference[mode] = one.params
                for m in MESHES:
                    got = fnnet.fit(net, p0, x, y, mesh=mesh(m), **kw)
                    name = f"fit/{model}/{mode}/{m}/{np.dtype(dtype).name}"
                    out[name] = tree_err(one.params, got.params)
                    out[name + "/opt_state"] = tree_err(one.opt_state, got.opt_state)
                    out[name + "/loss"] = rel_err(one.history.loss, got.history.loss)
                    out[name + "/moved"] = rel_err(jax.tree.leaves(one.params)[0], jax.tree.leaves(p0)[0])
                    out[name + "/specs"] = [str(a.sharding.spec) for a in jax.tree.leaves(got.params)]
                    out[name + "/mesh"] = str(jax.tree.leaves(got.params)[0].sharding.mesh.axis_names)
                    out[name + "/live"] = [local_bytes(got.params), local_bytes(got.opt_state)]
                    if model == "mlp":             # the split result used eagerly, as users do
                        out[name + "/accuracy"] = [fnnet.accuracy(net, got.params, x, y),
                                                   fnnet.accuracy(net, one.params, x, y)]
                if dtype == np.float32:
                    out[f"fit/{model}/{mode}/floor"] = tree_err(one.params, reference[mode])


def extra_cases(out):
    """On ("data", "fsdp") 2 x 4, float64, against one device: an optimizer with a global
    quantity (the gradient's global norm, over leaves split across devices), validation and
    progress after each epoch; a run resumed from FSDP's own split params and opt_state; a
    loss that sums over the batch (weights 1); divergence caught at the same epoch."""
    x, y = data("mlp", np.float64)
    p0 = fnnet.init(MLP, jax.random.key(1), dtype=np.float64)
    clip = optax.chain(optax.clip_by_global_norm(0.05), optax.adam(1e-2))
    kw = dict(optimizer=clip, epochs=3, batch_size=48, key=jax.random.key(3), validation=(x[:80], y[:80]))
    one = fnnet.fit(MLP, p0, x, y, **kw)
    calls = []
    got = fnnet.fit(MLP, p0, x, y, mesh=mesh("data2xfsdp4"), chunk_epochs=1,
                    progress=lambda e, h: calls.append(e), **kw)
    out["extra/clip"] = tree_err(one.params, got.params)
    out["extra/clip/val_loss"] = rel_err(one.history.val_loss, got.history.val_loss)
    out["extra/clip/val_accuracy"] = rel_err(one.history.val_accuracy, got.history.val_accuracy)
    out["extra/clip/progress"] = calls
    # fit_cases' optimizer object, batches and chunk capacity (2 epochs): its compiled
    # programs serve these three runs too
    kw = dict(optimizer=MODES["mlp"]["minibatch"]["optimizer"], batch_size=48, key=jax.random.key(3))
    whole = fnnet.fit(MLP, p0, x, y, epochs=4, chunk_epochs=2, **kw)
    half = fnnet.fit(MLP, p0, x, y, epochs=2, mesh=mesh("data2xfsdp4"), **kw)
    rest = fnnet.fit(MLP, half.params, x, y, epochs=2, mesh=mesh("data2xfsdp4"), opt_state=half.opt_state,
                     initial_epoch=half.epoch, **kw)
    out["extra/resumed"] = tree_err(whole.params, rest.params)
    out["extra/resumed/epoch"] = rest.epoch
    sse = fnnet.mlp([64, 16, 10], activation="sigmoid", loss="half_sse", l2=1e-3)   # sums over rows
    t = np.eye(10)[y]
    q0 = fnnet.init(sse, jax.random.key(2), dtype=np.float64)
    kw = dict(optimizer=optax.sgd(1e-3), epochs=3)
    one = fnnet.fit(sse, q0, x, t, **kw)
    out["extra/sum"] = tree_err(one.params, fnnet.fit(sse, q0, x, t, mesh=mesh("fsdp8"), **kw).params)
    out["extra/sum/moved"] = rel_err(one.params[0].w, q0[0].w)
    caught = []
    for m in (None, mesh("fsdp8")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", fnnet.LossGrowthWarning)
                fnnet.fit(MLP, p0, x * 1e3, y, optimizer=optax.sgd(1e150), epochs=3, mesh=m)
        except fnnet.DivergedError as e:
            caught.append(e)
    out["extra/diverged/epochs"] = [e.epoch for e in caught]
    out["extra/diverged/params"] = tree_err(caught[0].params, caught[1].params) if len(caught) == 2 else None


def local_bytes(tree):
    """(bytes on device 0, bytes of the whole arrays) over the tree's array leaves."""
    leaves = [a for a in jax.tree.leaves(tree) if isinstance(a, jax.Array)]
    on0 = sum(s.data.nbytes for a in leaves for s in a.addressable_shards if s.device == jax.devices()[0])
    return int(on0), int(sum(a.nbytes for a in leaves))


BIG = fnnet.mlp([64, 128, 128, 10], activation="tanh", loss="softmax_cross_entropy")


def compiled(parallel, batch):
    """run_chunk for BIG on `parallel` (Fsdp or DataParallel), lowered and compiled: the
    epochs' whole program, n = 200 examples, no validation."""
    x, y = data("mlp", np.float32)
    x, y = sharding.replicate(parallel, (x, y))
    p0 = fnnet.init(BIG, jax.random.key(1))
    spec = loop.LoopSpec(BIG, optax.adam(1e-2), "manual", N, batch, batch < N, 4, False, parallel)
    carry = loop.start_carry(spec.optimizer, p0)
    place = fsdp.place if isinstance(parallel, fsdp.Fsdp) else sharding.replicate
    carry = place(parallel, carry)
    key = sharding.replicate(parallel, jax.random.key(0))
    exe = loop.run_chunk.lower(spec, carry, loop.Data(x, y), key, np.int32(0), np.int32(2)).compile()
    return exe, carry


def count(text, op):
    """(ops, operands) of collective `op` in HLO text (async -start forms included)."""
    found = re.findall(rf"\b{op}(?:-start)?\((.*?)\)", text)
    return len(found), sum(len(f.split(",")) for f in found)


def memory_and_hlo_cases(out):
    """Per-device bytes (live arrays, compiled memory_analysis) and the compiled program's
    collectives, for BIG: 6 leaves, 5 split (w [64,128], b [128], w [128,128], b [128],
    w [128,10]) and b [10] replicated."""
    p0 = fnnet.init(BIG, jax.random.key(1))
    out["leaves"] = len(jax.tree.leaves(p0))
    fs = fsdp.setup(BIG, mesh("fsdp8"))
    fresh = fsdp.init_opt_state(fs, optax.adam(1e-2), fsdp.place(fs, p0))    # fit's fresh opt_state
    out["init/specs"] = [str(a.sharding.spec) for a in jax.tree.leaves(fresh)]
    dp = sharding.setup(BIG, jax.make_mesh((8,), ("data",)))
    replicated, _ = compiled(dp, 200)
    out["mem/data8/output"] = replicated.memory_analysis().output_size_in_bytes
    out["mem/data8/temp"] = replicated.memory_analysis().temp_size_in_bytes
    for m in MESHES:
        fs = fsdp.setup(BIG, mesh(m))
        out[f"split/{m}"] = sum(fsdp.split_axis(a.shape, fs.size) is not None for a in jax.tree.leaves(p0))
        # fsdp8: one step (full batch); data2xfsdp4: the scan's step and the last step of 8
        for batch in ((200,) if m == "fsdp8" else (48,)):
            exe, carry = compiled(fs, batch)
            text = exe.as_text()
            name = f"hlo/{m}/b{batch}"
            for op in ("all-gather", "reduce-scatter", "all-reduce"):
                out[f"{name}/{op}"] = count(text, op)
            out[f"{name}/others"] = sorted(c for c in OTHERS if re.search(rf"\b{c}(-start)?\(", text))
            out[f"{name}/groups"] = sorted(set(re.findall(r"(?:all-gather|reduce-scatter)\(.*?"
                                                         r"replica_groups=(\{[\d,{}]*\})", text)))
            stats = exe.memory_analysis()
            out[f"mem/{m}/b{batch}/output"] = stats.output_size_in_bytes
            out[f"mem/{m}/b{batch}/temp"] = stats.temp_size_in_bytes
            out[f"mem/{m}/carry"] = local_bytes(carry)                 # live arrays, as placed
            out[f"live/{m}/params"] = local_bytes(carry.now.params)
            out[f"live/{m}/opt_state"] = local_bytes(carry.now.opt_state)


def save_cases(out):
    """fit's FSDP result is written by fnnet.save and restored whole, and written by blocks
    (fnnet.checkpoint.save_sharded) and restored onto another mesh."""
    x, y = data("mlp", np.float64)
    p0 = fnnet.init(MLP, jax.random.key(1), dtype=np.float64)
    r = fnnet.fit(MLP, p0, x, y, optimizer=optax.adam(1e-2), epochs=2, mesh=mesh("data2xfsdp4"))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fsdp.npz")
        fnnet.save(path, MLP, r.params, opt_state=r.opt_state, epoch=r.epoch)
        ck = fnnet.restore(path, optimizer=optax.adam(1e-2))
    out["save/params"] = tree_err(r.params, ck.params)
    out["save/opt_state"] = tree_err(r.opt_state, ck.opt_state)
    out["save/epoch"] = ck.epoch
    # sharded: each device's blocks written (2 x 4), read onto ("fsdp",) x 8 by the rule,
    # and training resumed there, against 4 epochs on one device
    with tempfile.TemporaryDirectory() as d:
        fnnet.checkpoint.save_sharded(d, MLP, r.params, opt_state=r.opt_state, epoch=r.epoch)
        ck = fnnet.checkpoint.restore_sharded(d, fsdp.shardings(p0, mesh("fsdp8")), optimizer=optax.adam(1e-2))
    out["sharded/params"] = tree_err(r.params, ck.params)
    out["sharded/opt_state"] = tree_err(r.opt_state, ck.opt_state)
    out["sharded/specs"] = [str(a.sharding.spec) for a in jax.tree.leaves(ck.params)]
    out["sharded/mesh"] = str(jax.tree.leaves(ck.params)[0].sharding.mesh.shape)
    kw = dict(optimizer=optax.adam(1e-2))
    rest = fnnet.fit(MLP, ck.params, x, y, epochs=2, mesh=mesh("fsdp8"), opt_state=ck.opt_state,
                     initial_epoch=ck.epoch, **kw)
    out["sharded/resumed"] = tree_err(fnnet.fit(MLP, p0, x, y, epochs=4, **kw).params, rest.params)


def bad_input_cases(out):
    """Each bad call's exception, and that none of them compiled a training loop."""
    x, y = data("mlp", np.float32)
    p0 = fnnet.init(MLP, jax.random.key(1))
    sgd = optax.sgd(0.1)
    fit = lambda **kw: fnnet.fit(MLP, p0, x, y, optimizer=sgd, epochs=1, **kw)  # noqa: E731
    dropout = fnnet.Network((fnnet.Dense(8), fnnet.Dropout(0.5), fnnet.Dense(10)),
                            "softmax_cross_entropy", (64,))
    compiled_before = loop.run_chunk._cache_size()
    record_errors({
        "unknown_axis": lambda: fit(mesh=jax.make_mesh((2, 4), ("model", "fsdp"))),
        "three_axes": lambda: fit(mesh=jax.make_mesh((2, 2, 2), ("data", "fsdp", "model"))),
        "full_batch": lambda: fnnet.fit(MLP, p0, x[:196], y[:196], optimizer=sgd, epochs=1,
                                        mesh=mesh("fsdp8")),
        "minibatch": lambda: fit(mesh=mesh("data2xfsdp4"), batch_size=36, key=jax.random.key(0)),
        "remainder": lambda: fnnet.fit(MLP, p0, x[:196], y[:196], optimizer=sgd, epochs=1, batch_size=64,
                                       key=jax.random.key(0), mesh=mesh("fsdp8")),   # 3·64 + 4
        "batch_axis": lambda: fit(mesh=mesh("data2xfsdp4"), batch_axis="fsdp"),
        "autodiff": lambda: fit(mesh=mesh("fsdp8"), grad="autodiff"),
        "dropout": lambda: fnnet.fit(dropout, fnnet.init(dropout, jax.random.key(0)), x, y, optimizer=sgd,
                                     epochs=1, key=jax.random.key(0), mesh=mesh("fsdp8")),
    }, out)
    out["bad/compiled"] = loop.run_chunk._cache_size() - compiled_before


def main(path):
    run((fit_cases, extra_cases, memory_and_hlo_cases, save_cases, bad_input_cases), path)


if __name__ == "__main__":
    main(sys.argv[1])
