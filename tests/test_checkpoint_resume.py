"""Checkpoints, version 2: opt_state and epoch for resuming (item 6), generic layer
serialization, a digest that catches any modification and low-precision params
(item 10), temporary files that never outlive a save (item 9)."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from fnnet.checkpoint import netjson
from helpers import assert_trees_close

KEY = jax.random.key(5)
ADAM, SGD = optax.adam(0.05), optax.sgd(0.2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _problem(dtype=np.float64):
    rs = np.random.RandomState(2)
    x, y = rs.normal(size=(10, 3)).astype(dtype), rs.randint(0, 3, size=10).astype(np.int32)
    net = fnnet.mlp([3, 5, 3], activation="tanh", loss="softmax_cross_entropy", l2=0.01)
    return net, fnnet.init(net, jax.random.key(1), dtype), x, y


@pytest.mark.parametrize("name,opt,batch,key", [("sgd", SGD, None, None), ("adam", ADAM, None, None),
                                                ("adam-minibatch", ADAM, 4, KEY)])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, name, opt, batch, key):
    net, p0, x, y = _problem()
    kw = dict(optimizer=opt, batch_size=batch, key=key)
    p_all, h_all, s_all, *_ = fnnet.fit(net, p0, x, y, epochs=5, opt_state=opt.init(p0), **kw)
    p1, h1, s1, *_ = fnnet.fit(net, p0, x, y, epochs=2, opt_state=opt.init(p0), **kw)
    fnnet.save(tmp_path / "m.npz", net, p1, opt_state=s1, epoch=2)
    c = fnnet.restore(tmp_path / "m.npz", optimizer=opt)
    assert c.net == net and c.epoch == 2 and c.state is None
    p2, h2, s2, *_ = fnnet.fit(c.net, c.params, x, y, epochs=3, opt_state=c.opt_state, initial_epoch=c.epoch, **kw)
    assert_trees_close(p2, p_all, 0.0, "params")
    assert_trees_close(s2, s_all, 0.0, "opt_state")
    np.testing.assert_array_equal(np.concatenate([h1.loss, h2.loss]), h_all.loss)


def test_opt_state_needs_the_same_optimizer_and_is_optional(tmp_path):
    net, p0, _, _ = _problem()
    fnnet.save(tmp_path / "m.npz", net, p0, opt_state=ADAM.init(p0), epoch=0)
    with pytest.raises(ValueError, match=r"^restore: '.*m.npz' was saved with another optimizer than the one "
                                         r"given: its optimizer state holds count, mu, nu, while the optimizer "
                                         r"given \(state TraceState, EmptyState\) holds trace"):
        fnnet.restore(tmp_path / "m.npz", optimizer=optax.sgd(0.1, momentum=0.9))
    c = fnnet.restore(tmp_path / "m.npz")                 # no optimizer: params only
    assert c.opt_state is None and c.epoch == 0
    net2, params2 = fnnet.load(tmp_path / "m.npz")
    assert_trees_close(params2, p0, 0.0, "params")
    with pytest.raises(ValueError, match=r"epoch must be an integer >= 0"):
        fnnet.save(tmp_path / "m.npz", net, p0, epoch=-1)


# ----------------------------------------------------------------- the digest (item 10)

def _edit_meta(path, fn):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__fnnet__"].tobytes().decode())
    fn(meta, arrays)
    arrays["__fnnet__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("edit", [
    lambda m, a: m["net"].update(loss="mse"),                                     # the two
    lambda m, a: m["net"]["layers"].__setitem__(1, {"type": "LeakyRelu", "alpha": 0.5}),
    lambda m, a: m.update(epoch=7),
    lambda m, a: a.__setitem__("layer0/w", a["layer0/w"] + np.float32(1e-6)),     # finite, right shape
    lambda m, a: a.__setitem__("opt_state/0/mu/2/b", a["opt_state/0/mu/2/b"] * np.float32(1.001)),
])
def test_any_modification_is_detected(tmp_path, edit):
    net = fnnet.mlp([3, 4, 2], activation="relu", loss="softmax_cross_entropy")
    params = fnnet.init(net, jax.random.key(0))
    adam = optax.adam(1e-3)
    state = jax.tree.map(lambda a: a + 0.5 if a.dtype == jnp.float32 else a, adam.init(params))
    fnnet.save(tmp_path / "m.npz", net, params, opt_state=state, epoch=3)
    _edit_meta(tmp_path / "m.npz", edit)
    with pytest.raises(ValueError, match=r"m\.npz.*do not match the digest"):
        fnnet.restore(tmp_path / "m.npz", optimizer=adam)
    with pytest.raises(ValueError, match=r"do not match the digest"):
        fnnet.load(tmp_path / "m.npz")                 # opt_state is checked even when not read


def test_version_1_files_still_load(tmp_path):
    net = fnnet.mlp([3, 4, 2], activation="relu", loss="mse")
    params = fnnet.init(net, jax.random.key(0))
    fnnet.save(tmp_path / "m.npz", net, params)
    _edit_meta(tmp_path / "m.npz", lambda m, a: [m.update(version=1)] + [m.pop(k) for k in
                                                 ("opt_state", "state", "epoch", "digest")])
    net2, params2 = fnnet.load(tmp_path / "m.npz")
    assert net2 == net
    assert_trees_close(params2, params, 0.0, "params")


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_params_fit_save_and_load(tmp_path, dtype):
    net, p0, x, y = _problem(np.float32)
    p0 = jax.tree.map(lambda a: a.astype(dtype), p0)
    params, *_ = fnnet.fit(net, p0, x.astype(dtype), y, optimizer=SGD, epochs=2)
    fnnet.save(tmp_path / "m.npz", net, params)
    net2, params2 = fnnet.load(tmp_path / "m.npz")
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params2))
    assert_trees_close(jax.tree.map(lambda a: a.astype(np.float32), params2),
                       jax.tree.map(lambda a: a.astype(np.float32), params), 0.0, "params")


# ----------------------------------------------------------------- generic layers

@dataclasses.dataclass(frozen=True)
class Scaled:
    """A user's combinator: y = factor · block(x); holds a tuple of layers."""
    block: tuple
    factor: float = 2.0
    tag: str = "s"

    def init(self, key, in_shape):
        params = []
        for layer, k in zip(self.block, jax.random.split(key, len(self.block))):
            p, in_shape = layer.init(k, in_shape)
            params.append(p)
        return tuple(params), in_shape

    def forward(self, params, x):
        caches = []
        for layer, p in zip(self.block, params):
            x, c = layer.forward(p, x)
            caches.append(c)
        return self.factor * x, tuple(caches)

    def backward(self, params, caches, dy):
        d, grads = self.factor * dy, [None] * len(self.block)     # dL/d(block out) = factor · dL/dy
        for i in reversed(range(len(self.block))):
            grads[i], d = self.block[i].backward(params[i], caches[i], d)
        return tuple(grads), d


