"""Checkpoints of sharded state: each process writes the blocks its devices hold, and a
restore reads only the blocks its devices need, onto any device count or layout.

    fnnet.checkpoint.save_sharded("run/ck", net, params, opt_state=opt_state, epoch=12)
    ck = fnnet.checkpoint.restore_sharded("run/ck", shardings, optimizer=opt)   # Checkpoint(...)

Nothing is gathered onto one host: a leaf split over 8 devices is written as 8 blocks, and
restored onto 4 devices each new block is cut from the stored blocks that overlap it; a
process reads only the files holding blocks its own devices need.

The folder:

    checkpoint.json       {"format": "fnnet.sharded", "version": 1, "save": TOKEN,
                           "processes": P, "net": {...}, "dtype", "epoch",
                           "params": [[name, shape, dtype], ...], "opt_state": [...] | null}
    TOKEN.p0.npz ...      process k's blocks: "<leaf name>@<start>:<stop>,<start>:<stop>"
                          arrays, and "__fnnet__": its list of blocks and a SHA-256 digest
                          over them (fnnet/checkpoint/format.py's digest)

A save writes its block files under a fresh TOKEN first, then checkpoint.json (atomically,
by process 0, after every process has written), and only then removes the files of earlier
saves: a save killed midway leaves the previous checkpoint whole. Restore checks that the
blocks of every leaf tile its shape exactly (no gap, no overlap), and each file against its
digest before taking a block from it; a missing, foreign or modified file is a ValueError
naming it.

Leaf names, shapes and dtypes are the net's (`fnnet.init`, `optimizer.init`), as in `save`.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import atomic
from fnnet.checkpoint.format import (Checkpoint, DTYPES, META, digest, named_leaves, params_template,
                                     storage)
from fnnet.checkpoint.netjson import net_from_json, net_to_json
from fnnet.checkpoint.npz import BadFile, read_array
from fnnet.contracts import check_params

FORMAT = "fnnet.sharded"
VERSION = 1
INDEX = "checkpoint.json"
_BLOCK = re.compile(r"(.+)@((?:\d+:\d+)(?:,\d+:\d+)*|)")
_FILE = re.compile(r"[0-9a-f]{16}\.p\d+\.npz")         # a save's block file: TOKEN.pK.npz


def _block_name(name, index):
    return name + "@" + ",".join(f"{s.start}:{s.stop}" for s in index)


def _slices(index, shape):
    """A shard's index (slices, None for whole axes) -> ((start, stop), ...) per axis."""
    return tuple((s.start or 0, d if s.stop is None else s.stop) for s, d in zip(index, shape))


def _groups(net, params, opt_state):
    groups = [("params", "", params, True)]
    if opt_state is not None:
        groups.append(("opt_state", "opt_state", opt_state, False))
    return groups


