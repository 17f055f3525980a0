"""Sharded checkpoints (fnnet/checkpoint/sharded.py) on this process's device: the format,
its checks and its crash safety. Restoring onto other device counts and layouts runs on 8
simulated devices in tests/train/test_tensor_parallel.py."""
import json
import os
import zipfile

import jax
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import fnnet
from fnnet.checkpoint.sharded import INDEX, restore_sharded, save_sharded

NET = fnnet.mlp([5, 8, 3], activation="tanh", loss="softmax_cross_entropy")


def _state():
    params = fnnet.init(NET, jax.random.key(4))
    opt = optax.adam(1e-2)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 3, 6)
    r = fnnet.fit(NET, params, x, y, optimizer=opt, epochs=3)
    return r.params, r.opt_state, opt


def _one():
    return NamedSharding(jax.make_mesh((1,), ("x",), devices=jax.devices()[:1]), P())


def _same(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_round_trip_with_optimizer_state_and_epoch(tmp_path):
    params, opt_state, opt = _state()
    save_sharded(tmp_path, NET, params, opt_state=opt_state, epoch=3)
    ck = restore_sharded(tmp_path, _one(), optimizer=opt)
    assert ck.net == NET and ck.epoch == 3
    _same(ck.params, params)
    _same(ck.opt_state, opt_state)
    assert restore_sharded(tmp_path, _one()).opt_state is None      # no optimizer: params only


def test_a_new_save_replaces_the_old_blocks_and_keeps_other_files(tmp_path):
    params, opt_state, _ = _state()
    (tmp_path / "mine.npz").write_bytes(b"user data")
    first = save_sharded(tmp_path, NET, params)
    second = save_sharded(tmp_path, NET, params, epoch=1)
    names = sorted(os.listdir(tmp_path))
    assert names == sorted([INDEX, "mine.npz", f"{second}.p0.npz"]) and first != second


def test_a_save_killed_before_its_index_leaves_the_previous_checkpoint(tmp_path):
    params, _, _ = _state()
    save_sharded(tmp_path, NET, params, epoch=1)
    # a second save whose process died after writing its blocks, before checkpoint.json:
    (tmp_path / "0123456789abcdef.p0.npz").write_bytes(b"half a zip")
    ck = restore_sharded(tmp_path, _one())
    assert ck.epoch == 1
    _same(ck.params, params)


def test_a_modified_block_is_refused_naming_the_file(tmp_path):
    params, _, _ = _state()
    token = save_sharded(tmp_path, NET, params)
    path = tmp_path / f"{token}.p0.npz"
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in members if n.startswith("layer0/w@"))
    raw = bytearray(members[name])
    raw[-1] ^= 0x01                                   # one bit of one weight
    members[name] = bytes(raw)
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(ValueError, match=f"{token}.p0.npz: its blocks do not match the digest"):
        restore_sharded(tmp_path, _one())


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint.json"):
        restore_sharded(tmp_path, _one())
    params, _, _ = _state()
    token = save_sharded(tmp_path, NET, params)
    os.unlink(tmp_path / f"{token}.p0.npz")
    with pytest.raises(ValueError, match=f"block file {token}.p0.npz of save {token} is missing"):
        restore_sharded(tmp_path, _one())


def test_an_index_for_another_net_is_refused(tmp_path):
    params, _, _ = _state()
    save_sharded(tmp_path, NET, params)
    index = json.loads((tmp_path / INDEX).read_text())
    index["params"][0][1] = [5, 9]                    # the file claims another width
    (tmp_path / INDEX).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="lists"):
        restore_sharded(tmp_path, _one())


def test_nan_params_are_not_saved(tmp_path):
    params, _, _ = _state()
    bad = (params[0]._replace(w=params[0].w.at[0, 0].set(np.nan)),) + params[1:]
    with pytest.raises(ValueError, match="layer0/w .*NaN"):
        save_sharded(tmp_path, NET, bad)
    assert not os.path.exists(tmp_path / INDEX)
