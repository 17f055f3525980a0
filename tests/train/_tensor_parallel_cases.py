"""Tensor-parallel cases on 8 simulated CPU devices; run by tests/train/test_tensor_parallel.py.

    python tests/train/_tensor_parallel_cases.py OUT.json

Every case trains or differentiates the same net with the same params and batches on one
device and split over a mesh ("data" x "model" or "model" alone), and writes the relative
errors, the compiled step's collectives and each device's bytes to OUT.json; the test
asserts on them. Small nets and few steps: the cost is XLA compile time.
"""
import os
import re
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np  # noqa: E402
import optax  # noqa: E402

import fnnet  # noqa: E402
from fnnet.train import tensor_parallel  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from helpers import rel_err  # noqa: E402
from _mesh_subprocess import record_errors, run  # noqa: E402

MESHES = {"data2_model4": ((2, 4), ("data", "model")), "model8": ((8,), ("model",)),
          "model4": ((4,), ("model",))}
GPT = dict(vocab=23, context=8, layers=2, heads=8, dim=32)
MLP = fnnet.mlp([64, 24, 10], activation="tanh", loss="softmax_cross_entropy", l2=1e-3)


def tree_err(a, b):
    return max(rel_err(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def mesh(name):
    shape, names = MESHES[name]
    return jax.make_mesh(shape, names, devices=jax.devices()[:int(np.prod(shape))])


def gpt_batches(n, seed=3):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, GPT["vocab"], (8, GPT["context"])),
             rng.integers(0, GPT["vocab"], (8, GPT["context"]))) for _ in range(n)]


def mlp_batches(n, dtype, seed=5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((16, 64)).astype(dtype), rng.integers(0, 10, 16)) for _ in range(n)]


def one_device(net, params, optimizer, batches):
    state = optimizer.init(params)

    @jax.jit
    def step(p, s, x, y):
        value, grads = fnnet.value_and_grad(net, p, x, y)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value
    for x, y in batches:
        params, state, _ = step(params, state, x, y)
    return params, state


def split(tp, params, optimizer, batches):
    p, s = tp.shard(params, optimizer.init(params))
    compiled = tp.train_step(optimizer).lower(p, s, *batches[0]).compile()
    for x, y in batches:                  # the compiled step itself: jit would compile it again
        p, s, _ = compiled(p, s, x, y)
    return p, s, compiled


def collectives(compiled, tp):
    """{"model": n, "data": n, "other": [op names]}: the compiled step's all-reduces by the
    axis their replica groups span, and any other collective."""
    text = compiled.as_text()
    out = {"model": 0, "data": 0, "other": []}
    for line in text.splitlines():
        if re.search(r"\ball-reduce(-start)?\(", line):
            groups = re.search(r"replica_groups=\{\{([\d,]+)\}", line).group(1).split(",")
            if len(groups) == tp.size and tp.size != tp.data_size:
                out["model"] += 1
            elif len(groups) == tp.data_size:
                out["data"] += 1
            else:
                out["other"].append(line.strip()[:120])
        for op in ("all-gather", "reduce-scatter", "all-to-all", "collective-permute"):
            if re.search(r"\b" + op + r"(-start)?\(", line):
                out["other"].append(op)
    return out


def device_bytes(tree, tp, params):
    """(bytes on device 0, bytes if every device held everything, the 1/M expectation)."""
    dev0 = jax.devices()[0]
    leaves = jax.tree.leaves(tree)
    mine = sum(sh.data.nbytes for a in leaves for sh in a.addressable_shards if sh.device == dev0)
    total = sum(a.nbytes for a in leaves)
    specs = jax.tree.leaves(tp.specs(params), is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))
    split_bytes = sum(a.nbytes for a, s in zip(jax.tree.leaves(params), specs) if tp.axis in tuple(s))
    return mine, total, split_bytes / sum(a.nbytes for a in jax.tree.leaves(params))


