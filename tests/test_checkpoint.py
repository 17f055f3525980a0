"""Checkpoints: exact round trips, atomic writes, and a clear ValueError for every bad file."""
import dataclasses
import io
import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import checkpoint as _checkpoint
from fnnet.checkpoint import load, save

# Shapes are shared (3 inputs, 4 hidden, 2 outputs) so eager ops compile once for the file.
NETS = {
    "sigmoid_normal": lambda: fnnet.mlp([3, 4, 4, 2], activation="sigmoid",
                                        loss="softmax_cross_entropy", w_init="normal"),
    "leaky_l2": lambda: fnnet.Network(
        (fnnet.Dense(4, w_init="he_normal", b_init="normal"), fnnet.LeakyRelu(0.2),
         fnnet.Dense(2), fnnet.Identity()), "softmax_cross_entropy", (3,), l2=0.01),
    "tanh_mse": lambda: fnnet.mlp([3, 4, 2], activation="tanh", output="tanh", loss="mse",
                                  w_init="normal", b_init="normal"),
    "relu_softmax_halfsse": lambda: fnnet.Network(
        (fnnet.Dense(4), fnnet.Relu(), fnnet.Dense(2), fnnet.Softmax()), "half_sse", (3,), 0.5),
    "sigmoid_bce": lambda: fnnet.mlp([3, 4, 2], activation="relu", loss="sigmoid_binary_cross_entropy",
                                     l2=1e-3),
}


def tiny():
    net = fnnet.mlp([3, 4, 2], activation="leaky_relu", loss="softmax_cross_entropy", l2=0.1)
    return net, fnnet.init(net, jax.random.key(1))


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return (jax.tree.structure(a) == jax.tree.structure(b) and len(la) == len(lb)
            and all(x.dtype == y.dtype and x.shape == y.shape and bool((x == y).all()) for x, y in zip(la, lb)))


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", sorted(NETS))
def test_round_trip_is_exact(tmp_path, name, dtype):
    net = NETS[name]()
    params = fnnet.init(net, jax.random.key(7), dtype)
    path = tmp_path / "model.npz"
    save(path, net, params)
    net2, params2 = load(path)
    assert net2 == net and hash(net2) == hash(net)
    assert leaves_equal(params2, params)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(params2))
    x = jax.random.uniform(jax.random.key(2), (5, *net.in_shape), dtype)
    np.testing.assert_array_equal(fnnet.predict(net2, params2, x), fnnet.predict(net, params, x))


def test_trained_like_params_and_loss_survive(tmp_path):
    net, params = tiny()
    params = jax.tree.map(lambda a: a * 3.7 + 0.1, params)   # not what init would draw
    save(tmp_path / "m.npz", net, params)
    net2, params2 = load(tmp_path / "m.npz")
    x = jax.random.normal(jax.random.key(0), (6, 3), jnp.float32)
    y = jnp.array([0, 1, 1, 0, 1, 0])
    assert float(fnnet.loss(net2, params2, x, y)) == float(fnnet.loss(net, params, x, y))


def test_file_is_plain_npz_with_path_keys_and_json(tmp_path):
    net, params = tiny()
    save(tmp_path / "m.npz", net, params)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["__fnnet__", "layer0/b", "layer0/w", "layer2/b", "layer2/w"]
        np.testing.assert_array_equal(z["layer2/w"], params[2].w)
        meta = json.loads(z["__fnnet__"].tobytes().decode())
    assert meta["format"] == "fnnet.checkpoint" and meta["version"] == 2 and meta["dtype"] == "float32"
    assert meta["net"] == {
        "layers": [{"type": "Dense", "units": 4, "w_init": "he_normal", "b_init": "zeros", "matmul_dtype": None},
                   {"type": "LeakyRelu", "alpha": 0.01},
                   {"type": "Dense", "units": 2, "w_init": "he_normal", "b_init": "zeros", "matmul_dtype": None}],
        "loss": "softmax_cross_entropy", "in_shape": [3], "l2": 0.1}