def save_sharded(directory, net, params, *, opt_state=None, epoch=None) -> str:
    """Write `params` (and `opt_state`, `epoch`) as a sharded checkpoint in `directory`;
    returns the save's token. Every process calls it (multi-host: after the same steps);
    each writes the blocks of its own devices, one copy of each (replica 0)."""
    directory = os.fspath(directory)
    dtype = check_params(net, params, values=False)
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(jnp.zeros(()).dtype)
    if dtype.name not in DTYPES:
        raise TypeError(f"save_sharded: params must be one of {list(DTYPES)}, got {dtype}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise ValueError(f"save_sharded: epoch must be an integer >= 0 or None, got {epoch!r}")
    os.makedirs(directory, exist_ok=True)
    token = _shared_token()
    arrays, blocks, index = {}, [], {"format": FORMAT, "version": VERSION, "save": token,
                                      "processes": jax.process_count(), "net": net_to_json(net),
                                      "dtype": dtype.name, "epoch": epoch, "opt_state": None}
    for key, prefix, tree, layered in _groups(net, params, opt_state):
        leaves = []
        for name, leaf in named_leaves(prefix, tree, layered):
            leaf = jnp.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
            leaves.append([name, list(leaf.shape), leaf.dtype.name])
            for shard in leaf.addressable_shards:
                if shard.replica_id != 0:            # one copy of each block, by whoever holds replica 0
                    continue
                a = np.asarray(shard.data)
                bad = np.isnan(a) if key == "opt_state" else ~np.isfinite(a)
                if np.issubdtype(a.dtype, np.inexact) and bad.any():
                    raise ValueError(f"save_sharded: {name} ({key}) contains NaN/Inf; refusing to "
                                     f"write a checkpoint that cannot be loaded")
                block = _block_name(name, _index_ranges(shard.index, leaf.shape))
                arrays[block] = a.view(storage(a.dtype)) if a.dtype != storage(a.dtype) else a
                blocks.append(block)
        index[key] = leaves
    header = {"save": token, "process": jax.process_index(), "blocks": sorted(blocks)}
    header["digest"] = digest(header, arrays)
    arrays[META] = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    atomic.write(os.path.join(directory, f"{token}.p{jax.process_index()}.npz"),
                 lambda f: np.savez(f, **arrays), where="save_sharded")
    _barrier("fnnet.save_sharded " + token)
    if jax.process_index() == 0:
        text = json.dumps(index, sort_keys=True, allow_nan=False).encode("utf-8")
        atomic.write(os.path.join(directory, INDEX), lambda f: f.write(text), where="save_sharded")
        for old in os.listdir(directory):               # earlier saves' blocks, now unreferenced
            if _FILE.fullmatch(old) and not old.startswith(token + ".p"):
                os.unlink(os.path.join(directory, old))
    _barrier("fnnet.save_sharded done " + token)
    return token


def _index_ranges(index, shape):
    return tuple(slice(a, b) for a, b in _slices(index, shape))


def _shared_token():
    """A fresh token, the same in every process (process 0's)."""
    token = secrets.token_hex(8)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        raw = np.frombuffer(bytes.fromhex(token), dtype=np.uint8)
        token = bytes(np.asarray(multihost_utils.broadcast_one_to_all(raw), np.uint8)).hex()
    return token


def _barrier(name):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


class _Bad(Exception):
    pass


def restore_sharded(directory, shardings, optimizer=None) -> Checkpoint:
    """Read a sharded checkpoint onto `shardings` -> Checkpoint(net, params, opt_state, epoch).

    shardings: one jax Sharding for every params leaf, or a tree like params with one per
    leaf (e.g. a NamedSharding over a mesh of any size: the stored layout need not match).
    optimizer: the optax transformation opt_state was saved for; its params-shaped trees
    (Adam's moments) get the params' shardings, its other leaves are replicated.
    """
    directory = os.fspath(directory)
    where = f"restore_sharded: {directory!r} is not a valid fnnet sharded checkpoint"
    try:
        index = _read_index(directory)
        net = net_from_json(index["net"])
        dtype = np.dtype(jnp.dtype(index["dtype"]))
        if jax.dtypes.canonicalize_dtype(dtype) != dtype:
            raise TypeError(f"restore_sharded: {directory!r} holds {dtype} params, which need "
                            f"jax.config.update('jax_enable_x64', True) first")
        params_t = params_template(net, dtype)
        param_sh = _shardings_like(params_t, shardings)
        store = _Store(directory, index)
        params = _fill(store, "", params_t, True, param_sh, index["params"])
        opt_state = None
        if optimizer is not None and index["opt_state"] is not None:
            opt_t = jax.eval_shape(optimizer.init, params_t)
            opt_sh = _opt_shardings(opt_t, params_t, param_sh)
            opt_state = _fill(store, "opt_state", opt_t, False, opt_sh, index["opt_state"])
    except (_Bad, BadFile) as e:
        raise ValueError(f"{where}: {e}") from None
    return Checkpoint(net, params, opt_state, index["epoch"])


def _read_index(directory):
    path = os.path.join(directory, INDEX)
    if not os.path.exists(path):
        raise _Bad(f"no {INDEX} in it (a save that never finished, or not a checkpoint folder)")
    try:
        with open(path, "rb") as f:
            index = json.loads(f.read(1 << 22).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise _Bad(f"{INDEX} is not JSON: {e}") from None
    keys = {"format", "version", "save", "processes", "net", "dtype", "epoch", "params", "opt_state"}
    if not isinstance(index, dict) or set(index) != keys or index["format"] != FORMAT or index["version"] != VERSION:
        raise _Bad(f"{INDEX} is not a {FORMAT} version {VERSION} index")
    return index


def _shardings_like(template, shardings):
    if isinstance(shardings, jax.sharding.Sharding):
        return jax.tree.map(lambda _: shardings, template)
    if jax.tree.structure(shardings, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding)) != \
            jax.tree.structure(template):
        raise ValueError("restore_sharded: shardings must be one jax Sharding or a tree like the "
                         "net's params with one Sharding per leaf")
    return shardings


def _opt_shardings(opt_t, params_t, param_sh):
    want = jax.tree.structure(params_t)
    first = jax.tree.leaves(param_sh, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding))[0]
    whole = jax.sharding.NamedSharding(first.mesh, jax.sharding.PartitionSpec()) \
        if isinstance(first, jax.sharding.NamedSharding) else first

    def like(t):
        return jax.tree.structure(t) == want

    return jax.tree.map(lambda t: param_sh if like(t) else whole, opt_t, is_leaf=like)


