"""Data-parallel fit (fnnet/train/sharding.py).

The 8-device cases run once, in a subprocess (tests/train/_sharding_cases.py): simulated
CPU devices must be configured before JAX starts, which this process has already done.
The bounds, relative: float64 1e-12 (measured <= 1.6e-15); float32 n·T·eps, derived in
bound() from the longest reordered sum n and the optimizer steps T.
"""
import dataclasses

import jax
import numpy as np
import optax
import pytest

import fnnet
from fnnet.train import sharding
from _mesh_subprocess import launch
from helpers import assert_trees_close

F64 = 1e-12
EPS32 = float(np.finfo(np.float32).eps)


def bound(dtype, terms, steps=1):
    """The relative error allowed between the 8-device and the one-device result.

    float32: both runs add the same per-example terms, in other orders (each device its shard,
    then the psum over devices, against one pass on one device; XLA picks each order when it
    compiles, so the LLVM optimization level moves it too). Two orders of an n-term sum differ
    by at most 2·γ_(n-1)·Σ|t_i| ≈ n·eps·Σ|t_i| (γ_k = k·u/(1 - k·u), u = eps/2: Higham,
    Accuracy and Stability of Numerical Algorithms, §4.2), a relative error n·eps where Σ|t_i|
    is of the leaf's size; each of T optimizer steps adds at most one such error to the params
    (to first order: a few small steps do not amplify it), hence n·T·eps. n: the longest sum
    whose order changes, a step's batch (a convolution kernel's gradient: batch·positions).
    Measured at LLVM level 0 (the worker's): 1/10 of it (the 16-example gradient, 1.8e-7) to
    1/7000 (the CNN); the full-batch fit 2.1e-6 of 1.45e-4. Real bugs sit far above it: a
    missing psum (every device using one shard's gradient) gives 0.64 on the 203-example
    gradient and 0.5 to 1.5 on the fits' params; a gradient summed instead of averaged over the 8 devices gives 0.875 on every gradient and
    loss, 0.12 to 0.35 on the MLP fits' params (Adam's scale invariance hides it in the CNN,
    without L2, 6.6e-5: its float64 bound catches it there).
    """
    return F64 if dtype == "float64" else terms * steps * EPS32


STEPS = {"full": (203, 6), "minibatch": (50, 3 * 5)}     # (n, T): 203 = 4·50 + 3, five steps an epoch


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return launch("_sharding_cases.py", tmp_path_factory, fast_compile=True)


@pytest.mark.parametrize("dtype, loss", [("float64", "mean"), ("float32", "mean"), ("float64", "sum")])
@pytest.mark.parametrize("batch", [16, 203, 5])
def test_value_and_grad_matches_one_device(cases, dtype, loss, batch):
    # 16 = 8·2; 203 = 8·25 + 3 left over; 5 < 8 devices. "sum" is half_sse (weights 1).
    assert cases[f"vg/{loss}/{dtype}/b{batch}"] <= bound(dtype, batch)


@pytest.mark.parametrize("batch", [16, 203, 5])
def test_autodiff_rule_per_shard_is_not_psummed_twice(cases, batch):
    assert cases[f"vg/mean/float64/b{batch}/autodiff"] <= F64


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["full", "minibatch"])
def test_fit_on_8_devices_equals_one_device(cases, dtype, mode):
    name, most = f"fit/{mode}/{dtype}", bound(dtype, *STEPS[mode])
    assert cases[name + "/moved"] > 0.05                       # training really moved params
    assert cases[name] <= most, f"params rel err {cases[name]:.3g}"
    assert cases[name + "/loss"] <= most                       # history: per-epoch loss
    assert cases[name + "/sharding"] == "P()" and cases[name + "/devices"] == 8
    epochs = 6 if mode == "full" else 3
    assert cases[name + "/progress"] == list(range(2, epochs, 2)) + [epochs]   # chunks of 2
    if mode == "minibatch":
        assert cases[name + "/val_loss"] <= most


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_cnn_on_8_devices_equals_one_device(cases, dtype):
    assert cases[f"fit/cnn/{dtype}/moved"] > 0.01
    # float32: minibatches of 30, 2 epochs of 4 steps; the 'same' conv kernel's gradient sums 30·8·8
    assert cases[f"fit/cnn/{dtype}"] <= bound(dtype, 30 * 8 * 8, 2 * 4)


def test_fit_resumed_on_the_mesh_with_opt_state(cases):
    assert cases["fit/resumed/float64"] <= F64


def test_fit_on_2d_mesh_splits_only_the_batch_axis(cases):
    assert cases["fit/mesh2d/float64"] <= F64


