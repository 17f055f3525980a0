"""Data-parallel fit with layer state and keys (BatchNorm, Dropout) and the GPT, on 8
simulated CPU devices; run by tests/train/test_sharding_state.py.

    python tests/train/_sharding_state_cases.py OUT.json

One subprocess computes every case (simulated devices must be configured before JAX
starts) and writes the measured relative errors to OUT.json; the test asserts on them.
Tiny nets, few epochs: the cost is XLA compile time on 2 shared cores.
"""
import re
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import numpy as np  # noqa: E402
import optax  # noqa: E402

import fnnet  # noqa: E402
from fnnet import state as layer_state  # noqa: E402
from fnnet.losses_seq import SequenceCrossEntropy  # noqa: E402
from fnnet.train import loop, sharding  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from helpers import rel_err  # noqa: E402
from _mesh_subprocess import record_errors, run  # noqa: E402

# BatchNorm after the activation: a bias feeding BatchNorm through a near-linear map (tanh
# near 0, or no activation) is a (near-)null direction whose float32 gradient is rounding
# noise on one device already (see conditioning_case).
MLP = fnnet.Network((fnnet.Dense(16), fnnet.Relu(), fnnet.BatchNorm(), fnnet.Dropout(0.2), fnnet.Dense(10)),
                    "softmax_cross_entropy", (64,), 1e-3)
CNN = fnnet.Network((fnnet.Conv2D(4, 3, padding="same"), fnnet.Relu(), fnnet.BatchNorm(), fnnet.MaxPool2D(2),
                     fnnet.Flatten(), fnnet.Dense(16), fnnet.Relu(), fnnet.Dropout(0.2), fnnet.Dense(10)),
                    "softmax_cross_entropy", (8, 8, 1))
GPT = fnnet.gpt(vocab=11, context=8, layers=1, heads=2, dim=8)
BN_LEAVES = {"mlp": 2, "cnn": 2}            # BatchNorm's index in the layers above


