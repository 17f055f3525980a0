"""Checkpoints: `save(path, net, params, opt_state=..., epoch=...)`, `restore`, `load`.

    fnnet.save("model.npz", net, params, opt_state=opt_state, epoch=100)
    ck = fnnet.restore("model.npz", optimizer=opt)   # Checkpoint(net, params, opt_state, epoch, state)
    net, params = fnnet.load("model.npz")            # inference: no optimizer needed

The file is a plain NumPy .npz (a zip of .npy arrays) that never needs pickle:

    __fnnet__.npy        uint8 [n]: UTF-8 JSON {"format": "fnnet.checkpoint", "version": 2,
                         "dtype": "float32", "net": {...}, "params": ["layer0/w", ...],
                         "opt_state": [...] | null, "state": [...] | null,
                         "epoch": int | null, "digest": "sha256:..."}
    layer0/w.npy         one entry per params leaf, "layer<i>/<field>"
    opt_state/0/mu/0/w.npy       optax state leaves by their tree path
    state/layer3/mean.npy         layer state (batchnorm statistics), likewise

The net is JSON (fnnet/_serialize.py): any fnnet layer or loss by class name with its
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

import errno
import hashlib
import json
import os
import struct
import zipfile
import zlib
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _atomic, _serialize
from fnnet._npz import _Bad, _read_array
from fnnet._serialize import _exact_keys, net_from_json, net_to_json
from fnnet import network as _network
from fnnet.network import Network, _check_params

FORMAT = "fnnet.checkpoint"
VERSION = 2
META = "__fnnet__"
_META_MAX_BYTES = 1 << 20          # the JSON of any sane net is a few kB
_DTYPES = ("bfloat16", "float16", "float32", "float64")
_KEYS = {1: ("format", "version", "dtype", "net", "params"),
         2: ("format", "version", "dtype", "net", "params", "opt_state", "state", "epoch", "digest")}
register = _serialize.register
sweep_temp_files = _atomic.sweep



class Checkpoint(NamedTuple):
    """What `restore` reads. opt_state is None unless it was saved and `optimizer` given;
    epoch None unless saved; state None unless saved."""
    net: Network
    params: Any
    opt_state: Any = None
    epoch: Optional[int] = None
    state: Any = None


# --------------------------------------------------------------------------
# trees <-> flat, path-named arrays
# --------------------------------------------------------------------------

def _part(k):
    for attr in ("name", "idx", "key"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _named_leaves(prefix, tree, layered):
    """[(name, leaf)] in tree order; layered: the tree's top level is one entry per layer."""
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        parts = [_part(k) for k in path]
        if layered and parts:
            parts[0] = f"layer{parts[0]}"
        out.append(("/".join(([prefix] if prefix else []) + parts), leaf))
    return out