def gpt_cases(out):
    """The GPT: value_and_grad on one batch, and 3 training steps, split vs one device."""
    net = fnnet.gpt(**GPT)
    for dtype in ("float64", "float32"):
        params = fnnet.init(net, jax.random.key(1), dtype)
        batches = gpt_batches(3)
        ref_v, ref_g = fnnet.value_and_grad(net, params, *batches[0]) if dtype == "float64" else (None, None)
        sgd = optax.sgd(0.1, momentum=0.9)
        ref_p, ref_s = one_device(net, params, sgd, batches)
        # float32 on one layout only: each layout costs a compile, and the layouts' float64
        # cases already separate a wrong split from float32 rounding
        for name in ("data2_model4", "model8") if dtype == "float64" else ("data2_model4",):
            tp = tensor_parallel.setup(net, mesh(name))
            if dtype == "float64":             # one batch's loss and gradients (float32: the steps)
                v, g = jax.jit(tp.value_and_grad)(tp.shard(params), *batches[0])
                out[f"gpt/{dtype}/{name}/loss"] = rel_err(v, ref_v)
                out[f"gpt/{dtype}/{name}/grads"] = tree_err(tp.gather(g), ref_g)
            p, s, compiled = split(tp, params, sgd, batches)
            out[f"gpt/{dtype}/{name}/params"] = tree_err(tp.gather(p), ref_p)
            out[f"gpt/{dtype}/{name}/opt_state"] = tree_err(tp.gather_opt_state(s, ref_p), ref_s)
            if name == "model8":
                # AdamW: its moments live in the permuted layout too (gather_opt_state undoes it)
                adamw = optax.adamw(1e-2, weight_decay=0.1)
                ref_pa, ref_sa = one_device(net, params, adamw, batches)
                pa, sa, _ = split(tp, params, adamw, batches)
                out[f"gpt/adamw/{name}/params"] = tree_err(tp.gather(pa), ref_pa)
                out[f"gpt/adamw/{name}/opt_state"] = tree_err(tp.gather_opt_state(sa, ref_pa), ref_sa)
            if dtype == "float64":
                out[f"gpt/{name}/collectives"] = collectives(compiled, tp)
                mine, total, split_fraction = device_bytes((p, s), tp, params)
                out[f"gpt/{name}/bytes"] = [mine, total, split_fraction, tp.size]
                out[f"gpt/{name}/argument_bytes"] = compiled.memory_analysis().argument_size_in_bytes


def mlp_cases(out):
    """An MLP with L2: 3 SGD steps in float64 and float32, split vs one device."""
    for dtype in ("float64", "float32"):
        params = fnnet.init(MLP, jax.random.key(2), dtype)
        batches = mlp_batches(3, dtype)
        optimizer = optax.sgd(0.1, momentum=0.9)
        ref_p, _ = one_device(MLP, params, optimizer, batches)
        for name in ("data2_model4", "model8") if dtype == "float64" else ("data2_model4",):
            tp = tensor_parallel.setup(MLP, mesh(name))
            p, s, compiled = split(tp, params, optimizer, batches)
            out[f"mlp/{dtype}/{name}/params"] = tree_err(tp.gather(p), ref_p)
            out[f"mlp/{dtype}/{name}/collectives"] = collectives(compiled, tp)


def checkpoint_cases(out):
    """A sharded checkpoint of a ("data", "model") = (2, 4) run after one AdamW step,
    restored onto one device, onto ("model",) = 8, and trained on from there."""
    import tempfile
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from fnnet.checkpoint.sharded import restore_sharded
    net = fnnet.gpt(**GPT)
    params = fnnet.init(net, jax.random.key(1), "float64")
    adamw = optax.adamw(1e-2, weight_decay=0.1)
    first, second = gpt_batches(2, seed=11)
    tp = tensor_parallel.setup(net, mesh("data2_model4"))
    p, s = tp.shard(params, adamw.init(params))
    step = tp.train_step(adamw)
    p, s, _ = step(p, s, *first)
    whole_p = tp.gather(p)
    whole_s = tp.gather_opt_state(s, whole_p)
    with tempfile.TemporaryDirectory() as d:
        tp.save(d, p, s, epoch=1)
        out["ckpt/files"] = sorted(os.listdir(d))
        with np.load(os.path.join(d, [f for f in os.listdir(d) if f.endswith(".npz")][0])) as z:
            stored = len([n for n in z.files if "@" in n])
        split_leaves = [tp.axis in tuple(sp) for sp in jax.tree.leaves(
            tp.specs(params), is_leaf=lambda t: isinstance(t, P))]
        moments = 2                                   # AdamW: mu and nu, shaped like params
        out["ckpt/blocks"] = [stored, (1 + moments) * sum(4 if sp else 1 for sp in split_leaves) + 1]
        one = restore_sharded(d, NamedSharding(Mesh(np.array(jax.devices()[:1]), ("x",)), P()), adamw)
        out["ckpt/one_device"] = max(tree_err(one.params, whole_p), tree_err(one.opt_state, whole_s))
        out["ckpt/epoch"] = one.epoch
        tp8 = tensor_parallel.setup(net, mesh("model8"))
        ck = tp8.restore(d, adamw)
        out["ckpt/model8"] = max(tree_err(tp8.gather(ck.params), whole_p),
                                 tree_err(tp8.gather_opt_state(ck.opt_state, whole_p), whole_s))
        out["ckpt/model8_spec"] = str(ck.params[0].body[0][1].w_qkv.sharding.spec)
        _, _, loss8 = tp8.train_step(adamw)(ck.params, ck.opt_state, *second)
        _, _, loss = step(p, s, *second)
        out["ckpt/next_loss"] = rel_err(loss8, loss)


