"""Nets as JSON for checkpoints: any fnnet layer or loss, found by class name, no pickle.

    {"layers": [{"type": "Dense", "units": 128, "w_init": "normal", "b_init": "zeros"},
                {"type": "Residual", "block": [{"type": "Dense", ...}, {"type": "Relu"}]}],
     "loss": "softmax_cross_entropy", "in_shape": [64], "l2": 0.0}

Which classes: every public frozen dataclass with init/forward/backward (a layer) or
value/grad (a loss) defined in a module of `fnnet.layers` or `fnnet.models`, or in
`fnnet.losses` or `fnnet.losses_seq`: a new fnnet layer saves without editing this
file. A user's own class only by explicit opt-in, `fnnet.checkpoint.register(MyLayer)` (under its
"module.QualName"), and only while registered: load never imports anything named by
a file. Field values: None, bool, int, finite float, str, tuples (JSON lists), and
registered layers or losses (JSON objects with "type"), nested to any depth.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil

import numpy as np

from fnnet import losses as _losses
from fnnet.contracts import layout
from fnnet.network import Network

_USER = {}          # "module.QualName" -> class, filled by register()
_BUILTIN = None     # name -> class, or None where two fnnet classes share a name
_SCALARS = {"int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an int"),
            "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v), "a finite number"),
            "str": (lambda v: isinstance(v, str), "a string"),
            "bool": (lambda v: isinstance(v, bool), "a bool")}
_LAYER_PACKAGES = ("fnnet.layers", "fnnet.models")     # every public module of each
_LOSS_MODULES = ("fnnet.losses", "fnnet.losses_seq")


def _kind(cls):
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return None
    if all(callable(getattr(cls, m, None)) for m in ("init", "forward", "backward")):
        return "layer"
    if all(callable(getattr(cls, m, None)) for m in ("value", "grad")):
        return "loss"
    return None


def builtin():
    """{class name: class} of fnnet's own layers and losses (found once, lazily).

    Found in every public module of the packages `fnnet.layers` and `fnnet.models` and in
    the modules `fnnet.losses` and `fnnet.losses_seq`, never through the top-level `fnnet`
    (which imports this package)."""
    global _BUILTIN
    if _BUILTIN is None:
        modules = [importlib.import_module(name) for name in _LOSS_MODULES]
        for package in map(importlib.import_module, _LAYER_PACKAGES):
            modules += [importlib.import_module(f"{package.__name__}.{m.name}")
                        for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
        found = {}
        for obj in [v for mod in modules for v in vars(mod).values()]:
            if _kind(obj) and obj.__module__.startswith("fnnet.") and not obj.__name__.startswith("_"):
                prior = found.get(obj.__name__, obj)
                found[obj.__name__] = obj if prior is obj else None     # ambiguous: refused
        _BUILTIN = found
    return _BUILTIN


def register(cls):
    """Opt a user's frozen-dataclass layer or loss into checkpoints; returns cls (a decorator).

    It is saved as "module.QualName" and can be loaded only where the same class is
    registered again (load never imports code named by a file)."""
    if _kind(cls) is None:
        raise TypeError(f"register: {cls!r} must be a dataclass with init/forward/backward (a layer) "
                        f"or value/grad (a loss)")
    if not cls.__dataclass_params__.frozen:
        raise TypeError(f"register: {cls.__name__} must be a frozen dataclass (layers are hashable)")
    _USER[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def type_name(obj):
    """The JSON "type" of a layer/loss object, or None when checkpoints cannot describe it."""
    cls = type(obj)
    if builtin().get(cls.__name__) is cls:
        return cls.__name__
    name = f"{cls.__module__}.{cls.__qualname__}"
    return name if _USER.get(name) is cls else None


def lookup(name):
    return builtin().get(name) or _USER.get(name)


def encode(value, where):
    """A field value -> JSON; TypeError naming `where` for anything outside the schema."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"save: {where} is {value!r}; checkpoints hold finite numbers only")
        return value
    if isinstance(value, (tuple, list)):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if _kind(type(value)):
        name = type_name(value)
        if name is None:
            raise TypeError(f"save: {where} ({value!r}) is not one of fnnet's built-in layers or losses "
                            f"and is not registered with fnnet.checkpoint.register")
        out = {"type": name}
        for f in dataclasses.fields(value):
            if f.init:
                out[f.name] = encode(getattr(value, f.name), f"{where}.{f.name}")
        return out
    raise TypeError(f"save: {where} is a {type(value).__name__} ({value!r}); checkpoints describe "
                    f"fields that are None, bool, int, float, str, tuples or layers")


