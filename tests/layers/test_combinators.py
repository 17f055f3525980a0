"""Sequential, Residual and Positionwise: gradients through the combinators, and the
forgot-the-skip-gradient bug caught by check_network."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet_reference.layers import activations as RA
from fnnet_reference.layers import combinators as R
from fnnet_reference.layers import norm as RN
from seq_helpers import DTYPE_JIT, four_way, mid_network, randomize


def _block():
    return fnnet.Sequential((fnnet.LayerNorm(), fnnet.Positionwise(fnnet.Dense(8)), fnnet.GELU(),
                             fnnet.Positionwise(fnnet.Dense(4))))


def _ref_block(p, x, dy):
    """The reference: y = x + W2·gelu(W1·LN(x) + b1) + b2, differentiated by hand in NumPy."""
    ln, d1, _, d2 = p

    def f_backward(x, dy):
        a = RN.layernorm_forward(x, ln.gamma, ln.beta)
        pre = a @ d1.w + d1.b
        h = RA.gelu_forward(pre)
        dpre = RA.gelu_backward(pre, dy @ d2.w.T)
        dg, db, dx = RN.layernorm_backward(x, ln.gamma, ln.beta, dpre @ d1.w.T)
        flat = lambda v: v.reshape(-1, v.shape[-1])   # noqa: E731
        return (type(ln)(dg, db), type(d1)(flat(a).T @ flat(dpre), flat(dpre).sum(0)), (),
                type(d2)(flat(h).T @ flat(dy), flat(dy).sum(0))), dx
    return R.residual_backward(x, f_backward, dy)


@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_residual_mlp_block_four_witnesses(dtype, jit):
    layer = fnnet.Residual(_block())
    params = randomize(layer.init(jax.random.key(0), (3, 4))[0], 0, dtype)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 3, 4)), dtype)
    dy = jnp.asarray(rng.normal(size=(2, 3, 4)), dtype)
    four_way(layer, params, x, dy, _ref_block, jit)


def test_residual_mid_network():
    mid_network(fnnet.Residual(_block()), (3, 4)).raise_if_failed()


@dataclasses.dataclass(frozen=True)
class ForgotSkip(fnnet.Residual):
    """The classic bug: y = x + f(x), but the backward returns only the block's dx."""

    def backward(self, params, cache, dy):
        dparams, dh = self.block.backward(params, cache, dy)
        return dparams, dh


def test_forgotten_skip_gradient_is_caught():
    report = mid_network(ForgotSkip(_block()), (3, 4))
    assert not report.ok
    text = str(report)
    assert "x" in text and "FAIL" in text.upper()
    assert mid_network(fnnet.Residual(_block()), (3, 4)).ok


def test_combinator_errors():
    with pytest.raises(ValueError, match=r"Residual\(Positionwise\(Dense\(5\)\)\): the block must keep the shape \(3, 4\)"):
        fnnet.Residual(fnnet.Positionwise(fnnet.Dense(5))).init(jax.random.key(0), (3, 4))
    seq = fnnet.Sequential((fnnet.GELU(), fnnet.GELU()))
    with pytest.raises(ValueError, match=r"params must be a tuple with one entry per layer \(2\)"):
        seq.forward(((),), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="Sequential: needs at least one layer"):
        fnnet.Sequential(())
    with pytest.raises(TypeError, match="lacks method"):
        fnnet.Residual(object())
    pw = fnnet.Positionwise(fnnet.Dense(3))
    p, out = pw.init(jax.random.key(0), (5, 2))
    assert out == (5, 3) and p.w.shape == (2, 3)
    with pytest.raises(ValueError, match=r"Dense\(3\): x must be \[batch, 2\]"):
        pw.forward(p, jnp.zeros((1, 5, 4)))


def test_l2_masks_nest_through_combinators():
    """With l2 > 0, ½λΣw² covers Dense and attention weights and nothing else, through
    Residual/Sequential/Positionwise; the hand-written gradient includes its λw."""
    net = fnnet.Network((fnnet.Positionwise(fnnet.Dense(4)),
                         fnnet.Residual(fnnet.Sequential((fnnet.LayerNorm(), fnnet.CausalSelfAttention(2, 4)))),
                         fnnet.Positionwise(fnnet.Dense(5))), fnnet.SequenceCrossEntropy(), (3, 4), l2=0.1)
    params = randomize(fnnet.init(net, jax.random.key(0), jnp.float64), 0, jnp.float64)
    masks = [layer.l2_mask(p) for layer, p in zip(net.layers, params)]
    assert masks[1] == (fnnet.layers.LayerNormParams(False, False), fnnet.AttentionParams(True, False, True, False))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4)))
    y = jnp.asarray(np.random.default_rng(1).integers(0, 5, size=(2, 3)))
    from helpers import RTOL, assert_trees_close
    assert_trees_close(jax.jit(lambda p: fnnet.backward(net, p, x, y))(params),
                       jax.jit(jax.grad(lambda p: fnnet.loss(net, p, x, y)))(params), RTOL[np.dtype("float64")])
