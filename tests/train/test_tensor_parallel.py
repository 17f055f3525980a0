"""Tensor parallelism (fnnet/train/tensor_parallel.py): split equals one device.

The 8-device cases run once, in a subprocess (tests/train/_tensor_parallel_cases.py):
simulated CPU devices must be configured before JAX starts. The bounds:
  float64, SGD with momentum: 1e-12 relative after 3 steps (measured ~1.5e-15);
  float32: 100 float32 ulps (1.2e-5) relative: the split sums (Σ_m x_m W_m, psummed) add
    in another order than one dot, ~1e-7 each, through ~10 layers (measured 7e-7 to 9e-7);
  float64, AdamW: 1e-10 on params (measured 3e-12), 1e-12 on the moments. Adam divides
    every gradient element by its own running size, and the key bias's gradient is zero in
    exact arithmetic (adding b_k to every key adds the same q·b_k to a row of scores, which
    softmax ignores): it is rounding noise (~1e-20) on one device and on eight, and Adam turns
    two different noises into steps of different size. Every other leaf agrees to 5e-13.
"""
import numpy as np
import pytest

import fnnet
from fnnet.train import tensor_parallel
from _mesh_subprocess import launch

F32 = 100 * np.finfo(np.float32).eps


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return launch("_tensor_parallel_cases.py", tmp_path_factory)


@pytest.mark.parametrize("mesh, dtype, bound", [("data2_model4", "float64", 1e-12), ("model8", "float64", 1e-12),
                                                ("data2_model4", "float32", F32)])
def test_gpt_split_equals_one_device(cases, mesh, dtype, bound):
    for what in ("loss", "grads", "params", "opt_state") if dtype == "float64" else ("params", "opt_state"):
        assert cases[f"gpt/{dtype}/{mesh}/{what}"] <= bound, what


def test_gpt_adamw_moments_follow_the_permuted_layout(cases):
    assert cases["gpt/adamw/model8/opt_state"] <= 1e-12
    assert cases["gpt/adamw/model8/params"] <= 1e-10


@pytest.mark.parametrize("mesh, dtype, bound", [("data2_model4", "float64", 1e-12), ("model8", "float64", 1e-12),
                                                ("data2_model4", "float32", F32)])
def test_mlp_split_equals_one_device(cases, mesh, dtype, bound):
    assert cases[f"mlp/{dtype}/{mesh}/params"] <= bound


@pytest.mark.parametrize("mesh, data", [("data2_model4", 1), ("model8", 0)])
def test_gpt_step_holds_megatrons_all_reduces_and_nothing_else(cases, mesh, data):
    """2 blocks x (attention out + MLP out forward, their inputs' dx backward) = 8 over
    "model", 1 over "data" (the gradients), no all-gather, reduce-scatter or all-to-all:
    nothing was left to XLA's partitioner."""
    assert cases[f"gpt/{mesh}/collectives"] == {"model": 8, "data": data, "other": []}


@pytest.mark.parametrize("mesh, dtype, data", [("data2_model4", "float64", 1), ("model8", "float64", 0),
                                               ("data2_model4", "float32", 1)])
def test_mlp_step_collectives(cases, dtype, mesh, data):
    """One all-reduce over "model": the row layer's output psum, into which XLA merges the
    L2 term's Σw² psum (one tuple all-reduce). The column layer's dx psum is dead code: the
    net's input needs no gradient."""
    assert cases[f"mlp/{dtype}/{mesh}/collectives"] == {"model": 1, "data": data, "other": []}


@pytest.mark.parametrize("mesh", ["data2_model4", "model8"])
def test_each_device_holds_its_blocks_only(cases, mesh):
    """Device 0's bytes of params + momentum = the replicated leaves + 1/M of the split ones,
    and the compiled step's arguments are exactly that plus its rows of the batch."""
    mine, total, split_fraction, m = cases[f"gpt/{mesh}/bytes"]
    assert split_fraction > 0.9                       # all but embeddings and norms is split
    assert mine == pytest.approx(total * ((1 - split_fraction) + split_fraction / m), rel=1e-3)
    data = 2 if mesh.startswith("data2") else 1
    batch_bytes = 2 * 8 * 8 * 8 // data               # ids and targets [8, 8] int64, its rows
    assert cases[f"gpt/{mesh}/argument_bytes"] == mine + batch_bytes