def decode(d, where):
    """Inverse of encode: lists become tuples, {"type": ...} objects become instances."""
    if isinstance(d, list):
        return tuple(decode(v, f"{where}[{i}]") for i, v in enumerate(d))
    if not isinstance(d, dict):
        return d
    name = d.get("type")
    cls = lookup(name) if isinstance(name, str) else None
    if cls is None:
        hint = (f" (a user class: call fnnet.checkpoint.register({name.rsplit('.', 1)[-1]}) before "
                f"loading)" if isinstance(name, str) and "." in name else "")
        err = ValueError(f"{where}: unknown layer type {name!r}{hint}; known: {sorted(builtin())}")
        err.unregistered = name if hint else None      # load says "register it", not "invalid file"
        raise err
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    missing = sorted(n for n in fields if n not in d)       # save writes every field
    extra = sorted(set(d) - set(fields) - {"type"})
    if missing or extra:
        raise ValueError(f"{where} ({name}) must have the fields {sorted(fields)}"
                         + (f"; missing {missing}" if missing else "")
                         + (f"; unexpected {extra}" if extra else ""))
    kwargs = {k: decode(v, f"{where}.{k}") for k, v in d.items() if k != "type"}
    try:
        obj = cls(**kwargs)             # the class's own validation speaks first ...
    except (ValueError, TypeError) as e:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ValueError(f"{where} ({name}): {name}({args}) is invalid: {e}") from None
    for k, v in kwargs.items():         # ... then the fields' declared scalar types
        check = _SCALARS.get(getattr(fields[k].type, "__name__", fields[k].type))
        if check and not check[0](v):
            raise ValueError(f"{where} ({name}): {k} must be {check[1]}, got {v!r}")
    return obj


_HOW_TO_SAVE_OTHERS = ("fnnet checkpoints describe fnnet's built-in layers and losses; register your own "
                       "frozen-dataclass class with fnnet.checkpoint.register(cls), or save such a "
                       "net's params yourself, e.g. np.savez(path, **{jax.tree_util.keystr(p): np.asarray(a) "
                       "for p, a in jax.tree_util.tree_leaves_with_path(params)}), and rebuild the net in code")


# ---------------------------------------------------------------- the net <-> JSON

def net_to_json(net: Network) -> dict:
    """The JSON-able description of a net (TypeError naming what cannot be described)."""
    if not isinstance(net, Network):
        raise TypeError(f"save: net must be an fnnet.Network, got {type(net).__name__}")
    layers = []
    for i, layer in enumerate(net.layers):
        if type_name(layer) is None:
            raise TypeError(f"save: layer {i} ({layer!r}) is not one of fnnet's built-in layers; "
                            f"{_HOW_TO_SAVE_OTHERS}")
        layers.append(encode(layer, f"layer {i} ({layer})"))
    name = {cls: n for n, cls in _losses.LOSSES.items()}.get(type(net.loss))
    if name is not None and not [f for f in _dataclass_fields(net.loss)]:
        loss = name                                          # the v1 form: a plain name
    elif type_name(net.loss) is not None:
        loss = encode(net.loss, f"loss {net.loss}")
    else:
        raise TypeError(f"save: loss {net.loss!r} is not one of fnnet's built-in losses "
                        f"{sorted(_losses.LOSSES)}; {_HOW_TO_SAVE_OTHERS}")
    out = {"layers": layers, "loss": loss, "in_shape": list(net.in_shape), "l2": net.l2}
    for f in _dataclass_fields(net):                          # fields Network may gain later
        if f.name not in out:
            out[f.name] = encode(getattr(net, f.name), f"net.{f.name}")
    return out


def _dataclass_fields(obj):
    import dataclasses
    return [f for f in dataclasses.fields(obj) if f.init] if dataclasses.is_dataclass(obj) else []


def exact_keys(where, d, keys):
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(d).__name__}")
    missing, extra = sorted(set(keys) - set(d)), sorted(set(d) - set(keys))
    if missing or extra:
        raise ValueError(f"{where} must have exactly the fields {sorted(keys)}"
                         + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))


def net_from_json(d) -> Network:
    """Inverse of net_to_json; ValueError on anything outside the schema."""
    exact_keys("net", d, [f.name for f in _dataclass_fields(Network)])
    if not isinstance(d["layers"], list):
        raise ValueError(f"net.layers must be a list, got {type(d['layers']).__name__}")
    layers = []
    for i, spec in enumerate(d["layers"]):
        layer = decode(spec, f"net.layers[{i}]") if isinstance(spec, dict) else None
        if _kind(type(layer)) != "layer":
            raise ValueError(f"net.layers[{i}]: unknown layer type {spec!r}")
        layers.append(layer)
    if isinstance(d["loss"], str):
        if d["loss"] not in _losses.LOSSES:
            raise ValueError(f"net.loss: unknown loss {d['loss']!r}; known: {sorted(_losses.LOSSES)}")
        loss = _losses.get(d["loss"])
    else:
        loss = decode(d["loss"], "net.loss") if isinstance(d["loss"], dict) else None
        if _kind(type(loss)) != "loss":
            raise ValueError(f"net.loss: unknown loss {d['loss']!r}; known: {sorted(_losses.LOSSES)}")
    in_shape = d["in_shape"]
    if not isinstance(in_shape, list) or not in_shape or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in in_shape):
        raise ValueError(f"net.in_shape must be a non-empty list of positive ints, got {in_shape!r}")
    l2 = d["l2"]
    if not (isinstance(l2, (int, float)) and not isinstance(l2, bool) and math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"net.l2 must be a finite number >= 0, got {l2!r}")
    rest = {k: decode(v, f"net.{k}") for k, v in d.items()
            if k not in ("layers", "loss", "in_shape", "l2")}
    net = Network(tuple(layers), loss, tuple(in_shape), float(l2), **rest)
    layout(net)   # the layer chain must accept in_shape (ValueError naming the layer otherwise)
    return net
