"""flax objects as users hold them, checked by check_vjp: an nnx Module passed whole (its
Params differentiated, its Rngs' counter and key held fixed), an nnx State from nnx.split,
and linen variables ({"params": {...}} from Module.init). Each: a right hand-written rule
passes, one with a wrong bias gradient fails on that leaf, in float64 and float32.
(flax imports in about 0.6 s once jax is imported.)"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from fnnet import check

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def dense_grads(kernel, x, ct, bias_sum):
    """y = x @ kernel + bias: dkernel = xᵀ ct, dbias = Σ_n ct (wrong: the mean), dx = ct kernelᵀ."""
    db = ct.sum(0) if bias_sum else ct.mean(0)
    return x.T @ ct, db, ct @ kernel.T


def by_path(tree, grads):
    """tree's pytree with grads[leaf path] at those leaves and None at the others."""
    return jax.tree_util.tree_map_with_path(lambda p, _: grads.get(jax.tree_util.keystr(p)), tree)


class Block(nnx.Module):
    """A Linear beside the Rngs it was built with: floating Params and integer/key leaves."""
    def __init__(self, dtype, rngs):
        self.lin = nnx.Linear(3, 2, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.rngs = rngs

    def __call__(self, x):
        return self.lin(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_sum", [True, False])
def test_an_nnx_module_passed_whole_and_its_split_state(dtype, bias_sum):
    m = Block(dtype, nnx.Rngs(0))
    x = normal(4, 3, seed=1, dtype=dtype)

    def vjp(m, x, ct):
        dk, db, dx = dense_grads(m.lin.kernel[...], x, ct, bias_sum)
        return by_path(m, {".lin.kernel.value": dk, ".lin.bias.value": db}), dx
    rep = check.check_vjp(lambda m, x: m(x), vjp, m, x)
    assert rep.ok == bias_sum and rep.failed_primals == (() if bias_sum else ("m.lin.bias.value",)), str(rep)
    assert "held fixed" in rep.rows_for("m", "nondiff")[0].note
    graphdef, state = nnx.split(m.lin)

    def vjp_state(state, x, ct):
        dk, db, dx = dense_grads(state["kernel"][...], x, ct, bias_sum)
        return by_path(state, {"['kernel'].value": dk, "['bias'].value": db}), dx
    rep = check.check_vjp(lambda s, x: nnx.merge(graphdef, s)(x), vjp_state, state, x)
    assert rep.failed_primals == (() if bias_sum else ("s['bias'].value",)), str(rep)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_sum", [True, False])
def test_linen_variables(dtype, bias_sum):
    dense = linen.Dense(2, param_dtype=dtype, dtype=dtype)
    x = normal(4, 3, seed=1, dtype=dtype)
    variables = dense.init(jax.random.key(0), x)

    def vjp(v, x, ct):
        dk, db, dx = dense_grads(v["params"]["kernel"], x, ct, bias_sum)
        return {"params": {"kernel": dk, "bias": db}}, dx
    rep = check.check_vjp(dense.apply, vjp, variables, x, names=("variables", "x"))
    assert rep.failed_primals == (() if bias_sum else ("variables['params']['bias']",)), str(rep)
