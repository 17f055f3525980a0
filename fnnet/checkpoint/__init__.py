"""Checkpoints: `save(path, net, params, opt_state=..., epoch=...)`, `restore`, `load`.

    fnnet.save("model.npz", net, params, opt_state=opt_state, epoch=100)
    ck = fnnet.restore("model.npz", optimizer=opt)   # Checkpoint(net, params, opt_state, epoch, state)
    net, params = fnnet.load("model.npz")            # inference: no optimizer needed

Sharded state (params split over devices) goes to a folder of per-process blocks instead,
restored onto any layout or device count: `save_sharded` / `restore_sharded`
(fnnet/checkpoint/sharded.py).

The file is a plain NumPy .npz (a zip of .npy arrays) that never needs pickle:

    __fnnet__.npy        uint8 [n]: UTF-8 JSON {"format": "fnnet.checkpoint", "version": 2,
                         "dtype": "float32", "net": {...}, "params": ["layer0/w", ...],
                         "opt_state": [...] | null, "state": [...] | null,
                         "epoch": int | null, "digest": "sha256:..."}
    layer0/w.npy         one entry per params leaf, "layer<i>/<field>"
    opt_state/0/mu/0/w.npy       optax state leaves by their tree path
    state/layer3/mean.npy         layer state (batchnorm statistics), likewise

The net is JSON (fnnet/checkpoint/netjson.py): any fnnet layer or loss by class name with its
dataclass fields, nested layers included; a user's class only after
`fnnet.checkpoint.register(MyLayer)`. Trees are rebuilt from `jax.eval_shape` of
`fnnet.init` (and `optimizer.init`, `fnnet.init_state`) and filled by path, so every
leaf must have exactly the name, shape and dtype the net implies. bfloat16 leaves are
stored as their uint16 bits (NumPy has no bfloat16); `np.load(path)["layer0/w"]` reads
the others directly.

What load detects: anything outside the schema, and (version 2) any change to the
description or to any array after save wrote them: a SHA-256 digest over the header
and every array's name, dtype, shape and bytes is checked on load. The digest is a
checksum, not a signature: whoever recomputes it can write a file that loads. Version 1
files (no digest) still load; only their schema is checked.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import atomic
from fnnet.contracts import check_params
from fnnet.checkpoint import netjson
from fnnet.checkpoint.format import (DTYPES, FORMAT, META, VERSION, Checkpoint,  # noqa: F401 (API)
                                     digest, named_leaves, state_template, storage)
from fnnet.checkpoint.netjson import net_to_json
from fnnet.checkpoint.read import read_checkpoint
from fnnet.checkpoint.sharded import restore_sharded, save_sharded  # noqa: F401 (API)
from fnnet.network import Network

register = netjson.register
sweep_temp_files = atomic.sweep


def save(path, net: Network, params, *, opt_state=None, epoch=None, state=None) -> None:
    """Write `net`, `params` (and optionally `opt_state`, `epoch`, layer `state`) to `path`.

    path: str or os.PathLike, written exactly as given (no ".npz" appended; an empty
    path is a ValueError). The write is atomic: a temporary file beside `path`, fsync'ed,
    then renamed over it; an error, Ctrl-C or SIGTERM midway leaves an existing
    checkpoint untouched and removes the temporary file, and stale ones a killed save
    left (SIGKILL) are swept on the next save to the same path. OSErrors name `path`.

    params: the tree `fnnet.init(net, key, dtype)` builds (float32, float64, float16 or
    bfloat16 leaves), all finite. opt_state: the optax state fit returned (any tree
    `optimizer.init(params)` builds; restored with `restore(path, optimizer=...)`).
    epoch: epochs trained so far (fit's initial_epoch on resume). state: the layer state
    tree (`fnnet.init_state`). Nets of fnnet's layers and losses save as they are; a
    user's class needs `fnnet.checkpoint.register(cls)` (TypeError naming the layer
    otherwise).
    """
    path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise ValueError("save: the path is empty; give a file name such as 'model.npz'")
    desc = net_to_json(net)
    dtype = check_params(net, params, values=False)   # save's own NaN check names the leaf
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(jnp.zeros(()).dtype)
    if dtype.name not in DTYPES:
        raise TypeError(f"save: params must be one of {list(DTYPES)}, got {dtype}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise ValueError(f"save: epoch must be an integer >= 0 or None, got {epoch!r}")
    arrays, meta = {}, {"format": FORMAT, "version": VERSION, "dtype": dtype.name, "net": desc,
                        "epoch": epoch, "opt_state": None, "state": None}
    groups = [("params", "", params, True, None)]
    if opt_state is not None:
        groups.append(("opt_state", "opt_state", opt_state, False, None))
    if state is not None:
        groups.append(("state", "state", state, True, state_template(net, dtype)))
    for key, prefix, tree, layered, template in groups:
        if template is not None and jax.tree.structure(tree) != jax.tree.structure(template):
            raise ValueError(f"save: {key} tree must be {jax.tree.structure(template)}, "
                             f"got {jax.tree.structure(tree)}")
        names = []
        for name, leaf in named_leaves(prefix, tree, layered):
            a = np.asarray(jax.device_get(leaf))
            bad = np.isnan(a) if key == "opt_state" else ~np.isfinite(a)   # optax may hold inf
            if np.issubdtype(a.dtype, np.inexact) and bad.any():
                i = name.split("/")[0 if key == "params" else 1]
                raise ValueError(f"save: {i} ({key}): {name} contains {int(bad.sum())} NaN/Inf "
                                 f"value(s); refusing to write a checkpoint that cannot be loaded")
            arrays[name] = a.view(storage(a.dtype)) if a.dtype != storage(a.dtype) else a
            names.append(name)
        meta[key] = names
    meta["digest"] = digest(meta, arrays)
    try:
        text = json.dumps(meta, allow_nan=False, sort_keys=True)
    except ValueError as e:
        raise ValueError(f"save: the net's description is not valid JSON: {e}") from e
    arrays[META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic.write(path, lambda f: np.savez(f, **arrays))   # a file object: numpy appends no ".npz"


def restore(path, optimizer=None) -> Checkpoint:
    """Read a checkpoint: Checkpoint(net, params, opt_state, epoch, state).

    optimizer: the optax transformation the opt_state was saved for; its tree is rebuilt
    from jax.eval_shape(optimizer.init, params) and every leaf must match by path,
    shape and dtype (ValueError otherwise). Without it opt_state is None (still verified
    by the digest). Everything else is validated as `load` says.
    """
    return read_checkpoint(path, optimizer)


def load(path):
    """Read a checkpoint written by `save`: returns `(net, params)` (`restore` for the rest).

    `path` (str or os.PathLike) is read exactly as given, no ".npz" is appended.
    params come back as jax arrays in the saved dtype; float64 checkpoints need
    jax_enable_x64 (TypeError otherwise, never a silent downcast).
    Nothing is unpickled and no code named by the file is imported. Validated: the
    format tag and version, the net's JSON against the layer and loss classes, every
    leaf (present, no extras, the name, shape and dtype `fnnet.init` would build,
    finite), then the digest over all of it: a truncated, foreign or modified file
    raises ValueError naming `path` and what is wrong (see this module's docstring for
    what the digest does and does not prove).
    """
    ck = read_checkpoint(path, None)
    return ck.net, ck.params
