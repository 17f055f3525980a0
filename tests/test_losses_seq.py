"""SequenceCrossEntropy: value and hand-written grad vs jax.grad, the loop twin and FD,
with ignore_index, mask and label smoothing; bad targets and masks refused."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from helpers import FD_RTOL, RTOL, assert_trees_close, fd_vjp, maybe_jit
from fnnet_reference import losses_seq as R
from seq_helpers import DTYPE_JIT

B, T, V = 2, 3, 5
RNG = np.random.default_rng(0)
Z = RNG.normal(size=(B, T, V)) * 2
TARGETS = np.array([[1, -1, 4], [0, 0, -1]])
MASK = RNG.uniform(0.2, 1.0, size=(B, T))


@pytest.mark.parametrize("options", [dict(), dict(ignore_index=-1), dict(label_smoothing=0.1),
                                     dict(ignore_index=-1, label_smoothing=0.2, mask=True)], ids=str)
@pytest.mark.parametrize("dtype,jit", DTYPE_JIT)
def test_sequence_ce_against_all_oracles(options, dtype, jit):
    options = dict(options)
    mask = MASK if options.pop("mask", False) else None
    targets = TARGETS if "ignore_index" in options else np.abs(TARGETS)
    loss = fnnet.SequenceCrossEntropy(**options)
    z = jnp.asarray(Z, dtype)
    m = None if mask is None else jnp.asarray(mask, dtype)
    rtol = RTOL[np.dtype(dtype)]
    value = maybe_jit(lambda z: loss.value(z, jnp.asarray(targets), m), jit)(z)
    grad = maybe_jit(lambda z: loss.grad(z, jnp.asarray(targets), m), jit)(z)
    assert grad.dtype == dtype
    want = R.sequence_cross_entropy(Z, targets, mask=mask, **options)
    assert abs(float(value) - want) <= rtol * abs(want)
    assert_trees_close(grad, jax.grad(lambda z: loss.value(z, jnp.asarray(targets), m))(z), rtol, "vs jax.grad")
    assert_trees_close(grad, R.sequence_cross_entropy_grad(Z, targets, mask=mask, **options), rtol, "vs reference")
    (fd,) = fd_vjp(lambda z: loss.value(jnp.asarray(z), jnp.asarray(targets), None if mask is None else jnp.asarray(mask)),
                   (Z,), np.ones(()))
    assert_trees_close(grad, fd, max(rtol, FD_RTOL), "vs FD")


def test_ignored_positions_have_no_gradient_and_all_ignored_is_zero():
    loss = fnnet.SequenceCrossEntropy(ignore_index=-1)
    g = loss.grad(jnp.asarray(Z), jnp.asarray(TARGETS))
    np.testing.assert_array_equal(g[0, 1], 0)
    np.testing.assert_array_equal(g[1, 2], 0)
    everything = jnp.full((B, T), -1)
    assert float(loss.value(jnp.asarray(Z), everything)) == 0.0
    np.testing.assert_array_equal(loss.grad(jnp.asarray(Z), everything), 0)


def test_sequence_ce_bad_input():
    loss = fnnet.SequenceCrossEntropy()
    z = jnp.asarray(Z)
    with pytest.raises(ValueError, match=r"targets must be \[batch, T\] = \[2, 3\], got \(2, 4\)"):
        loss.value(z, jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(TypeError, match="targets must be integer ids"):
        loss.value(z, jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 5\), got values from -1 to 4"):
        loss.value(z, jnp.asarray(TARGETS))
    with pytest.raises(ValueError, match=r"mask must be \[batch, T\] = \[2, 3\], got \(3, 2\)"):
        loss.value(z, jnp.zeros((2, 3), jnp.int32), mask=jnp.ones((3, 2)))
    with pytest.raises(ValueError, match=r"network output must be logits \[batch, T, V\], got \(2, 5\)"):
        loss.value(z[:, 0], jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        fnnet.SequenceCrossEntropy(label_smoothing=1.0)
    assert fnnet.losses.get("sequence_cross_entropy") == loss