def test_sharded_checkpoint_restores_onto_another_layout(cases):
    """Saved from ("data", "model") = (2, 4): one block per device and leaf, no host gather;
    restored bit for bit onto one device and onto ("model",) = 8, whose next step's loss
    equals the original run's."""
    assert len(cases["ckpt/files"]) == 2 and "checkpoint.json" in cases["ckpt/files"]
    assert cases["ckpt/epoch"] == 1
    assert cases["ckpt/one_device"] == 0.0 and cases["ckpt/model8"] == 0.0
    assert cases["ckpt/model8_spec"] == "P(None, 'model')"
    stored, expected = cases["ckpt/blocks"]       # 4 blocks per split leaf, 1 per replicated, + count
    assert stored == expected
    assert cases["ckpt/next_loss"] <= 1e-12


def test_fit_with_a_model_axis_equals_one_device(cases):
    """fit(mesh=("data", "model")): minibatches and validation as on one device; it returns
    params in the one-device layout, split on the caller's mesh, and a run resumed from them
    on another layout ("model" x 8) continues exactly."""
    for what in ("params", "opt_state", "history", "resumed"):
        assert cases[f"fit/{what}"] <= 1e-12, what
    assert cases["fit/returned_spec"] == "P(None, 'model')"
    assert cases["bad/fit_autodiff"][0] == "ValueError" and "grad must be 'manual'" in cases["bad/fit_autodiff"][1]
    kind, message = cases["bad/fit_odd_batch"]
    assert kind == "ValueError" and "[15]" in message and "'data' axis of 2" in message


@pytest.mark.parametrize("name, kind, words", [
    ("no_model_axis", "ValueError", ["'data': 8", "no 'model' axis"]),
    ("unknown_axis", "ValueError", ["'pipe': 2", "not ['pipe']"]),
    ("heads_not_divisible", "ValueError", ["4 heads", "size 8"]),
    ("width_not_divisible", "ValueError", ["Dense(20)", "20 units", "size 8"]),
    ("nothing_to_split", "ValueError", ["nothing to split"]),
    ("batch_not_divisible", "ValueError", ["15 examples", "'data' axis of 2"]),
    ("not_a_mesh", "TypeError", ["jax.sharding.Mesh", "got str"]),
])
def test_bad_input_is_refused_before_compiling(cases, name, kind, words):
    got = cases[f"bad/{name}"]
    assert got is not None and got[0] == kind, got
    for w in words:
        assert w in got[1], got[1]


def test_split_layers_in_a_gpt_and_an_mlp():
    """Which layers the split replaces (one device: the mesh is only read for its axis sizes)."""
    import jax
    mesh = jax.make_mesh((1,), ("model",))
    tp = tensor_parallel.setup(fnnet.gpt(vocab=11, context=4, layers=1, heads=2, dim=8), mesh)
    body = tp.local_net.layers[0].body.layers
    assert isinstance(body[0].block.layers[1], tensor_parallel.HeadAttention)
    mlp = body[1].block.layers
    assert isinstance(mlp[1].layer, tensor_parallel.ColumnDense) and mlp[1].layer.units == 32
    assert isinstance(mlp[3].layer, tensor_parallel.RowDense) and mlp[3].layer.units == 8
    net = fnnet.mlp([5, 8, 8, 3], activation="relu", loss="softmax_cross_entropy")
    kinds = [type(layer).__name__ for layer in tensor_parallel.setup(net, mesh).local_net.layers]
    assert kinds == ["ColumnDense", "Relu", "RowDense", "Relu", "Dense"]   # the third has no partner
    softmax_between = fnnet.Network((fnnet.Dense(8), fnnet.Softmax(), fnnet.Dense(3)),
                                    fnnet.losses.get("mse"), (5,))
    with pytest.raises(ValueError, match="nothing to split"):       # softmax mixes the features
        tensor_parallel.setup(softmax_between, mesh)