@pytest.mark.parametrize("kind", ["str", "path", "pathlike", "no_suffix"])
def test_path_types_and_exact_name(tmp_path, kind):
    net, params = tiny()
    target = tmp_path / ("model" if kind == "no_suffix" else "model.npz")

    class PathLike:
        def __fspath__(self):
            return str(target)
    p = {"str": str(target), "path": target, "pathlike": PathLike(), "no_suffix": target}[kind]
    save(p, net, params)
    assert sorted(os.listdir(tmp_path)) == [target.name]      # written exactly there, nothing appended
    assert leaves_equal(load(p)[1], params)


def test_missing_file_hints_at_suffix(tmp_path):
    net, params = tiny()
    save(tmp_path / "model.npz", net, params)
    with pytest.raises(FileNotFoundError, match=r"model\.npz.*exists"):
        load(tmp_path / "model")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.npz")


# ---------------------------------------------------------------- overwrite and atomicity

def test_overwrite_keeps_only_new_content(tmp_path):
    path = tmp_path / "m.npz"
    big = fnnet.mlp([3, 4, 4, 4, 2], loss="softmax_cross_entropy")
    save(path, big, fnnet.init(big, jax.random.key(0)))
    net, params = tiny()
    save(path, net, params)
    net2, params2 = load(path)
    assert net2 == net and leaves_equal(params2, params)
    with np.load(path) as z:
        assert "layer6/w" not in z.files
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_old_file_intact_and_no_temp(tmp_path, monkeypatch, exc):
    path = tmp_path / "m.npz"
    net, params = tiny()
    save(path, net, params)
    before = path.read_bytes()

    def half_then_fail(f, **arrays):
        f.write(before[: len(before) // 2])   # part of a plausible file, then the crash
        raise exc
    monkeypatch.setattr(np, "savez", half_then_fail)
    other = jax.tree.map(lambda a: a + 1, params)
    with pytest.raises(type(exc)):
        save(path, net, other)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]
    assert leaves_equal(load(path)[1], params)


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("boom")
    monkeypatch.setattr(np, "savez", fail)
    net, params = tiny()
    with pytest.raises(OSError, match="boom"):
        save(tmp_path / "m.npz", net, params)
    assert os.listdir(tmp_path) == []


def test_permissions_follow_umask(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        save(tmp_path / "m.npz", *tiny())
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "m.npz").st_mode & 0o777) == 0o644


# ---------------------------------------------------------------- what save refuses

@dataclasses.dataclass(frozen=True)
class MyScale:
    """A user's own layer: y = 2x."""
    def init(self, key, in_shape):
        return (), tuple(in_shape)

    def forward(self, params, x):
        return 2 * x, None

    def backward(self, params, cache, dy):
        return (), 2 * dy


def test_user_layer_is_a_type_error_naming_it(tmp_path):
    net = fnnet.Network((fnnet.Dense(3), MyScale()), "mse", (2,))
    params = fnnet.init(net, jax.random.key(0))
    with pytest.raises(TypeError, match=r"layer 1 \(MyScale\(\)\).*built-in.*np\.savez"):
        save(tmp_path / "m.npz", net, params)
    assert os.listdir(tmp_path) == []


