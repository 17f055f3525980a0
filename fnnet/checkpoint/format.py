"""The checkpoint format's shared parts: its constants, the Checkpoint record, how trees
become path-named arrays ("layer0/w", "opt_state/0/mu/0/w", "state/layer3/mean") and
back, and the SHA-256 digest over the header and every array. fnnet/checkpoint/__init__.py
writes files with these and fnnet/checkpoint/read.py reads and validates them.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple, Optional

import jax
import numpy as np

from fnnet import network as _network
from fnnet.network import Network

FORMAT = "fnnet.checkpoint"
VERSION = 2
META = "__fnnet__"
META_MAX_BYTES = 1 << 20          # the JSON of any sane net is a few kB
DTYPES = ("bfloat16", "float16", "float32", "float64")
KEYS = {1: ("format", "version", "dtype", "net", "params"),
         2: ("format", "version", "dtype", "net", "params", "opt_state", "state", "epoch", "digest")}


class Checkpoint(NamedTuple):
    """What `restore` reads. opt_state is None unless it was saved and `optimizer` given;
    epoch None unless saved; state None unless saved."""
    net: Network
    params: Any
    opt_state: Any = None
    epoch: Optional[int] = None
    state: Any = None


def _part(k):
    for attr in ("name", "idx", "key"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def named_leaves(prefix, tree, layered):
    """[(name, leaf)] in tree order; layered: the tree's top level is one entry per layer."""
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        parts = [_part(k) for k in path]
        if layered and parts:
            parts[0] = f"layer{parts[0]}"
        out.append(("/".join(([prefix] if prefix else []) + parts), leaf))
    return out


def storage(dtype):
    """The dtype an array is stored as: itself, or its bits for non-NumPy types (bfloat16)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isbuiltin == 1 else np.dtype(f"uint{8 * dtype.itemsize}")


def params_template(net, dtype):
    return jax.eval_shape(lambda k: _network.init(net, k, dtype), jax.random.key(0))


def state_template(net, dtype):
    init_state = getattr(_network, "init_state", None)
    if init_state is None:
        raise TypeError("this fnnet has no fnnet.init_state, so no layer state can be saved or loaded")
    return jax.eval_shape(lambda: init_state(net, dtype))


def digest(meta, arrays):
    """SHA-256 over the header (less the digest) and every array's name, dtype, shape, bytes."""
    h = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "digest"}
    h.update(json.dumps(body, sort_keys=True, allow_nan=False).encode("utf-8"))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8"))
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()