def _storage(dtype):
    """The dtype an array is stored as: itself, or its bits for non-NumPy types (bfloat16)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isbuiltin == 1 else np.dtype(f"uint{8 * dtype.itemsize}")


def _params_template(net, dtype):
    return jax.eval_shape(lambda k: _network.init(net, k, dtype), jax.random.key(0))


def _state_template(net, dtype):
    init_state = getattr(_network, "init_state", None)
    if init_state is None:
        raise TypeError("this fnnet has no fnnet.init_state, so no layer state can be saved or loaded")
    return jax.eval_shape(lambda: init_state(net, dtype))


def _digest(meta, arrays):
    """SHA-256 over the header (less the digest) and every array's name, dtype, shape, bytes."""
    h = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "digest"}
    h.update(json.dumps(body, sort_keys=True, allow_nan=False).encode("utf-8"))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8"))
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------

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
    dtype = _check_params(net, params, values=False)   # save's own NaN check names the leaf
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(jnp.zeros(()).dtype)
    if dtype.name not in _DTYPES:
        raise TypeError(f"save: params must be one of {list(_DTYPES)}, got {dtype}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise ValueError(f"save: epoch must be an integer >= 0 or None, got {epoch!r}")
    arrays, meta = {}, {"format": FORMAT, "version": VERSION, "dtype": dtype.name, "net": desc,
                        "epoch": epoch, "opt_state": None, "state": None}
    groups = [("params", "", params, True, None)]
    if opt_state is not None:
        groups.append(("opt_state", "opt_state", opt_state, False, None))
    if state is not None:
        groups.append(("state", "state", state, True, _state_template(net, dtype)))
    for key, prefix, tree, layered, template in groups:
        if template is not None and jax.tree.structure(tree) != jax.tree.structure(template):
            raise ValueError(f"save: {key} tree must be {jax.tree.structure(template)}, "
                             f"got {jax.tree.structure(tree)}")
        names = []
        for name, leaf in _named_leaves(prefix, tree, layered):
            a = np.asarray(jax.device_get(leaf))
            bad = np.isnan(a) if key == "opt_state" else ~np.isfinite(a)   # optax may hold inf
            if np.issubdtype(a.dtype, np.inexact) and bad.any():
                i = name.split("/")[0 if key == "params" else 1]
                raise ValueError(f"save: {i} ({key}): {name} contains {int(bad.sum())} NaN/Inf "
                                 f"value(s); refusing to write a checkpoint that cannot be loaded")
            arrays[name] = a.view(_storage(a.dtype)) if a.dtype != _storage(a.dtype) else a
            names.append(name)
        meta[key] = names
    meta["digest"] = _digest(meta, arrays)
    try:
        text = json.dumps(meta, allow_nan=False, sort_keys=True)
    except ValueError as e:
        raise ValueError(f"save: the net's description is not valid JSON: {e}") from e
    arrays[META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _atomic.write(path, lambda f: np.savez(f, **arrays))   # a file object: numpy appends no ".npz"


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------

def _load(path, zf, optimizer):
    members = zf.namelist()
    if len(set(members)) != len(members):
        raise _Bad("the zip has duplicate entries")
    not_npy = [m for m in members if not m.endswith(".npy")]
    if not_npy:
        raise _Bad(f"entries {not_npy[:5]} are not .npy arrays")
    present = {m[:-len(".npy")] for m in members}
    if META not in present:
        raise _Bad(f"no {META!r} entry, so some other .npz (found {sorted(present)[:8]})")

    raw = _read_array(zf, META + ".npy", META, None, np.dtype(np.uint8), _META_MAX_BYTES)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Bad(f"the {META!r} entry is not UTF-8 JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _Bad(f"format tag is {got!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in _KEYS:
        hint = " (written by a newer fnnet?)" if isinstance(version, int) and version > VERSION else ""
        raise _Bad(f"checkpoint format version {version!r}{hint}; this fnnet reads versions {sorted(_KEYS)}")
    try:
        _exact_keys("checkpoint header", meta, _KEYS[version])
        if meta["dtype"] not in _DTYPES:
            raise ValueError(f"params dtype must be one of {list(_DTYPES)}, got {meta['dtype']!r}")
        net = net_from_json(meta["net"])
    except (ValueError, TypeError) as e:
        raise _Bad(f"invalid net description: {e}") from None
    epoch = meta.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise _Bad(f"epoch must be an integer >= 0 or null, got {epoch!r}")

    dtype = np.dtype(jnp.dtype(meta["dtype"]))
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise TypeError(f"load: {path!r} holds {dtype} params, which need "
                        f"jax.config.update('jax_enable_x64', True) before loading "
                        f"(fnnet does not downcast silently)")
    params_t = _params_template(net, dtype)
    groups = [("params", "", params_t, True, "param")]
    if meta.get("opt_state") is not None and optimizer is not None:
        groups.append(("opt_state", "opt_state", jax.eval_shape(optimizer.init, params_t), False, "opt_state"))
    if meta.get("state") is not None:
        try:
            groups.append(("state", "state", _state_template(net, dtype), True, "state"))
        except TypeError as e:
            raise _Bad(f"it holds layer state but {e}") from None
    listed = set()
    for key in ("params", "opt_state", "state"):
        names = meta.get(key)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise _Bad(f"header entry {key!r} must be a list of array names")
        listed |= set(names or ())
    missing = sorted(n for n in listed if n not in present)
    if missing:
        raise _Bad(f"missing param array(s) {missing}")
    extra = sorted(present - listed - {META})
    if extra:
        raise _Bad(f"unexpected array(s) {extra} (the net has {meta['params']})")

    out, stored = {}, {}
    for key, prefix, template, layered, what in groups:
        expected = _named_leaves(prefix, template, layered)
        want = [name for name, _ in expected]
        if meta[key] != want:
            hint = ("; was it saved with another optimizer?" if key == "opt_state" else "")
            raise _Bad(f"header lists {what}s {meta[key]!r}, the net has {want}{hint}")
        leaves = []
        for name, t in expected:
            a = _read_array(zf, name + ".npy", name, t.shape, _storage(t.dtype))
            stored[name] = a
            a = a.view(t.dtype) if a.dtype != t.dtype else a
            bad = np.isnan(a) if key == "opt_state" else ~np.isfinite(a)
            if np.issubdtype(a.dtype, np.inexact) and bad.any():
                raise _Bad(f"array {name!r} ({key}) contains {int(bad.sum())} NaN/Inf "
                           f"value(s), first at index {tuple(int(j) for j in np.argwhere(bad)[0])}")
            leaves.append(jnp.asarray(a, t.dtype))
        out[key] = jax.tree.unflatten(jax.tree.structure(template), leaves)
    if version >= 2:
        for key in ("opt_state",) if "opt_state" not in out else ():   # verified, even if not returned
            for name in meta[key] or ():
                stored[name] = _read_array(zf, name + ".npy", name, None, None)
        if _digest(meta, stored) != meta["digest"]:
            raise _Bad("its contents do not match the digest save wrote with them: the file was "
                       "modified after it was written (or corrupted)")
    try:
        _check_params(net, out["params"])     # fnnet's own check, the last word
    except (ValueError, TypeError) as e:
        raise _Bad(str(e)) from None
    return Checkpoint(net, out["params"], out.get("opt_state"), epoch, out.get("state"))


def restore(path, optimizer=None) -> Checkpoint:
    """Read a checkpoint: Checkpoint(net, params, opt_state, epoch, state).

    optimizer: the optax transformation the opt_state was saved for; its tree is rebuilt
    from jax.eval_shape(optimizer.init, params) and every leaf must match by path,
    shape and dtype (ValueError otherwise). Without it opt_state is None (still verified
    by the digest). Everything else is validated as `load` says.
    """
    return _open(path, optimizer)


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
    ck = _open(path, None)
    return ck.net, ck.params


def _open(path, optimizer):
    path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise ValueError("load: the path is empty; give the checkpoint's file name")
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        raise FileNotFoundError(f"load: no file {path!r} (but {path + '.npz'!r} exists; "
                                f"load reads exactly the path given)")
    with open(path, "rb") as f:
        head = f.read(4)
        where = f"load: {path!r} is not a valid fnnet checkpoint"
        if len(head) < 4 or head[:2] != b"PK":
            what = "it is empty" if not head else "it is not an .npz (zip) file"
            if head == b"\x93NUM":
                what = "it is a single .npy array, not an .npz checkpoint"
            raise ValueError(f"{where}: {what}")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                return _load(path, zf, optimizer)
        except _Bad as e:
            raise ValueError(f"{where}: {e}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError, KeyError,
                struct.error, NotImplementedError, OverflowError, UnicodeDecodeError, RuntimeError) as e:
            raise ValueError(f"{where} (truncated or corrupted?): {type(e).__name__}: {e}") from None
        except OSError as e:
            if e.errno != errno.EINVAL:   # a real I/O error stays an OSError
                raise
            # a corrupted zip directory can point zipfile at a negative offset
            raise ValueError(f"{where} (corrupted zip directory): {e}") from None
