"""Checkpoints: `save(path, net, params)` and `net, params = load(path)`.

The file is a plain NumPy .npz (a zip of .npy arrays) that never needs pickle:

    __fnnet__.npy    uint8 [n]: UTF-8 JSON {"format": "fnnet.checkpoint", "version": 1,
                     "dtype": "float32", "net": {...}, "params": ["layer0/w", ...]}
    layer0/w.npy     float [d_in, units]   one entry per params leaf, keyed
    layer0/b.npy     float [units]         "layer<i>/<field>"

The net is described in JSON, never pickled:

    {"layers": [{"type": "Dense", "units": 128, "w_init": "normal", "b_init": "zeros"},
                {"type": "LeakyRelu", "alpha": 0.01}, ...],
     "loss": "softmax_cross_entropy", "in_shape": [64], "l2": 0.0}

Any tool that reads .npz can read the weights (`np.load(path)["layer0/w"]`).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import secrets
import struct
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.layers import activations as _activations
from fnnet import initializers as _init
from fnnet import losses as _losses
from fnnet.layers.dense import Dense
from fnnet.network import Network, _check_params, _layout

FORMAT = "fnnet.checkpoint"
VERSION = 1
META = "__fnnet__"
_META_MAX_BYTES = 1 << 20          # the JSON of any sane net is a few kB
_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------
# the net <-> JSON schema: only fnnet's own layers and losses
# --------------------------------------------------------------------------

def _positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _initializer(v):
    return isinstance(v, str) and v in _init.INITIALIZERS


def _finite_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# type name -> (class, {field: (validator, what it must be)})
_LAYERS = {
    "Dense": (Dense, {"units": (_positive_int, "a positive int"),
                      "w_init": (_initializer, f"an initializer name {sorted(_init.INITIALIZERS)}"),
                      "b_init": (_initializer, f"an initializer name {sorted(_init.INITIALIZERS)}")}),
    "LeakyRelu": (_activations.LeakyRelu, {"alpha": (_finite_number, "a finite number")}),
    **{cls.__name__: (cls, {}) for cls in (_activations.Identity, _activations.Relu, _activations.Sigmoid,
                                            _activations.Tanh, _activations.Softmax)},
}
_LOSSES = {cls: name for name, cls in _losses.LOSSES.items()}

_HOW_TO_SAVE_OTHERS = ("fnnet checkpoints describe only fnnet's built-in layers and losses; save such a "
                       "net's params yourself, e.g. np.savez(path, **{jax.tree_util.keystr(p): np.asarray(a) "
                       "for p, a in jax.tree_util.tree_leaves_with_path(params)}), and rebuild the net in code")


def _layer_to_json(i, layer):
    entry = _LAYERS.get(type(layer).__name__)
    if entry is None or type(layer) is not entry[0]:
        raise TypeError(f"save: layer {i} ({layer!r}) is not one of fnnet's built-in layers "
                        f"{sorted(_LAYERS)}; {_HOW_TO_SAVE_OTHERS}")
    cls, schema = entry
    names = [f.name for f in dataclasses.fields(layer)]
    if sorted(names) != sorted(schema):   # a field this format version does not know: refuse to drop it
        raise TypeError(f"save: layer {i} ({layer!r}) has fields {names}, checkpoint format "
                        f"v{VERSION} knows {sorted(schema)}")
    out = {"type": cls.__name__}
    for name in names:
        value = getattr(layer, name)
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        ok, what = schema[name]
        if not ok(value):
            raise ValueError(f"save: layer {i} ({layer!r}): {name} must be {what}, got {value!r}")
        out[name] = value
    return out


def net_to_json(net: Network) -> dict:
    """The JSON-able description of a net built from fnnet's own layers and loss."""
    if not isinstance(net, Network):
        raise TypeError(f"save: net must be an fnnet.Network, got {type(net).__name__}")
    name = _LOSSES.get(type(net.loss))
    if name is None or dataclasses.fields(net.loss):
        raise TypeError(f"save: loss {net.loss!r} is not one of fnnet's built-in losses "
                        f"{sorted(_losses.LOSSES)}; {_HOW_TO_SAVE_OTHERS}")
    return {"layers": [_layer_to_json(i, layer) for i, layer in enumerate(net.layers)],
            "loss": name, "in_shape": list(net.in_shape), "l2": net.l2}


def _exact_keys(where, d, keys):
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(d).__name__}")
    missing, extra = sorted(set(keys) - set(d)), sorted(set(d) - set(keys))
    if missing or extra:
        raise ValueError(f"{where} must have exactly the fields {sorted(keys)}"
                         + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))