def tree_err(a, b):
    return max(rel_err(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def data(model, dtype):
    """(x, y): digits rows [104, 64] (MLP), as images [104, 8, 8, 1] (CNN), or token ids (GPT)."""
    if model == "gpt":
        rng = np.random.default_rng(5)
        ids = rng.integers(0, 11, size=(44, 9))
        return ids[:, :8], ids[:, 1:]
    x, y, _, _ = fnnet.datasets.digits()
    rng = np.random.default_rng(7)
    x = (x[:104] + 0.1 * rng.standard_normal((104, 64))).astype(dtype)
    return (x if model == "mlp" else x.reshape(-1, 8, 8, 1)), y[:104]


# full batch: 104 = 8·13 (MLP/CNN, sharded) or 44 = 8·5 + 4 (GPT: stateless, 4 replicated);
# minibatch 40 with a key: steps of 40, 40 (8·5) and a last one of 24 (MLP/CNN: n = 104) or
# 40 and 4 (GPT); "uneven" (MLP): batch 36 -> 36, 36 (8·4 + 4: run wholly replicated) and 32.
MODES = {"full": dict(epochs=4), "minibatch": dict(epochs=3, batch_size=40),
         "uneven": dict(epochs=2, batch_size=36)}
# The GPT trains with SGD: with Adam its float32 run is chaotic at 1e-4 on ONE device (the same
# run with the batch's rows permuted differs by 8.5e-5 after 4 epochs), which no split can beat.
OPTIMIZERS = {"mlp": optax.adam(1e-2), "cnn": optax.adam(1e-2), "gpt": optax.sgd(0.1)}


def fit_pair(model, net, x, y, dtype, mode, batch_stats="sync", **extra):
    """(p0, one device, 8 devices): each a FitResult."""
    kw = dict(optimizer=OPTIMIZERS[model], key=jax.random.key(3), **MODES[mode], **extra)
    if any(layer_state.is_stateful(layer) for layer in net.layers):
        kw["state"] = fnnet.init_state(net, dtype)
    p0 = fnnet.init(net, jax.random.key(1), dtype=dtype)
    one = fnnet.fit(net, p0, x, y, **kw)
    eight = fnnet.fit(net, p0, x, y, mesh=jax.make_mesh((8,), ("data",)), batch_stats=batch_stats, **kw)
    return p0, one, eight


# float32 runs one mode per model (each pair of fits is two compiles): the float64 modes
# already prove every split, float32 shows its rounding stays at float32's floor
FLOAT32_MODE = {"mlp": "minibatch", "cnn": "full", "gpt": "full"}


def fit_cases(out):
    """8 devices against 1 after several epochs: params, per-epoch loss, running statistics.
    The MLP's minibatch case also validates (eval mode) and reports progress after each epoch.
    float32 cases also record their floor: the 1-device float32 params against float64's."""
    for model, net in (("mlp", MLP), ("cnn", CNN), ("gpt", GPT)):
        reference = {}
        for dtype in (np.float64, np.float32):
            x, y = data(model, dtype)
            modes = ["full", "minibatch"] + (["uneven"] if model == "mlp" else []) if dtype == np.float64 \
                else [FLOAT32_MODE[model]]
            for mode in modes:
                name = f"fit/{model}/{mode}/{np.dtype(dtype).name}"
                extra, calls = {}, []
                if model == "mlp" and mode == "minibatch":
                    extra = dict(validation=(x[52:], y[52:]), chunk_epochs=1, progress=lambda e, h: calls.append(e))
                p0, one, eight = fit_pair(model, net, x, y, dtype, mode, **extra)
                out[name] = tree_err(one.params, eight.params)
                out[name + "/loss"] = rel_err(one.history.loss, eight.history.loss)
                out[name + "/moved"] = rel_err(jax.tree.leaves(one.params)[0], jax.tree.leaves(p0)[0])
                if extra:
                    out[name + "/val_loss"] = rel_err(one.history.val_loss, eight.history.val_loss)
                    out[name + "/val_accuracy"] = rel_err(one.history.val_accuracy, eight.history.val_accuracy)
                    out[name + "/progress"] = calls
                if model != "gpt":
                    out[name + "/state"] = tree_err(one.state, eight.state)
                    out[name + "/state_moved"] = rel_err(one.state[BN_LEAVES[model]].var, 1.0)
                    out[name + "/state_devices"] = len(jax.tree.leaves(eight.state)[0].sharding.device_set)
                if dtype == np.float64:
                    reference[mode] = one.params
                else:
                    out[name + "/floor"] = tree_err(one.params, reference[mode])


def local_cases(out):
    """batch_stats="local": per-shard statistics run, and differ from one device."""
    for model, net in (("mlp", MLP), ("cnn", CNN)):
        x, y = data(model, np.float64)
        _, one, local = fit_pair(model, net, x, y, np.float64, "full", batch_stats="local")
        out[f"local/{model}"] = tree_err(one.params, local.params)
        out[f"local/{model}/state"] = tree_err(one.state, local.state)
        out[f"local/{model}/finite"] = bool(all(np.isfinite(np.asarray(a)).all()
                                                for a in jax.tree.leaves((local.params, local.state))))


def local_statistics_case(out):
    """One local-mode step's running statistics: the mean over devices of each shard's update."""
    net = fnnet.Network((fnnet.BatchNorm(momentum=0.5), fnnet.Dense(3)), "softmax_cross_entropy", (4,))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    p0, s0 = fnnet.init(net, jax.random.key(0), np.float64), fnnet.init_state(net, np.float64)
    _, _, _, st, _ = fnnet.fit(net, p0, x, y, optimizer=optax.sgd(0.0), epochs=1, state=s0, batch_stats="local",
                         mesh=jax.make_mesh((8,), ("data",)))
    shards = x.reshape(8, 2, 4)
    want_mean = 0.5 * 0 + 0.5 * shards.mean(1).mean(0)
    want_var = 0.5 * 1 + 0.5 * (shards.var(1) * 2 / 1).mean(0)           # Bessel per shard (m = 2)
    out["local/statistics"] = max(rel_err(st[0].mean, want_mean), rel_err(st[0].var, want_var))


def autodiff_case(out):
    """grad="autodiff" (the comparison path) with synchronized statistics equals one device."""
    x, y = data("mlp", np.float64)
    _, one, eight = fit_pair("mlp", MLP, x, y, np.float64, "full", grad="autodiff")
    out["fit/mlp/autodiff/float64"] = tree_err(one.params, eight.params)


def conditioning_case(out):
    """Why BatchNorm follows the activation above: with tanh before it, the Dense bias's
    float32 gradient carries ~1e-6 relative rounding on ONE device (against float64); the
    8-device gradient is as accurate as the 1-device one, so the 8-vs-1 gap there is float32's
    own noise, not a sharding error."""
    net = fnnet.Network((fnnet.Dense(16), fnnet.Tanh(), fnnet.BatchNorm(), fnnet.Dropout(0.2), fnnet.Dense(10)),
                        "softmax_cross_entropy", (64,))
    dp = sharding.setup(net, jax.make_mesh((8,), ("data",)))
    x, y = data("mlp", np.float64)
    p64, s64, key = fnnet.init(net, jax.random.key(0), np.float64), fnnet.init_state(net, np.float64), jax.random.key(3)
    rule = lambda n, p, a, b, st, k: fnnet.value_and_grad(n, p, a, b, state=st, key=k)  # noqa: E731
    truth = fnnet.value_and_grad(net, p64, x, y, state=s64, key=key)[1]
    p32, s32 = (jax.tree.map(lambda a: a.astype(np.float32), t) for t in (p64, s64))
    one = jax.jit(lambda p, a, s: fnnet.value_and_grad(net, p, a, y, state=s, key=key))(p32, x.astype(np.float32), s32)[1]
    args = sharding.replicate(dp, (p32, x.astype(np.float32), np.asarray(y), s32, key))
    eight = jax.jit(lambda p, a, b, s, k: sharding.value_grad_state(dp, rule, net, p, a, b, s, k))(*args)[1]
    out["conditioning/bias_1dev_vs_f64"] = rel_err(one[0].b, truth[0].b)
    out["conditioning/bias_8dev_vs_f64"] = rel_err(eight[0].b, truth[0].b)
    out["conditioning/bias_8dev_vs_1dev"] = rel_err(eight[0].b, one[0].b)
    out["conditioning/others_8dev_vs_1dev"] = max(rel_err(u, v) for u, v in zip(
        jax.tree.leaves(eight)[2:], jax.tree.leaves(one)[2:]))


def hlo_cases(out):
    """All-reduces in the compiled chunk of epochs (full batch 104: one step) per mode."""
    mesh = jax.make_mesh((8,), ("data",))
    x, y = data("mlp", np.float32)
    for tag, net, stats in (("mlp/sync", MLP, "sync"), ("mlp/local", MLP, "local"), ("cnn/sync", CNN, "sync")):
        xi = x if tag.startswith("mlp") else x.reshape(-1, 8, 8, 1)
        dp = sharding.setup(net, mesh, batch_stats=stats)
        p0 = fnnet.init(net, jax.random.key(1))
        xs, ys, p0, s0, key = sharding.replicate(dp, (xi, y, p0, fnnet.init_state(net), jax.random.key(0)))
        spec = loop.LoopSpec(net, optax.adam(1e-2), "manual", len(xi), len(xi), False, 2, False, dp)
        carry = sharding.replicate(dp, loop.start_carry(spec.optimizer, p0, None, s0))
        text = loop.run_chunk.lower(spec, carry, loop.Data(xs, ys), key, np.int32(0),
                                    np.int32(1)).compile().as_text()
        reduces = [line.strip() for line in text.splitlines() if re.search(r"\ball-reduce(-start)?\(", line)]
        out[f"hlo/{tag}/all_reduces"] = len(reduces)
        out[f"hlo/{tag}/shapes"] = [re.sub(r"\s+all-reduce.*", "", r.split("=", 1)[1]).strip()[:120]
                                    for r in reduces]
        out[f"hlo/{tag}/others"] = sorted({c for c in ("all-gather", "all-to-all", "collective-permute",
                                                       "reduce-scatter", "send", "recv", "infeed", "outfeed")
                                           if re.search(rf"\b{c}(-start)?\(", text)})


def refusal_cases(out):
    cases = {
        "ignore_index": lambda: sharding.setup(
            fnnet.gpt(11, 8, 1, 2, 8, loss=SequenceCrossEntropy(ignore_index=-1)),
            jax.make_mesh((8,), ("data",))),
        "batch_stats": lambda: sharding.setup(MLP, jax.make_mesh((8,), ("data",)), batch_stats="global"),
    }
    record_errors(cases, out)


def main(path):
    run((fit_cases, local_cases, local_statistics_case, autodiff_case, conditioning_case, hlo_cases,
         refusal_cases), path)


if __name__ == "__main__":
    main(sys.argv[1])
