"""Reading a checkpoint: every check `fnnet.load` promises (see fnnet/checkpoint/__init__.py),
before any array is handed back: zip members, the header's schema and version, the net
description, each leaf's name, shape, dtype and finiteness against the trees the net
implies, then the digest. Every problem is a ValueError naming the path and what is wrong.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.contracts import check_params
from fnnet.checkpoint.format import (DTYPES, FORMAT, KEYS, META, META_MAX_BYTES, VERSION, Checkpoint,
                                     digest, named_leaves, params_template, state_template, storage)
from fnnet.checkpoint.netjson import exact_keys, net_from_json
from fnnet.checkpoint.npz import BadFile as _Bad   # raised by every check below, reported by read_checkpoint
from fnnet.checkpoint.npz import read_array


def _load(path, zf, optimizer):
    """The Checkpoint in the open zip `zf`, every check in the order load promises."""
    present = _array_names(zf)
    meta, version = _header(zf)
    net, epoch = _net_and_epoch(path, meta, version)
    groups = _templates(path, meta, net, optimizer)
    _check_listed(meta, present)
    out, stored = _read_groups(path, zf, meta, groups)
    _check_digest(zf, meta, version, out, stored)
    try:
        check_params(net, out["params"])     # fnnet's own check, the last word
    except (ValueError, TypeError) as e:
        raise _Bad(str(e)) from None
    return Checkpoint(net, out["params"], out.get("opt_state"), epoch, out.get("state"))


def _array_names(zf):
    """The names of the zip's .npy entries (less ".npy"); the header entry must be one."""
    members = zf.namelist()
    if len(set(members)) != len(members):
        raise _Bad("the zip has duplicate entries")
    not_npy = [m for m in members if not m.endswith(".npy")]
    if not_npy:
        raise _Bad(f"entries {not_npy[:5]} are not .npy arrays")
    present = {m[:-len(".npy")] for m in members}
    if META not in present:
        raise _Bad(f"no {META!r} entry, so some other .npz (found {sorted(present)[:8]})")
    return present


