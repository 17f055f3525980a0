"""Fully sharded data parallelism: fit on a mesh with an "fsdp" axis (fnnet/train/fsdp.py).

The 8-device cases run once, in a subprocess (tests/train/_fsdp_cases.py), as in
tests/train/test_sharding.py. Meshes: ("fsdp",) of 8 and ("data", "fsdp") of 2 x 4.
"""
import dataclasses

import jax
import numpy as np
import optax
import pytest

import fnnet
from fnnet.train import fsdp
from _mesh_subprocess import launch
from helpers import assert_trees_close

FLOAT64 = 1e-12
# float32: the split sums each gradient in another order (q rows per device, then the
# reduce-scatter's and psum's additions), so every step's gradient differs from one device's
# by float32 rounding (~1e-7 relative), and Adam carries that forward. That is the size of
# the one-device float32 run's own distance from float64 (its "floor", recorded per case:
# 2e-7 .. 7e-7 here). Measured 8-vs-1: up to ~9e-7. Asserted: 1e-5, and within 10x the floor.
FLOAT32 = 1e-5
BOUND = {"float64": FLOAT64, "float32": FLOAT32}
MESHES = ("fsdp8", "data2xfsdp4")
SIZES = {"fsdp8": (1, 8), "data2xfsdp4": (2, 4)}         # (D, F)
FIT = [("mlp", "full", "float64"), ("mlp", "full", "float32"), ("mlp", "minibatch", "float64"),
       ("gpt", "minibatch", "float64"), ("gpt", "minibatch", "float32")]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return launch("_fsdp_cases.py", tmp_path_factory, fast_compile=True)


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("model, mode, dtype", FIT)
def test_fit_equals_one_device(cases, model, mode, mesh, dtype):
    # MLP: full batch of 200 (4 epochs, Adam) and minibatches of 48 (steps 48 x 4 and 8);
    # GPT: 48 sequences, minibatches of 16 (3 epochs, SGD).
    name = f"fit/{model}/{mode}/{mesh}/{dtype}"
    assert cases[name + "/moved"] > 0.01                      # training really moved params
    assert cases[name] <= BOUND[dtype], f"params rel err {cases[name]:.3g}"
    assert cases[name + "/opt_state"] <= BOUND[dtype]
    assert cases[name + "/loss"] <= BOUND[dtype]              # per-epoch loss history
    if dtype == "float32":
        assert cases[name] <= 10 * cases[f"fit/{model}/{mode}/floor"] + 1e-7
    # returned split over the caller's own mesh, by the rule
    assert cases[name + "/mesh"] == str(("fsdp",) if mesh == "fsdp8" else ("data", "fsdp"))
    assert "P('fsdp',)" in cases[name + "/specs"]
    if model == "mlp":          # fnnet.accuracy on the split params (an eager x @ W, W split by rows)
        split, one_device = cases[name + "/accuracy"]
        assert split == one_device


def test_global_norm_clipping_validation_and_progress(cases):
    # clip_by_global_norm reads every leaf, split ones included: the update runs on the
    # sharded arrays, where XLA reduces across devices; validation runs on them too
    assert cases["extra/clip"] <= FLOAT64
    assert cases["extra/clip/val_loss"] <= FLOAT64 and cases["extra/clip/val_accuracy"] <= FLOAT64
    assert cases["extra/clip/progress"] == [1, 2, 3]


def test_resumed_from_its_own_split_state(cases):
    # 2 + 2 epochs on the mesh, the second from the first's split params and opt_state,
    # against 4 epochs on one device
    assert cases["extra/resumed"] <= FLOAT64 and cases["extra/resumed/epoch"] == 4


def test_a_loss_summed_over_the_batch(cases):
    # half_sse: each device's sum enters the reduce-scatter with weight 1, not q / B
    assert cases["extra/sum/moved"] > 0.01
    assert cases["extra/sum"] <= FLOAT64


def test_divergence_is_caught_at_the_same_epoch(cases):
    assert cases["extra/diverged/epochs"] == [1, 1]
    assert cases["extra/diverged/params"] <= FLOAT64        # the same last good params


def test_layout_follows_the_rule(cases):
    # MLP: w [64, 24], b [24], w [24, 10] split along axis 0; b [10] has no axis 8 or 4 divides.
    # GPT (C = 8): wte [11, 8] along axis 1, its 15 other leaves (wpe, norms, attention, MLP)
    # along axis 0.
    for mesh in MESHES:
        assert cases[f"fit/mlp/full/{mesh}/float64/specs"] == ["P('fsdp',)"] * 3 + ["P()"]
        assert cases[f"fit/gpt/minibatch/{mesh}/float64/specs"] == ["P(None, 'fsdp')"] + ["P('fsdp',)"] * 15