def test_user_combinator_saves_only_when_registered(tmp_path):
    net = fnnet.Network((Scaled((fnnet.Dense(4), fnnet.Tanh()), 0.5), fnnet.Dense(2)), "mse", (3,))
    params = fnnet.init(net, jax.random.key(3))
    with pytest.raises(TypeError, match=r"layer 0 \(Scaled.*fnnet\.checkpoint\.register"):
        fnnet.save(tmp_path / "m.npz", net, params)
    fnnet.checkpoint.register(Scaled)
    try:
        fnnet.save(tmp_path / "m.npz", net, params)
        with np.load(tmp_path / "m.npz") as z:
            assert "layer0/0/w" in z.files and "layer0/1" not in z.files
        net2, params2 = fnnet.load(tmp_path / "m.npz")
        assert net2 == net and isinstance(net2.layers[0].block, tuple)
        assert_trees_close(params2, params, 0.0, "params")
    finally:
        netjson._USER.clear()
    with pytest.raises(ValueError, match=r"^load: '.*m.npz' holds a net with your own class '.*Scaled', which "
                                         r"this program has not registered: call "
                                         r"fnnet.checkpoint.register\(Scaled\) before loading"):
        fnnet.load(tmp_path / "m.npz")


def test_a_new_fnnet_layer_module_is_found_without_editing_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "gadget.py").write_text(textwrap.dedent('''
        import dataclasses
        @dataclasses.dataclass(frozen=True)
        class Gadget:
            scale: float = 1.0
            def init(self, key, in_shape): return (), tuple(in_shape)
            def forward(self, params, x): return self.scale * x, None
            def backward(self, params, cache, dy): return (), self.scale * dy
    '''))
    import fnnet.layers
    monkeypatch.setattr(fnnet.layers, "__path__", list(fnnet.layers.__path__) + [str(tmp_path)])
    monkeypatch.setattr(netjson, "_BUILTIN", None)
    try:
        from fnnet.layers.gadget import Gadget
        net = fnnet.Network((fnnet.Dense(2), Gadget(3.0)), "mse", (3,))
        params = fnnet.init(net, jax.random.key(0))
        fnnet.save(tmp_path / "m.npz", net, params)
        assert fnnet.load(tmp_path / "m.npz")[0] == net
    finally:
        sys.modules.pop("fnnet.layers.gadget", None)