def _header(zf):
    """(meta, version): the header's JSON, with the format tag and a version this fnnet reads."""
    raw = read_array(zf, META + ".npy", META, None, np.dtype(np.uint8), META_MAX_BYTES)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Bad(f"the {META!r} entry is not UTF-8 JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _Bad(f"format tag is {got!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in KEYS:
        hint = " (written by a newer fnnet?)" if isinstance(version, int) and version > VERSION else ""
        raise _Bad(f"checkpoint format version {version!r}{hint}; this fnnet reads versions {sorted(KEYS)}")
    return meta, version


def _net_and_epoch(path, meta, version):
    """(net, epoch): the header's fields exactly, the net rebuilt from its JSON, the epoch."""
    try:
        exact_keys("checkpoint header", meta, KEYS[version])
        if meta["dtype"] not in DTYPES:
            raise ValueError(f"params dtype must be one of {list(DTYPES)}, got {meta['dtype']!r}")
        net = net_from_json(meta["net"])
    except (ValueError, TypeError) as e:
        name = getattr(e, "unregistered", None)
        if name:
            bad = _Bad(f"load: {path!r} holds a net with your own class {name!r}, which this program has "
                       f"not registered: call fnnet.checkpoint.register({name.rsplit('.', 1)[-1]}) before "
                       f"loading (load never imports code a file names)")
            bad.whole = True
            raise bad from None
        raise _Bad(f"invalid net description: {e}") from None
    epoch = meta.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise _Bad(f"epoch must be an integer >= 0 or null, got {epoch!r}")
    return net, epoch


def _templates(path, meta, net, optimizer):
    """[(key, prefix, template, layered, what)]: the trees the net implies for each saved group.

    params always; opt_state when saved and `optimizer` is given; layer state when saved."""
    dtype = np.dtype(jnp.dtype(meta["dtype"]))
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise TypeError(f"load: {path!r} holds {dtype} params, which need "
                        f"jax.config.update('jax_enable_x64', True) before loading "
                        f"(fnnet does not downcast silently)")
    params_t = params_template(net, dtype)
    groups = [("params", "", params_t, True, "param")]
    if meta.get("opt_state") is not None and optimizer is not None:
        groups.append(("opt_state", "opt_state", jax.eval_shape(optimizer.init, params_t), False, "opt_state"))
    if meta.get("state") is not None:
        try:
            groups.append(("state", "state", state_template(net, dtype), True, "state"))
        except TypeError as e:
            raise _Bad(f"it holds layer state but {e}") from None
    return groups


def _check_listed(meta, present):
    """The arrays the header lists are exactly the zip's arrays (besides the header)."""
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


def _read_groups(path, zf, meta, groups):
    """({key: tree}, {name: stored array}): each leaf read by the name, shape and dtype its
    template gives, finite (opt_state: no NaN), then put into the template's tree."""
    out, stored = {}, {}
    for key, prefix, template, layered, what in groups:
        expected = named_leaves(prefix, template, layered)
        want = [name for name, _ in expected]
        if meta[key] != want and key == "opt_state":
            bad = _Bad(f"restore: {path!r} was saved with another optimizer than the one given: its optimizer "
                       f"state holds {_fields(meta[key])}, while the optimizer given (state "
                       f"{_state_types(template)}) holds {_fields(want)}; restore(path, optimizer=) needs the "
                       f"optimizer the run was trained with")
            bad.whole = True
            raise bad
        if meta[key] != want:
            raise _Bad(f"header lists {what}s {meta[key]!r}, the net has {want}")
        leaves = []
        for name, t in expected:
            a = read_array(zf, name + ".npy", name, t.shape, storage(t.dtype))
            stored[name] = a
            a = a.view(t.dtype) if a.dtype != t.dtype else a
            bad = np.isnan(a) if key == "opt_state" else ~np.isfinite(a)
            if np.issubdtype(a.dtype, np.inexact) and bad.any():
                raise _Bad(f"array {name!r} ({key}) contains {int(bad.sum())} NaN/Inf "
                           f"value(s), first at index {tuple(int(j) for j in np.argwhere(bad)[0])}")
            leaves.append(jnp.asarray(a, t.dtype))
        out[key] = jax.tree.unflatten(jax.tree.structure(template), leaves)
    return out, stored


def _check_digest(zf, meta, version, out, stored):
    """Version 2 on: the digest over the header and every array, opt_state included even
    when it is not returned, must be the one save wrote."""
    if version >= 2:
        for key in ("opt_state",) if "opt_state" not in out else ():   # verified, even if not returned
            for name in meta[key] or ():
                stored[name] = read_array(zf, name + ".npy", name, None, None)
        if digest(meta, stored) != meta["digest"]:
            raise _Bad("its contents do not match the digest save wrote with them: the file was "
                       "modified after it was written (or corrupted)")


def _fields(names):
    """Optimizer-state array names -> their distinct fields: "count, mu, nu" (or "no arrays")."""
    fields = list(dict.fromkeys(n.split("/")[2] for n in names if n.count("/") >= 2))
    return ", ".join(fields) if fields else "no arrays (a stateless optimizer, such as plain optax.sgd)"


def _state_types(tree):
    """The optax state types of an optimizer state tree: "ScaleByAdamState, EmptyState"."""
    out = []

    def walk(t):
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            out.append(type(t).__name__)
        elif isinstance(t, (tuple, list)):
            for v in t:
                walk(v)
    walk(tree)
    return ", ".join(out) or type(tree).__name__


def read_checkpoint(path, optimizer):
    """The Checkpoint at `path` (opt_state rebuilt for `optimizer`, or None), or ValueError naming path."""
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
        except _Bad as e:       # `whole`: a message of its own (the file is fine; the caller is not)
            raise ValueError(str(e) if getattr(e, "whole", False) else f"{where}: {e}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError, KeyError,
                struct.error, NotImplementedError, OverflowError, UnicodeDecodeError, RuntimeError) as e:
            raise ValueError(f"{where} (truncated or corrupted?): {type(e).__name__}: {e}") from None
        except OSError as e:
            if e.errno != errno.EINVAL:   # a real I/O error stays an OSError
                raise
            # a corrupted zip directory can point zipfile at a negative offset
            raise ValueError(f"{where} (corrupted zip directory): {e}") from None
