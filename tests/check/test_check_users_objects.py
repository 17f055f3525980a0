"""Users' objects as they are: a jax.custom_vjp given to check_second_order and
check_per_example as to check_custom_vjp (its own fwd/bwd the backward), and an equinox
Module passed whole to check_vjp (its floating arrays differentiated, its functions and
integer arrays held fixed, as eqx.filter_grad does). Each: a right rule passes, a wrong one
fails on the leaf it gets wrong, in float64 and float32. flax: tests/check/test_check_flax.py."""
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tanh_dense(bwd_kind):
    """f(w, x) = tanh(x @ w), w [d, k], x [n, d], as a custom_vjp with one of three backwards:
    right; "stopped" (right values, but stop_gradient on y: its own derivative is wrong);
    "mean" (dw divided by the batch: right per example, not summed over examples)."""
    @jax.custom_vjp
    def f(w, x):
        return jnp.tanh(x @ w)

    def fwd(w, x):
        y = jnp.tanh(x @ w)
        return y, (w, x, y)

    def bwd(res, ct):
        w, x, y = res
        if bwd_kind == "stopped":
            y = jax.lax.stop_gradient(y)
        dz = ct * (1 - y * y)                                    # dz = ct ⊙ (1 - tanh²)
        dw = x.T @ dz                                            # dw = xᵀ dz
        if bwd_kind == "mean":
            dw = dw / x.shape[0]
        return dw, dz @ w.T                                      # dx = dz wᵀ
    f.defvjp(fwd, bwd)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_second_order_takes_a_custom_vjp(dtype):
    w, x = normal(3, 2, dtype=dtype), normal(4, 3, seed=1, dtype=dtype)
    rep = check.check_second_order(tanh_dense("right"), w, x)
    assert rep.ok, str(rep)
    assert {"w", "x", "cotangent"} <= {r.primal for r in rep.rows}
    rep = check.check_second_order(tanh_dense("stopped"), w, x)     # values right, derivative of bwd wrong
    assert not rep.ok and "w" in rep.failed_primals, str(rep)
    assert check.check_custom_vjp(tanh_dense("stopped"), w, x).ok   # first order cannot see it


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_per_example_takes_a_custom_vjp(dtype):
    w, x = normal(3, 2, dtype=dtype), normal(5, 3, seed=1, dtype=dtype)
    rep = check.check_per_example(tanh_dense("right"), w, x)
    assert rep.ok and rep.rows_for("x"), str(rep)
    rep = check.check_per_example(tanh_dense("mean"), w, x)
    assert [r.oracle for r in rep.failures] == ["Σ per-example vs batch"], str(rep)


def test_a_custom_vjp_holding_x_in_nondiff_argnums_and_a_custom_jvp_refused():
    def make(stop):
        def scale(w, x):
            return x * w[None]                                   # y[n, d] = x[n, d] ⊙ w[d]
        scale = jax.custom_vjp(scale, nondiff_argnums=(1,))
        held = jax.lax.stop_gradient if stop else (lambda c: c)  # stop: right values, bwd not differentiable
        scale.defvjp(lambda w, x: (x * w[None], None),
                     lambda x, _, ct: ((held(ct) * x).sum(0),))  # dw = Σ_n ct ⊙ x
        return scale
    w, x = normal(3), normal(4, 3, seed=1)
    rep = check.check_per_example(make(False), w, x)
    assert rep.ok and rep.rows_for("x")[0].kind == "nondiff", str(rep)
    rep = check.check_second_order(make(False), w, x)
    assert rep.ok and rep.rows_for("x")[0].kind == "nondiff", str(rep)   # x held: not differentiated
    assert check.check_second_order(make(True), w, x).failed_primals == ("cotangent",)

    @jax.custom_jvp
    def g(x):
        return jnp.sin(x)
    g.defjvp(lambda p, t: (jnp.sin(p[0]), jnp.cos(p[0]) * t[0]))
    with pytest.raises(TypeError, match="check_second_order.*custom_jvp.*check_jvp"):
        check.check_second_order(g, x)
    with pytest.raises(TypeError, match="check_per_example: a custom_vjp takes"):
        check.check_per_example(make(1.0), w)


class Gather(eqx.Module):
    """y = act(x @ w[:, idx]): a float weight, an integer index array (repeated entries) and a
    function, as an equinox model holds them."""
    w: jax.Array
    idx: jax.Array
    act: Callable

    def __call__(self, x):
        return self.act(x @ self.w[:, self.idx])


def gather_vjp(scatter):
    """The hand-written backward; scatter="add" right (repeated columns accumulate), "set" wrong."""
    def vjp(m, x, ct):
        z = x @ m.w[:, m.idx]
        dz = ct * (1 - jnp.tanh(z) ** 2)                               # dz = ct ⊙ tanh'(z)
        cols = x.T @ dz                                                 # d w[:, idx] = xᵀ dz
        at = jnp.zeros_like(m.w).at[:, m.idx]
        dw = at.add(cols) if scatter == "add" else at.set(cols)         # Σ over repeated idx
        dm = eqx.filter(m, eqx.is_inexact_array)                        # m's tree, None at idx and act
        return eqx.tree_at(lambda t: t.w, dm, dw), dz @ m.w[:, m.idx].T # dx = dz w[:, idx]ᵀ
    return vjp


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_equinox_module_passed_whole(dtype):
    m = Gather(normal(3, 4, dtype=dtype), jnp.asarray([0, 2, 0]), jnp.tanh)
    x = normal(5, 3, seed=1, dtype=dtype)
    fun = lambda m, x: m(x)
    rep = check.check_vjp(fun, gather_vjp("add"), m, x)
    assert rep.ok, str(rep)
    assert {"m.w", "x"} <= {r.primal for r in rep.rows}
    held = rep.rows_for("m", "nondiff")[0]
    assert "2 non-floating leaves" in held.note and "eqx.filter_grad" in held.note
    rep = check.check_vjp(fun, gather_vjp("set"), m, x)
    assert rep.failed_primals == ("m.w",), str(rep)
    # the equinox MLP, functions as leaves, its gradient from eqx.filter_grad's own tree
    mlp = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(0))
    mlp = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, mlp)
    run = lambda mlp, x: jax.vmap(mlp)(x)

    def by_filter_grad(mlp, x, ct):      # autodiff of the model: a rule that is right by construction
        return eqx.filter_grad(lambda mx: jnp.sum(ct * run(*mx)))((mlp, x))
    assert check.check_vjp(run, by_filter_grad, mlp, x).ok


def test_a_module_cotangent_of_another_tree_is_an_error_naming_the_primal():
    m = Gather(normal(3, 4), jnp.asarray([0, 2, 0]), jnp.tanh)
    x = normal(5, 3, seed=1)
    with pytest.raises(ValueError, match="cotangent for m whose tree is not m's"):
        check.check_vjp(lambda m, x: m(x), lambda m, x, ct: ({"w": m.w}, x), m, x)
    # a floating non-zero "cotangent" at the held integer leaf is a failed structure row
    def rule(m, x, ct):
        dm, dx = gather_vjp("add")(m, x, ct)
        return Gather(dm.w, jnp.ones(3), None), dx
    rep = check.check_vjp(lambda m, x: m(x), rule, m, x)
    assert [(r.primal, r.kind) for r in rep.failures] == [("m", "structure")], str(rep)