def test_field_values_outside_the_schema_are_refused(tmp_path):
    fnnet.checkpoint.register(Scaled)
    try:
        net = fnnet.Network((Scaled((fnnet.Dense(2),), float("inf")),), "mse", (3,))
        with pytest.raises(ValueError, match=r"factor is inf"):
            fnnet.save(tmp_path / "m.npz", net, fnnet.init(net, jax.random.key(0)))
        net = fnnet.Network((Scaled((fnnet.Dense(2),), 1.0, tag=b"x"),), "mse", (3,))
        with pytest.raises(TypeError, match=r"tag is a bytes"):
            fnnet.save(tmp_path / "m.npz", net, fnnet.init(net, jax.random.key(0)))
    finally:
        netjson._USER.clear()
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- temporary files (item 9)

def test_empty_path_and_errors_name_the_users_path(tmp_path):
    net, p0, _, _ = _problem()
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="path is empty"):
            fnnet.save(empty, net, p0)
        with pytest.raises(ValueError, match="path is empty"):
            fnnet.load(empty)
    target = str(tmp_path / "no" / "such" / "m.npz")
    with pytest.raises(FileNotFoundError) as info:
        fnnet.save(target, net, p0)
    assert target in str(info.value) and ".tmp" not in str(info.value)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fnnet.save(tmp_path, net, p0)


def test_stale_temp_files_of_the_target_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [f".m.npz.{dead}-0123456789ab.tmp", ".m.npz.0123456789ab.tmp"]   # killed; old fnnet
    keep = [f".m.npz.{os.getpid()}-0123456789ab.tmp", f".other.npz.{dead}-0123456789ab.tmp", "m.npz.tmp"]
    for name in stale + keep:
        (tmp_path / name).write_bytes(b"x" * 10)
    old = time.time() - 2 * 3600
    os.utime(tmp_path / stale[1], (old, old))
    net, p0, _, _ = _problem()
    fnnet.save(tmp_path / "m.npz", net, p0)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["m.npz"])


def test_sigterm_during_a_save_removes_the_temp_file(tmp_path):
    script = textwrap.dedent(f'''
        import sys, time
        sys.path.insert(0, {ROOT!r})
        from fnnet import atomic
        def fill(f):
            f.write(b"x" * 1000); f.flush(); print("writing", flush=True); time.sleep(60)
        atomic.write({str(tmp_path / "m.npz")!r}, fill)
    ''')
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert any(n.endswith(".tmp") for n in os.listdir(tmp_path))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM           # still dies by the signal
    finally:
        proc.kill()
    assert os.listdir(tmp_path) == []