@pytest.mark.parametrize("batch, steps", [(203, 1), (48, 2)])
def test_hlo_one_all_reduce_of_the_gradient_tree_per_step(cases, batch, steps):
    # The compiled chunk of epochs holds one all-reduce per step in its program text: full
    # batch has one step; batch 48 has the scan's step and the last 11-example step (8·1 + 3).
    # Each all-reduce is one combined op carrying every gradient leaf and the loss.
    lines = cases[f"hlo/b{batch}/all_reduce_lines"]
    assert len(lines) == steps, lines
    assert cases[f"hlo/b{batch}/operands"] == [cases["hlo/grad_leaves"] + 1] * steps
    assert all("replica_groups={{0,1,2,3,4,5,6,7}}" in line for line in lines), lines
    # no other collective, no host transfer (infeed/outfeed/send/recv), no host callback
    assert cases[f"hlo/b{batch}/others"] == []


def test_data_committed_to_other_devices_is_refused(cases):
    kind, message = cases["bad/wrong_devices"]
    assert kind == "ValueError"
    assert "training data[0] is on devices [0], the mesh is on [4, 5, 6, 7]" in message
    kind, message = cases["bad/wrong_devices_val"]
    assert kind == "ValueError" and "validation data[0] is on devices [5]" in message


def test_data_sharded_on_the_mesh_is_accepted(cases):
    assert cases["bad/presharded_ok"] <= bound("float32", 200, 2)   # full batch of 200, 2 epochs


def test_mesh_without_the_batch_axis(cases):
    kind, message = cases["bad/no_axis"]
    assert kind == "ValueError" and "no batch axis 'data'" in message and "'batch'" in message


def test_bench_devices_table(cases):
    assert cases["bench/rc"] == 0
    assert cases["bench/devices"] == [None, 1, 2]              # no mesh, then each count
    assert cases["bench/positive_times"]
    assert cases["bench/max_rel_diff"] <= 1e-5                  # float32: the same training
    assert "simulated CPU devices sharing the same cores" in cases["bench/md"]


def test_bench_layouts_table(cases):
    # `fnnet bench --devices 4 --layouts` on the MLP [64, 32, 32, 10] (6 leaves: b [10] and
    # Adam's count are the only ones that 4 does not split)
    assert cases["layouts/rc"] == 0
    assert cases["layouts/files"] == ["devices-cpu.json", "devices-cpu.md"]
    rows = {r["layout"]: r for r in cases["layouts/mlp"]}
    assert list(rows) == ["one device", "data", "fsdp", "data x fsdp", "data x model"]
    assert rows["data x fsdp"]["mesh"] == {"data": 2, "fsdp": 2}
    for name in ("data", "fsdp", "data x fsdp", "data x model"):
        r = rows[name]
        assert r["params_vs_one_device"] <= 1e-12                  # float64, 3 Adam steps
        assert r["step_ms"] > 0 and r["compiled"]["argument_bytes"] > 0
        assert r["collectives"]["all-to-all"] == r["collectives"]["collective-permute"] == 0
    one = rows["one device"]["live_bytes_per_device"]
    assert rows["data"]["live_bytes_per_device"] == one           # replicated
    assert 0.25 <= rows["fsdp"]["live_share"] < 0.26              # 1/4 but b [10] and the count
    assert 0.5 <= rows["data x fsdp"]["live_share"] < 0.51
    assert 0.5 < rows["data x model"]["live_share"] < 1           # W1, b1, W2 split 2 ways
    data = rows["data"]["collectives"]
    assert (data["all-reduce"], data["all-gather"], data["reduce-scatter"]) == (1, 0, 0)
    assert rows["fsdp"]["collectives"]["all-gather"] == rows["fsdp"]["collectives"]["reduce-scatter"] == 5
    assert rows["data x model"]["collectives"]["all-reduce"] == 2    # "model": y of the row layer; "data"
    assert rows["data x model"]["collectives"]["all-gather"] == 0
    assert "simulated CPU devices sharing the same cores" in cases["layouts/md"]
    assert "| fsdp | fsdp 4 |" in cases["layouts/md"]


def test_bench_layouts_needs_an_even_device_count_of_at_least_four(capsys):
    from fnnet.bench import cli, devices
    for n in (2, 3, 5):
        with pytest.raises(ValueError, match=f"--devices {n} --layouts: the device count must be even and >= 4"):
            devices.meshes(n)
    assert cli.main(["--layouts", "--quiet"]) == 2
    assert "give --devices too" in capsys.readouterr().err
    assert cli.main(["--devices", "1,2", "--layouts", "--quiet"]) == 2
    assert "one device count, e.g. --devices 8" in capsys.readouterr().err


# --- in this process: one CPU device ---------------------------------------------------

NET = fnnet.mlp([5, 7, 3], activation="tanh", loss="softmax_cross_entropy", l2=1e-2)