def net_from_json(d) -> Network:
    """Inverse of net_to_json; ValueError on anything outside the schema."""
    _exact_keys("net", d, ("layers", "loss", "in_shape", "l2"))
    if not isinstance(d["layers"], list):
        raise ValueError(f"net.layers must be a list, got {type(d['layers']).__name__}")
    layers = []
    for i, spec in enumerate(d["layers"]):
        where = f"net.layers[{i}]"
        if not isinstance(spec, dict) or spec.get("type") not in _LAYERS:
            got = spec.get("type") if isinstance(spec, dict) else spec
            raise ValueError(f"{where}: unknown layer type {got!r}; known: {sorted(_LAYERS)}")
        cls, schema = _LAYERS[spec["type"]]
        _exact_keys(f"{where} ({spec['type']})", spec, ("type", *schema))
        for name, (ok, what) in schema.items():
            if not ok(spec[name]):
                raise ValueError(f"{where} ({spec['type']}): {name} must be {what}, got {spec[name]!r}")
        layers.append(cls(**{name: spec[name] for name in schema}))
    if not isinstance(d["loss"], str) or d["loss"] not in _losses.LOSSES:
        raise ValueError(f"net.loss: unknown loss {d['loss']!r}; known: {sorted(_losses.LOSSES)}")
    in_shape = d["in_shape"]
    if not isinstance(in_shape, list) or not in_shape or not all(_positive_int(s) for s in in_shape):
        raise ValueError(f"net.in_shape must be a non-empty list of positive ints, got {in_shape!r}")
    if not (_finite_number(d["l2"]) and d["l2"] >= 0):
        raise ValueError(f"net.l2 must be a finite number >= 0, got {d['l2']!r}")
    net = Network(tuple(layers), _losses.get(d["loss"]), tuple(in_shape), float(d["l2"]))
    _layout(net)   # the layer chain must accept in_shape (ValueError naming the layer otherwise)
    return net


# --------------------------------------------------------------------------
# params <-> flat, path-keyed arrays
# --------------------------------------------------------------------------

def _leaf_name(i, path):
    parts = [f"layer{i}"]
    for k in path:
        if isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        else:
            parts.append(str(k))
    return "/".join(parts)


def _expected(net: Network):
    """[(name, shape)] in tree order and the per-layer treedefs, from the net alone."""
    names, treedefs = [], []
    for i, (_, expected, _) in enumerate(_layout(net)):
        treedefs.append(jax.tree.structure(expected))
        for path, leaf in jax.tree_util.tree_leaves_with_path(expected):
            names.append((i, _leaf_name(i, path), tuple(leaf.shape)))
    return names, treedefs


# --------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------