def _rule_bytes(sizes, size, itemsize=4):
    """(bytes of fnnet.mlp(sizes)'s params on one device by the rule, whole bytes)."""
    net = fnnet.mlp(sizes, activation="tanh", loss="softmax_cross_entropy")
    shapes = [a.shape for a in jax.tree.leaves(jax.eval_shape(lambda: fnnet.init(net, jax.random.key(1))))]
    whole = sum(itemsize * int(np.prod(s)) for s in shapes)
    local = sum(itemsize * int(np.prod(s)) // (1 if fsdp.split_axis(s, size) is None else size)
                for s in shapes)
    return local, whole


@pytest.mark.parametrize("mesh", MESHES)
def test_fit_returns_split_params_and_optimizer_state(cases, mesh):
    # fit's result, live: device 0's shards of params and Adam's state (μ, ν, a whole count)
    local, whole = _rule_bytes([64, 24, 10], SIZES[mesh][1])
    for dtype, itemsize in (("float64", 8), ("float32", 4)):
        params, opt_state = cases[f"fit/mlp/full/{mesh}/{dtype}/live"]
        assert params == [local * itemsize // 4, whole * itemsize // 4]
        assert opt_state == [2 * local * itemsize // 4 + 4, 2 * whole * itemsize // 4 + 4]


@pytest.mark.parametrize("mesh", MESHES)
def test_each_device_holds_its_share_of_params_and_optimizer_state(cases, mesh):
    _, size = SIZES[mesh]
    local, whole = _rule_bytes([64, 128, 128, 10], size)
    assert cases["leaves"] == 6 and cases[f"split/{mesh}"] == 5
    # live arrays as the loop receives them, device 0's shards; Adam's state: μ, ν and a count
    assert cases[f"live/{mesh}/params"] == [local, whole]
    assert cases[f"live/{mesh}/opt_state"] == [2 * local + 4, 2 * whole + 4]
    assert local / whole < 1 / size + 0.001                   # only b [10] is whole everywhere
    # the compiled epochs' outputs are the carry (params, Adam's state, each twice: now and the
    # epoch before) and the records: per device, the carry's local bytes (XLA aligns buffers)
    carry_local, carry_whole = cases[f"mem/{mesh}/carry"]
    assert carry_local / carry_whole < 1 / size + 0.001
    out = cases[f"mem/{mesh}/b{200 if mesh == 'fsdp8' else 48}/output"]
    assert carry_local <= out <= 1.01 * carry_local
    assert out / cases["mem/data8/output"] < 1 / size + 0.002       # against data parallel's


def test_fresh_optimizer_state_is_created_split(cases):
    # Adam's count, then μ and ν laid out as the params (b [10] whole): never whole on a device
    params = ["P('fsdp',)"] * 5 + ["P()"]
    assert cases["init/specs"] == ["P()"] + params + params


@pytest.mark.parametrize("mesh, batch, steps", [("fsdp8", 200, 1), ("data2xfsdp4", 48, 2)])
def test_compiled_step_holds_exactly_the_expected_collectives(cases, mesh, batch, steps):
    # The program text holds each step's code once: full batch one step; minibatches of 48
    # the scan's step and the last step of 8. Per step and split leaf (S = 5): one all-gather
    # (forward) and one reduce-scatter (backward), over the fsdp groups, none combined.
    data, size = SIZES[mesh]
    split, replicated = 5, 1
    name = f"hlo/{mesh}/b{batch}"
    assert cases[f"{name}/all-gather"] == [split * steps] * 2
    assert cases[f"{name}/reduce-scatter"] == [split * steps] * 2
    groups = "{{0,1,2,3,4,5,6,7}}" if size == 8 else "{{0,1,2,3},{4,5,6,7}}"
    assert cases[f"{name}/groups"] == [groups]
    # all-reduce operands: per step the replicated leaves' gradients and the loss, plus the
    # S scattered gradients over "data" when D > 1; once per epoch the loop's finiteness
    # check of the S split params (an all-reduce of S booleans)
    operands = steps * (replicated + 1 + (split if data > 1 else 0)) + split
    assert cases[f"{name}/all-reduce"][1] == operands
    assert cases[f"{name}/others"] == []        # no permute, all-to-all, host transfer or callback


def test_result_is_saved_and_restored_whole(cases):
    assert cases["save/params"] == 0.0 and cases["save/opt_state"] == 0.0
    assert cases["save/epoch"] == 2


def test_sharded_checkpoint_restored_onto_another_mesh_and_resumed(cases):
    # saved by blocks from ("data", "fsdp") 2 x 4, read onto ("fsdp",) x 8 with
    # fsdp.shardings, 2 more epochs there == 4 epochs on one device
    assert cases["sharded/params"] == 0.0 and cases["sharded/opt_state"] == 0.0
    assert cases["sharded/specs"] == ["P('fsdp',)"] * 3 + ["P()"]
    assert "('fsdp', 8)" in cases["sharded/mesh"]
    assert cases["sharded/resumed"] <= FLOAT64


@pytest.mark.parametrize("case, text", [
    ("unknown_axis", "an FSDP mesh takes the axes 'data' and 'fsdp' only; this mesh has axes "
                     "{'model': 2, 'fsdp': 4}, unknown ['model']"),
    ("three_axes", "axes {'data': 2, 'fsdp': 2, 'model': 2}, unknown ['model']"),
    ("full_batch", "over all 8 devices of the mesh {'fsdp': 8}; step batches of [196] example(s) "
                   "do not divide evenly (n=196, batch_size=196)"),
    ("minibatch", "over all 8 devices of the mesh {'data': 2, 'fsdp': 4}; step batches of [20, 36]"),
    ("remainder", "step batches of [4] example(s) do not divide evenly (n=196, batch_size=64)"),
    ("batch_axis", "batch_axis must stay 'data', got 'fsdp'"),
    ("autodiff", "grad must be 'manual', got 'autodiff'"),
    ("dropout", "layer 1 (Dropout(0.5)) has layer state or randomness, which FSDP (mesh {'fsdp': 8})"),
])
def test_bad_input_is_refused_before_compiling(cases, case, text):
    kind, message = cases[f"bad/{case}"]
    assert kind == "ValueError" and text in message, message
    assert cases["bad/compiled"] == 0


# --- in this process: one CPU device ---------------------------------------------------

NET = fnnet.mlp([5, 8, 3], activation="tanh", loss="softmax_cross_entropy", l2=1e-2)


def _data(dtype):
    rng = np.random.default_rng(0)
    return rng.standard_normal((12, 5)).astype(dtype), rng.integers(0, 3, 12)


@pytest.mark.parametrize("shape, size, axis", [((64, 24), 8, 0), ((10,), 4, None), ((3, 16), 4, 1),
                                               ((), 8, None), ((4,), 8, None), ((8, 8), 8, 0)])
def test_split_axis_is_the_first_divisible_axis(shape, size, axis):
    assert fsdp.split_axis(shape, size) == axis


FIT = dict(optimizer=optax.adam(0.05), epochs=3, batch_size=4, key=jax.random.key(1))   # one object: one compile


@pytest.fixture(scope="module")
def plain():
    """(p0, fit's result without a mesh), shared by the one-device mesh cases."""
    x, y = _data(np.float64)
    p0 = fnnet.init(NET, jax.random.key(0), dtype=np.float64)
    return p0, fnnet.fit(NET, p0, x, y, **FIT)


@pytest.mark.parametrize("shape, names", [((1,), ("fsdp",)), ((1, 1), ("data", "fsdp"))])
def test_one_device_fsdp_mesh_equals_plain_fit(plain, shape, names):
    p0, want = plain
    got = fnnet.fit(NET, p0, *_data(np.float64), mesh=jax.make_mesh(shape, names), **FIT)
    assert_trees_close(got.params, want.params, 1e-12, "params")
    assert_trees_close(got.opt_state, want.opt_state, 1e-12, "opt_state")


@pytest.mark.parametrize("jit", [False, True])
def test_value_and_grad_without_and_with_jit(jit):
    x, y = _data(np.float32)
    params = fnnet.init(NET, jax.random.key(0))
    fs = fsdp.setup(NET, jax.make_mesh((1,), ("fsdp",)))

    def run(p, a, b):
        return fsdp.value_and_grad(fs, NET, p, a, b)
    got = (jax.jit(run) if jit else run)(fsdp.place(fs, params), x, y)
    assert_trees_close(got, fnnet.value_and_grad(NET, params, x, y), 1e-6, "value, grads")


def test_loss_must_say_how_it_reduces_over_the_batch():
    @dataclasses.dataclass(frozen=True)
    class Mine:                                  # a user's loss without batch_reduction
        def value(self, out, t): return ((out - t) ** 2).mean()
        def grad(self, out, t): return 2 * (out - t) / out.size
    net = fnnet.Network(NET.layers, Mine(), (5,))
    with pytest.raises(ValueError, match=r"must declare batch_reduction .* mesh \{'fsdp': 1\}"):
        fsdp.setup(net, jax.make_mesh((1,), ("fsdp",)))


def test_shardings_follow_the_rule_and_need_an_fsdp_axis():
    params = fnnet.init(NET, jax.random.key(0))
    got = fsdp.shardings(params, jax.make_mesh((1,), ("fsdp",)))
    assert [str(s.spec) for s in jax.tree.leaves(got)] == ["P('fsdp',)"] * 4   # F = 1 divides all
    with pytest.raises(ValueError, match="fsdp.shardings: mesh must be a jax.sharding.Mesh with an 'fsdp' axis"):
        fsdp.shardings(params, jax.make_mesh((1,), ("data",)))


def test_unknown_axis_on_one_device():
    with pytest.raises(ValueError, match=r"axes \{'fsdp': 1, 'model': 1\}, unknown \['model'\]"):
        fsdp.setup(NET, jax.make_mesh((1, 1), ("fsdp", "model")))