def _data(dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((11, 5)).astype(dtype), rng.integers(0, 3, 11)


FIT = dict(optimizer=optax.sgd(0.5), epochs=3, batch_size=4, key=jax.random.key(1))   # one object: one compile


@pytest.fixture(scope="module")
def plain():
    """(p0, params after FIT without a mesh), shared by the one-device mesh tests."""
    x, y = _data(np.float64)
    p0 = fnnet.init(NET, jax.random.key(0), dtype=np.float64)
    return p0, fnnet.fit(NET, p0, x, y, **FIT).params


@pytest.mark.parametrize("axis", ["data", "batch"])
def test_one_device_mesh_equals_plain_fit(plain, axis):
    # a one-axis mesh's axis is the batch axis, whatever its name
    p0, want = plain
    got, *_ = fnnet.fit(NET, p0, *_data(np.float64), mesh=jax.make_mesh((1,), (axis,)), **FIT)
    assert_trees_close(got, want, 1e-12, "params")


def test_batch_axis_none_on_a_one_axis_mesh_is_its_axis():
    assert sharding.setup(NET, jax.make_mesh((1,), ("devices",)), batch_axis=None).axis == "devices"


@pytest.mark.parametrize("jit", [False, True])
def test_value_and_grad_without_and_with_jit(jit):
    x, y = _data(np.float32)
    params = fnnet.init(NET, jax.random.key(0))
    dp = sharding.setup(NET, jax.make_mesh((1,), ("data",)))

    def run(p, a, b):
        return sharding.value_and_grad(dp, fnnet.value_and_grad, NET, p, a, b)
    got = (jax.jit(run) if jit else run)(*sharding.replicate(dp, (params, x, y)))
    assert_trees_close(got, fnnet.value_and_grad(NET, params, x, y), 1e-6, "value, grads")


def test_mesh_must_be_a_mesh():
    x, y = _data(np.float32)
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        fnnet.fit(NET, fnnet.init(NET, jax.random.key(0)), x, y, optimizer=optax.sgd(0.1),
                  epochs=1, mesh=jax.devices())


def test_batch_axis_must_name_a_mesh_axis():
    with pytest.raises(ValueError, match=r"mesh has axes \('data',\), no batch axis 'batch'"):
        sharding.setup(NET, jax.make_mesh((1,), ("data",)), batch_axis="batch")


def test_stateful_layer_without_axis_name_is_refused_not_run_per_shard():
    @dataclasses.dataclass(frozen=True)
    class Stats:                                 # the key/state protocol's stateful layer
        def init(self, key, in_shape): return (), tuple(in_shape)
        def init_state(self, in_shape, dtype): return (np.zeros(in_shape, dtype),)
        def forward(self, params, x): return x, None
        def backward(self, params, cache, dy): return (), dy
    net = fnnet.Network((NET.layers[0], Stats()), NET.loss, (5,))
    with pytest.raises(ValueError, match=r"layer 1 \(.*Stats.*\) has layer state or randomness"):
        sharding.setup(net, jax.make_mesh((1,), ("data",)))


def test_loss_must_say_how_it_reduces_over_the_batch():
    @dataclasses.dataclass(frozen=True)
    class Mine:                                  # a user's loss without batch_reduction
        def value(self, out, t): return ((out - t) ** 2).mean()
        def grad(self, out, t): return 2 * (out - t) / out.size
    net = fnnet.Network(NET.layers, Mine(), (5,))
    with pytest.raises(ValueError, match="must declare batch_reduction = 'mean' or 'sum'"):
        sharding.setup(net, jax.make_mesh((1,), ("data",)))



def test_cli_devices_trains_what_one_device_trains(cases):
    # `fnnet train --devices 3` splits each step over 3 devices and trains what the one-device
    # run trains (blobs, full batch of 13500 = 3·4500). That --devices asks for simulated
    # CPU devices before JAX starts is shown in a fresh process by tests/cli/test_cli_gpt_devices.py.
    assert cases["cli/three/rc"] == cases["cli/one/rc"] == 0
    assert "devices: 3 cpu (simulated: they share this machine's cores)" in cases["cli/three/stdout"]
    three, one = cases["cli/three"], cases["cli/one"]
    assert three["settings"]["devices"] == 3 and one["settings"]["devices"] is None
    for k in ("final_loss", "test_loss"):
        assert abs(three[k] - one[k]) <= 1e-12 * abs(one[k]), k


def test_cli_devices_more_than_there_are():
    from fnnet.cli import train as cli_train
    jax.devices()                                  # this process's backend has started
    n = jax.device_count() + 1
    with pytest.raises(ValueError, match=f"--devices {n}: only {n - 1} cpu device"):
        sharding.data_mesh(n)
    assert cli_train.main(["--devices", str(n), "--epochs", "1", "--quiet"]) == 2