def test_user_subclass_of_builtin_layer_and_user_loss_are_refused(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class MyDense(fnnet.Dense):
        pass

    @dataclasses.dataclass(frozen=True)
    class MyMSE(fnnet.MSE):
        pass
    net = fnnet.Network((MyDense(2),), "mse", (2,))
    with pytest.raises(TypeError, match="MyDense"):
        save(tmp_path / "m.npz", net, fnnet.init(net, jax.random.key(0)))
    net = fnnet.Network((fnnet.Dense(2),), MyMSE(), (2,))
    with pytest.raises(TypeError, match="loss.*built-in"):
        save(tmp_path / "m.npz", net, fnnet.init(net, jax.random.key(0)))


def test_bad_params_are_refused(tmp_path):
    net, params = tiny()
    with pytest.raises(ValueError, match=r"layer 2.*shape"):
        save(tmp_path / "m.npz", net, (params[0], (), fnnet.DenseParams(params[0].w, params[2].b)))
    nan = (params[0]._replace(b=params[0].b.at[1].set(jnp.nan)), (), params[2])
    with pytest.raises(ValueError, match=r"layer0/b.*NaN"):
        save(tmp_path / "m.npz", net, nan)
    with pytest.raises(TypeError, match="Network"):
        save(tmp_path / "m.npz", "not a net", params)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- what load refuses

def saved(tmp_path, dtype=jnp.float32):
    net, _ = tiny()
    params = fnnet.init(net, jax.random.key(1), dtype)
    path = tmp_path / "m.npz"
    save(path, net, params)
    return path, net, params


def rewrite(path, edit):
    """Rebuild the npz with `edit(arrays)` applied: a well-formed zip with tampered content."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def edit_meta(fn):
    def edit(arrays):
        meta = json.loads(arrays["__fnnet__"].tobytes().decode())
        fn(meta)
        arrays["__fnnet__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    return edit


def bad(path, *patterns):
    with pytest.raises(ValueError) as info:
        load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for p in patterns:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


@pytest.mark.parametrize("frac", [0.0, 0.001, 0.1, 0.5, 0.9, 0.99])
def test_truncated(tmp_path, frac):
    path, _, _ = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * frac)])
    bad(path, "not a valid fnnet checkpoint")


def test_truncated_at_every_length_and_flipped_bytes_never_escape(tmp_path):
    """Prefixes and single-byte corruptions all over the file: ValueError, or (header bytes the zip
    does not checksum, e.g. timestamps) a load that gives back exactly the saved data."""
    path, net, params = saved(tmp_path)
    data = path.read_bytes()
    for n in [*range(0, len(data) - 64, 5), *range(len(data) - 64, len(data))]:
        path.write_bytes(data[:n])
        with pytest.raises(ValueError):
            load(path)
    for i in range(0, len(data), 4):
        b = bytearray(data)
        b[i] ^= 0x5A
        path.write_bytes(bytes(b))
        try:
            net2, params2 = load(path)
        except ValueError:
            continue
        assert net2 == net and leaves_equal(params2, params), f"byte {i} changed the content silently"


@pytest.mark.parametrize("content,what", [
    (b"", "empty"),
    (os.urandom(300).replace(b"PK", b"pk"), "not an .npz"),
    (b"w1,w2\n0.5,0.1\n", "not an .npz"),
    (b"PK\x03\x04" + bytes(200), "truncated or corrupted"),
])
def test_foreign_bytes(tmp_path, content, what):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    bad(path, what)


def test_single_npy_file(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    bad(path, "single .npy array")


def test_foreign_npz(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        np.savez(f, w=np.zeros((3, 4)), b=np.zeros(4))
    bad(path, "no '__fnnet__' entry")


def test_foreign_zip(tmp_path):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    bad(path, "readme.txt", "not .npy")


@pytest.mark.parametrize("fn,patterns", [
    (lambda m: m.update(format="somebody.else"), ["format tag", "somebody.else"]),
    (lambda m: m.update(version=3), ["version 3", "newer"]),
    (lambda m: m.update(version="1"), ["version '1'"]),
    (lambda m: m.update(dtype="float16"), ["float16"]),
    (lambda m: m.update(extra=1), ["unexpected ['extra']"]),
    (lambda m: m.pop("params"), ["missing ['params']"]),
    (lambda m: m["net"]["layers"][1].update(type="Swish"), ["unknown layer type 'Swish'"]),
    (lambda m: m["net"]["layers"][1].update(beta=2.0), ["layers[1]", "unexpected ['beta']"]),
    (lambda m: m["net"]["layers"][0].pop("w_init"), ["layers[0]", "missing ['w_init']"]),
    (lambda m: m["net"]["layers"][0].update(units=5), ["shape", "(3, 5)", "(3, 4)"]),
    (lambda m: m["net"]["layers"][0].update(units="4"), ["units must be an int >= 1"]),
    (lambda m: m["net"]["layers"][0].update(w_init="magic"), ["w_init", "'magic'"]),
    (lambda m: m["net"]["layers"][1].update(alpha=True), ["alpha must be a finite number"]),
    (lambda m: m["net"].update(loss="hinge"), ["unknown loss 'hinge'"]),
    (lambda m: m["net"].update(in_shape=[3, 0]), ["in_shape"]),
    (lambda m: m["net"].update(l2=-1), ["l2"]),
    (lambda m: m["net"].update(layers="Dense"), ["layers must be a list"]),
    (lambda m: m["net"]["layers"].append({"type": "Dense", "units": 2, "w_init": "zeros",
                                          "b_init": "zeros", "matmul_dtype": None}), ["header lists params"]),
    (lambda m: m["net"]["layers"].insert(0, {"type": "Dense", "units": 4, "w_init": "zeros",
                                             "b_init": "zeros", "matmul_dtype": None}), ["header lists params"]),
])
def test_tampered_json(tmp_path, fn, patterns):
    path, _, _ = saved(tmp_path)
    rewrite(path, edit_meta(fn))
    bad(path, *patterns)


def test_meta_not_json(tmp_path):
    path, _, _ = saved(tmp_path)
    rewrite(path, lambda a: a.update(__fnnet__=np.frombuffer(b"{not json", np.uint8)))
    bad(path, "not UTF-8 JSON")
    rewrite(path, lambda a: a.update(__fnnet__=np.array([1.0, 2.0])))
    bad(path, "'__fnnet__'", "dtype float64", "uint8")


def test_wrong_shape(tmp_path):
    path, _, _ = saved(tmp_path)
    rewrite(path, lambda a: a.update({"layer0/w": np.zeros((4, 3), np.float32)}))
    bad(path, "'layer0/w'", "shape (4, 3)", "(3, 4)")


def test_wrong_dtype(tmp_path):
    path, _, _ = saved(tmp_path)
    rewrite(path, lambda a: a.update({"layer2/b": np.zeros(2, np.float64)}))
    bad(path, "'layer2/b'", "float64", "float32")


def test_extra_and_missing_arrays(tmp_path):
    path, _, _ = saved(tmp_path)
    rewrite(path, lambda a: a.update(bonus=np.zeros(1, np.float32)))
    bad(path, "unexpected array(s) ['bonus']")
    path, _, _ = saved(tmp_path)
    rewrite(path, lambda a: a.pop("layer2/w"))
    bad(path, "missing param array(s) ['layer2/w']")


def test_non_finite_values(tmp_path):
    path, _, params = saved(tmp_path)
    w = np.array(params[2].w)
    w[1, 0] = np.inf
    rewrite(path, lambda a: a.update({"layer2/w": w}))
    bad(path, "'layer2/w'", "NaN/Inf", "(1, 0)")


def test_object_array_is_refused_without_unpickling(tmp_path, monkeypatch):
    path, _, _ = saved(tmp_path)
    obj = np.empty((3, 4), dtype=object)
    obj[...] = 0.5
    rewrite(path, lambda a: a.update({"layer0/w": obj}))

    def no_pickle(*a, **k):
        raise AssertionError("load must never unpickle")
    import pickle
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    bad(path, "'layer0/w'", "object", "pickle")


def test_trailing_bytes_in_an_entry(tmp_path):
    path, _, params = saved(tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    with zipfile.ZipFile(path, "w") as zf:
        for k, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, a)
            zf.writestr(k + ".npy", buf.getvalue() + (b"junk" if k == "layer0/b" else b""))
    bad(path, "layer0/b.npy", "after its array data")


def test_float64_needs_x64(tmp_path):
    path, _, _ = saved(tmp_path, jnp.float64)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(TypeError, match="float64.*jax_enable_x64"):
            load(path)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert load(path)[1][0].w.dtype == jnp.float64


def test_public_names():
    assert fnnet.save is save and fnnet.load is load
    assert "save" in fnnet.__all__ and "load" in fnnet.__all__
    assert _checkpoint.FORMAT == "fnnet.checkpoint"