def fit_cases(out):
    """fnnet.fit with a "model" axis: minibatches with validation on ("data", "model") = (2, 4),
    then resumed from its own result on ("model",) = 8, against the same on one device."""
    net = fnnet.gpt(**{**GPT, "layers": 1})          # one block: fit's loop compiles six times here
    params = fnnet.init(net, jax.random.key(1), "float64")
    rng = np.random.default_rng(17)
    ids = rng.integers(0, GPT["vocab"], (32, GPT["context"] + 1))
    x, y = ids[:, :-1], ids[:, 1:]
    kw = dict(optimizer=optax.sgd(0.1, momentum=0.9), epochs=2, batch_size=16,
              key=jax.random.key(3), validation=(x[:8], y[:8]))
    one = fnnet.fit(net, params, x, y, **kw)
    split = fnnet.fit(net, params, x, y, mesh=mesh("data2_model4"), **kw)
    out["fit/params"] = tree_err(split.params, one.params)
    out["fit/opt_state"] = tree_err(split.opt_state, one.opt_state)
    out["fit/history"] = max(rel_err(getattr(split.history, k), getattr(one.history, k))
                             for k in ("loss", "val_loss", "val_accuracy"))
    out["fit/returned_spec"] = str(split.params[0].body[0][1].w_qkv.sharding.spec)
    again = fnnet.fit(net, split.params, x, y, mesh=mesh("model8"), opt_state=split.opt_state,
                      initial_epoch=2, **kw)
    again_one = fnnet.fit(net, one.params, x, y, opt_state=one.opt_state, initial_epoch=2, **kw)
    out["fit/resumed"] = tree_err(again.params, again_one.params)
    record_errors({
        "fit_autodiff": lambda: fnnet.fit(net, params, x, y, mesh=mesh("model8"), grad="autodiff", **kw),
        "fit_odd_batch": lambda: fnnet.fit(net, params, x[:15], y[:15], mesh=mesh("data2_model4"),
                                           **{**kw, "batch_size": None}),
    }, out)


def bad_input_cases(out):
    """The errors setup and the step raise before anything is compiled."""
    gpt = fnnet.gpt(**GPT)
    tp = tensor_parallel.setup(MLP, mesh("data2_model4"))
    params = tp.shard(fnnet.init(MLP, jax.random.key(0), "float64"))
    x, y = mlp_batches(1, "float64")[0]
    record_errors({
        "no_model_axis": lambda: tensor_parallel.setup(MLP, jax.make_mesh((8,), ("data",))),
        "unknown_axis": lambda: tensor_parallel.setup(MLP, jax.make_mesh((2, 2, 2), ("data", "model", "pipe"))),
        "heads_not_divisible": lambda: tensor_parallel.setup(fnnet.gpt(**{**GPT, "heads": 4}), mesh("model8")),
        "width_not_divisible": lambda: tensor_parallel.setup(
            fnnet.mlp([64, 20, 10], activation="relu", loss="softmax_cross_entropy"), mesh("model8")),
        "nothing_to_split": lambda: tensor_parallel.setup(
            fnnet.mlp([64, 10], loss="softmax_cross_entropy"), mesh("model4")),
        "batch_not_divisible": lambda: tp.value_and_grad(params, x[:15], y[:15]),
        "not_a_mesh": lambda: tensor_parallel.setup(gpt, "model"),
    }, out)


if __name__ == "__main__":
    run([gpt_cases, mlp_cases, checkpoint_cases, fit_cases, bad_input_cases], sys.argv[1])
