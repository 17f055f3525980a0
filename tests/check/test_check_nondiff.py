"""Non-differentiable inputs: integer indices, bool masks, keys, static config (nondiff=)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


@dataclasses.dataclass(frozen=True)
class Lookup:
    """Embedding-like layer written here (fnnet.Embedding is the real one): table [vocab, d], x int [batch, t]."""
    bug: bool = False

    def init(self, key, in_shape):
        return (), in_shape

    def forward(self, params, x):
        return params["table"][x], x                       # y: [batch, t, d]

    def backward(self, params, ids, dy):
        z = jnp.zeros_like(params["table"])
        dt = z.at[ids].set(dy) if self.bug else z.at[ids].add(dy)   # dL/dtable[v] = Σ_{ids == v} dy
        return {"table": dt}, None


def table(dtype, seed=0):
    return {"table": np.random.default_rng(seed).standard_normal((5, 3)).astype(dtype)}


IDS = np.array([[1, 3, 1, 0], [3, 3, 2, 1]], np.int32)     # repeated indices


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("jit", [False, True])
def test_integer_input_layer_is_checked(dtype, jit):
    report = check.check_layer(Lookup(), table(dtype), IDS, jit=jit)
    assert report.ok, str(report)
    (row,) = report.rows_for("x")
    assert row.kind == "nondiff" and row.status == "n/a" and "non-differentiable" in row.note
    assert {r.kind for r in report.rows_for("params['table']")} == {"jax", "reference", "fd"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_input_layer_with_overwriting_scatter_fails(dtype):
    report = check.check_layer(Lookup(bug=True), table(dtype), IDS)
    assert not report.ok and report.failed_primals == ("params['table']",), str(report)


def _numpy_lookup_vjp(overwrite):
    """A user's NumPy reference for Lookup: (dparams, None), None for the integer ids."""
    def ref(params, ids, dy):
        g = np.zeros_like(np.asarray(params["table"]))
        if overwrite:
            g[np.asarray(ids)] = np.asarray(dy)                     # the classic bug: last write wins
        else:
            np.add.at(g, np.asarray(ids), np.asarray(dy))          # dL/dtable[v] = Σ_{ids == v} dy
        return {"table": g}, None
    return ref


@pytest.mark.parametrize("dtype", DTYPES)
def test_user_reference_returning_none_for_integer_ids(dtype):
    # regression: a reference that returns one cotangent per primal, None for the ids,
    # used to raise IndexError inside the checker instead of being compared
    good = check.check_layer(Lookup(), table(dtype), IDS, reference=_numpy_lookup_vjp(False))
    assert good.ok, str(good)
    assert "reference" in {r.kind for r in good.rows_for("params['table']")}
    bad = check.check_layer(Lookup(), table(dtype), IDS, reference=_numpy_lookup_vjp(True))
    assert not bad.ok and bad.failed_primals == ("params['table']",), str(bad)
    assert [r.kind for r in bad.rows_for("params['table']") if not r.ok] == ["reference"], str(bad)


def test_nondiff_by_name_and_position_and_key_and_static_config():
    def fun(x, mask, key, mode):
        noise = jax.random.normal(key, x.shape, x.dtype)
        y = jnp.where(mask, x * x, 3 * x) + noise
        return y if mode == "plain" else -y

    def vjp(x, mask, key, mode, ct):
        d = jnp.where(mask, 2 * x, 3.0) * ct               # dL/dx = f'(x) ⊙ dL/dy
        return (d if mode == "plain" else -d, None, None, None)

    x = np.random.default_rng(1).standard_normal((3, 4))
    mask = x > 0.2
    key = jax.random.key(3)
    for mode in ("plain", "neg"):
        assert check.check_vjp(fun, vjp, x, mask, key, mode).ok
    # a floating primal held fixed by name and by position; the vjp may return only the others
    f2 = lambda x, s: jnp.sin(x) * s
    v2 = lambda x, s, ct: (jnp.cos(x) * s * ct,)
    s = np.random.default_rng(2).standard_normal((3, 4))
    for nd in ("s", 1, -1, ("s",)):
        rep = check.check_vjp(f2, v2, x, s, nondiff=nd)
        assert rep.ok, str(rep)
        assert rep.rows_for("s")[0].kind == "nondiff"
    bad = check.check_vjp(f2, lambda x, s, ct: (jnp.sin(x) * s * ct,), x, s, nondiff="s")
    assert bad.failed_primals == ("x",)


def test_nonzero_cotangent_for_a_nondiff_input_is_a_failed_structure_row():
    f = lambda x, s: x * s
    rep = check.check_vjp(f, lambda x, s, ct: (s * ct, x * ct), np.ones(3) * 0.5, np.arange(1.0, 4.0), nondiff=1)
    assert not rep.ok and rep.failed_primals == ("s",), str(rep)


def test_bad_nondiff_arguments_are_clear():
    f = lambda x, s: x * s
    v = lambda x, s, ct: (s * ct,)
    with pytest.raises(ValueError, match="not a primal"):
        check.check_vjp(f, v, np.ones(2), np.ones(2), nondiff="t")
    with pytest.raises(ValueError, match="out of range"):
        check.check_vjp(f, v, np.ones(2), np.ones(2), nondiff=2)
    # a primal mixing floating and integer leaves: check_vjp holds the integers fixed (a module
    # passed whole, tests/check/test_check_users_objects.py); the checks that cannot, say so
    mixed = {"a": np.linspace(0.5, 1.0, 2), "i": np.arange(1, 3)}
    assert check.check_vjp(lambda p: p["a"] * p["i"], lambda p, ct: ({"a": ct * p["i"], "i": None},), mixed).ok
    with pytest.raises(TypeError, match="mixes floating and non-floating"):
        check.check_jvp(lambda p: p["a"] * p["i"], mixed, jvp=lambda p, t: (p[0]["a"] * p[0]["i"], t[0]["a"]))
    with pytest.raises(ValueError, match="one cotangent per primal"):
        check.check_vjp(f, lambda x, s, ct: (s * ct, x * ct, ct), np.ones(2), np.ones(2), nondiff=1)


def test_forward_kwargs_are_held_fixed_for_every_witness():
    @dataclasses.dataclass(frozen=True)
    class Scaled:
        def forward(self, params, x, *, scale=1.0, train=True):
            return (x * scale if train else x), x

        def backward(self, params, x, dy):
            return (), dy * 2.5                          # correct for scale=2.5, train=True only

    x = np.random.default_rng(4).standard_normal((2, 3))
    assert check.check_layer(Scaled(), (), x, forward_kwargs={"scale": 2.5}).ok
    assert not check.check_layer(Scaled(), (), x, forward_kwargs={"scale": 2.5, "train": False}).ok


def test_integer_input_layer_for_a_user_without_x64():
    """int64 NumPy ids with x64 off: the float64 finite differences must see jax's int32 ids."""
    with jax.enable_x64(False):
        report = check.check_layer(Lookup(), table(np.float32), IDS.astype(np.int64))
        assert report.ok, str(report)
        assert not check.check_layer(Lookup(bug=True), table(np.float32), IDS.astype(np.int64)).ok