def _fill(store, prefix, template, layered, shardings, listed):
    expected = named_leaves(prefix, template, layered)
    got = [[n, list(t.shape), jnp.dtype(t.dtype).name] for n, t in expected]
    if listed != got:
        raise _Bad(f"it lists {[x[0] for x in listed]} with their shapes, the net and optimizer give "
                   f"{[x[0] for x in got]}")
    flat_sh = jax.tree.leaves(shardings, is_leaf=lambda s: isinstance(s, jax.sharding.Sharding))
    leaves = []
    for (name, t), sh in zip(expected, flat_sh):
        store.check_tiling(name, t.shape)
        leaves.append(jax.make_array_from_callback(
            t.shape, sh, lambda idx, n=name, tt=t: store.cut(n, _slices(idx, tt.shape), tt.dtype)))
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


class _Store:
    """The block files of one save, opened lazily; each file's digest checked before its
    first block is used."""

    def __init__(self, directory, index):
        self.directory, self.token = directory, index["save"]
        self.files = [os.path.join(directory, f"{self.token}.p{k}.npz") for k in range(index["processes"])]
        self.blocks = {}            # leaf name -> [((start, stop), ...), file index, block name]
        self.verified, self.zips = set(), {}
        for k, path in enumerate(self.files):
            if not os.path.exists(path):
                raise _Bad(f"block file {os.path.basename(path)} of save {self.token} is missing")
            for block in self._header(k)["blocks"]:
                m = _BLOCK.fullmatch(block)
                if not m:
                    raise _Bad(f"{os.path.basename(path)}: bad block name {block!r}")
                ranges = tuple(tuple(int(v) for v in r.split(":")) for r in m.group(2).split(",") if r)
                self.blocks.setdefault(m.group(1), []).append((ranges, k, block))

    def _zip(self, k):
        if k not in self.zips:
            try:
                self.zips[k] = zipfile.ZipFile(self.files[k])
            except (zipfile.BadZipFile, OSError) as e:
                raise _Bad(f"{os.path.basename(self.files[k])}: {e}") from None
        return self.zips[k]

    def _header(self, k):
        raw = read_array(self._zip(k), META + ".npy", META, None, np.dtype(np.uint8), max_bytes=1 << 24)
        header = json.loads(bytes(raw).decode("utf-8"))
        if header.get("save") != self.token or header.get("process") != k:
            raise _Bad(f"{os.path.basename(self.files[k])} belongs to another save or process")
        return header

    def _verify(self, k):
        if k in self.verified:
            return
        header = self._header(k)
        arrays = {b: read_array(self._zip(k), b + ".npy", b, None, None) for b in header["blocks"]}
        if digest(header, arrays) != header["digest"]:
            raise _Bad(f"{os.path.basename(self.files[k])}: its blocks do not match the digest the save "
                       f"wrote with them (modified or corrupted after it was written)")
        self.verified.add(k)

    def check_tiling(self, name, shape):
        blocks = [r for r, _, _ in self.blocks.get(name, [])]
        if not blocks:
            raise _Bad(f"no block of {name!r} in any file")
        for r in blocks:
            if len(r) != len(shape) or any(not 0 <= a < b <= d for (a, b), d in zip(r, shape)):
                raise _Bad(f"a block of {name!r} ({r}) lies outside its shape {tuple(shape)}")
        if sum(math.prod(b - a for a, b in r) for r in blocks) != math.prod(shape) or any(
                all(max(a1, a2) < min(b1, b2) for (a1, b1), (a2, b2) in zip(r1, r2))
                for i, r1 in enumerate(blocks) for r2 in blocks[i + 1:]):
            raise _Bad(f"the blocks of {name!r} do not tile its shape {tuple(shape)} exactly")

    def cut(self, name, ranges, dtype):
        """The region `ranges` of leaf `name`, assembled from the stored blocks overlapping it."""
        out = np.empty(tuple(b - a for a, b in ranges), storage(dtype))
        for stored, k, block in self.blocks[name]:
            lo = [max(a, s) for (a, _), (s, _) in zip(ranges, stored)]
            hi = [min(b, e) for (_, b), (_, e) in zip(ranges, stored)]
            if any(l >= h for l, h in zip(lo, hi)):            # no overlap with this block
                continue
            self._verify(k)
            data = read_array(self._zip(k), block + ".npy", block, tuple(e - s for s, e in stored), storage(dtype))
            src = tuple(slice(l - s, h - s) for l, h, (s, _) in zip(lo, hi, stored))
            dst = tuple(slice(l - a, h - a) for l, h, (a, _) in zip(lo, hi, ranges))
            out[dst] = data[src]
        return out.view(dtype) if out.dtype != dtype else out