def save(path, net: Network, params) -> None:
    """Write `net` and `params` to the checkpoint file `path` (str or os.PathLike).

    The file is written exactly at `path`: no ".npz" is appended (pick the name you
    want, "model.npz" by convention). The write is atomic: the data goes to a
    temporary file in the same directory, is flushed and fsync'ed, and only then
    renamed over `path`; a crash or an error midway leaves an existing checkpoint
    at `path` untouched and removes the temporary file.

    params: the tree `fnnet.init(net, key, dtype)` builds, float32 or float64 leaves,
    all finite. Only nets made of fnnet's built-in layers and losses can be saved
    (TypeError naming the layer otherwise): for a net with your own layer, save its
    params through numpy yourself, e.g.
    `np.savez(f, **{jax.tree_util.keystr(p): np.asarray(a) for p, a in
    jax.tree_util.tree_leaves_with_path(params)})`, and rebuild the net in code.
    """
    path = os.fspath(path)
    desc = net_to_json(net)
    dtype = _check_params(net, params)
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(jnp.zeros(()).dtype)
    if dtype.name not in _DTYPES:
        raise TypeError(f"save: params must be float32 or float64, got {dtype}")
    names, _ = _expected(net)
    arrays = {}
    for (i, name, _), leaf in zip(names, jax.tree.leaves(params)):
        a = np.asarray(jax.device_get(leaf))
        if not np.isfinite(a).all():
            raise ValueError(f"save: layer {i} ({net.layers[i]}): {name} contains "
                             f"{int((~np.isfinite(a)).sum())} NaN/Inf value(s); refusing to write a "
                             f"checkpoint that cannot be loaded")
        arrays[name] = a
    meta = {"format": FORMAT, "version": VERSION, "dtype": dtype.name, "net": desc, "params": list(arrays)}
    try:
        text = json.dumps(meta, allow_nan=False, sort_keys=True)
    except ValueError as e:
        raise ValueError(f"save: the net's description is not valid JSON: {e}") from e
    arrays[META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _atomic_write(path, arrays)


def _atomic_write(path, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the permissions, as a plain open() would
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)    # a file object: numpy appends no ".npz"
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:   # make the rename itself durable (POSIX); not possible everywhere
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------

class _Bad(Exception):
    """Internal: what is wrong with the file, turned into ValueError(path: ...)."""


def _read_header(zf, member):
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
        raise _Bad(f"entry {member!r} uses .npy format version {version}, expected 1.0 or 2.0")


def _read_array(zf, member, name, shape, dtype, max_bytes=None):
    """Check the .npy header first (no huge allocations, no object arrays), then read."""
    got_shape, fortran, got_dtype = _read_header(zf, member)
    if got_dtype.hasobject:
        raise _Bad(f"array {name!r} has dtype {got_dtype} (Python objects, which would need pickle); "
                   f"fnnet checkpoints hold only numbers")
    if got_dtype != dtype:
        raise _Bad(f"array {name!r} has dtype {got_dtype}, expected {dtype}")
    if shape is not None and tuple(got_shape) != tuple(shape):
        raise _Bad(f"array {name!r} has shape {tuple(got_shape)}, the net needs {tuple(shape)}")
    if len(got_shape) != 1 and shape is None:
        raise _Bad(f"array {name!r} must be 1-D, got shape {tuple(got_shape)}")
    if max_bytes is not None and math.prod(got_shape) * got_dtype.itemsize > max_bytes:
        raise _Bad(f"array {name!r} is larger than {max_bytes} bytes")
    with zf.open(member) as f:
        a = np.lib.format.read_array(f, allow_pickle=False)
        if f.read(1):
            raise _Bad(f"entry {member!r} has bytes after its array data")
    return a


def _load(path, zf):
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
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        hint = " (written by a newer fnnet?)" if isinstance(version, int) and version > VERSION else ""
        raise _Bad(f"checkpoint format version {version!r}{hint}; this fnnet reads version {VERSION}")
    try:
        _exact_keys("checkpoint header", meta, ("format", "version", "dtype", "net", "params"))
        if meta["dtype"] not in _DTYPES:
            raise ValueError(f"params dtype must be one of {list(_DTYPES)}, got {meta['dtype']!r}")
        net = net_from_json(meta["net"])
    except (ValueError, TypeError) as e:
        raise _Bad(f"invalid net description: {e}") from None

    dtype = np.dtype(meta["dtype"])
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise TypeError(f"load: {path!r} holds {dtype} params, which need "
                        f"jax.config.update('jax_enable_x64', True) before loading "
                        f"(fnnet does not downcast silently)")
    expected, treedefs = _expected(net)
    want = [name for _, name, _ in expected]
    if meta["params"] != want:
        raise _Bad(f"header lists params {meta['params']!r}, the net has {want}")
    missing = [n for n in want if n not in present]
    if missing:
        raise _Bad(f"missing param array(s) {missing}")
    extra = sorted(present - set(want) - {META})
    if extra:
        raise _Bad(f"unexpected array(s) {extra} (the net has {want})")

    leaves = []
    for i, name, shape in expected:
        a = _read_array(zf, name + ".npy", name, shape, dtype)
        bad = ~np.isfinite(a)
        if bad.any():
            raise _Bad(f"array {name!r} (layer {i}, {net.layers[i]}) contains {int(bad.sum())} NaN/Inf "
                       f"value(s), first at index {tuple(int(j) for j in np.argwhere(bad)[0])}")
        leaves.append(jnp.asarray(a, dtype))
    params, k = [], 0
    for treedef in treedefs:
        params.append(jax.tree.unflatten(treedef, leaves[k:k + treedef.num_leaves]))
        k += treedef.num_leaves
    params = tuple(params)
    try:
        _check_params(net, params)     # fnnet's own check, the last word
    except (ValueError, TypeError) as e:
        raise _Bad(str(e)) from None
    return net, params


def load(path):
    """Read a checkpoint written by `save`: returns `(net, params)`.

    `path` (str or os.PathLike) is read exactly as given, no ".npz" is appended.
    params come back as jax arrays in the saved dtype; float64 checkpoints need
    jax_enable_x64 (TypeError otherwise, never a silent downcast).
    Nothing is unpickled. Everything is validated: the format tag and version,
    the net's JSON against the schema of fnnet's built-in layers and losses, and
    every params leaf (present, no extras, the shape and dtype that `fnnet.init`
    would build, finite). A truncated, foreign or tampered file raises ValueError
    naming `path` and what is wrong.
    """
    path = os.fspath(path)
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
                return _load(path, zf)
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
