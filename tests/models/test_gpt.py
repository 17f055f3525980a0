"""The whole GPT: hand-written gradients vs jax.grad (<= 1e-10 in float64, every parameter),
the NumPy twin and finite differences (check_network); the llm.c-style golden trajectory;
sampling; bad input through Network."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from gpt_convert import from_reference, to_reference
from helpers import RTOL, assert_trees_close, maybe_jit
from fnnet_reference.models import gpt as R
from seq_helpers import randomize

V, T, L, H, C = 7, 5, 2, 2, 8


def setup(dtype=jnp.float64, seed=0, batch=3, layers=L):
    net = fnnet.gpt(V, T, layers, H, C)
    params = randomize(fnnet.init(net, jax.random.key(seed), dtype), seed, dtype, scale=0.3)
    rng = np.random.default_rng(seed)
    ids = jnp.asarray(rng.integers(0, V, size=(batch, T)))
    targets = jnp.asarray(rng.integers(0, V, size=(batch, T)))
    return net, params, ids, targets


@pytest.mark.parametrize("dtype,layers", [(jnp.float64, 2), (jnp.float32, 1)])
def test_gpt_grads_equal_jax_grad_and_reference(dtype, layers, jit=True):
    """Jitted (eager runs of the same layers are covered layer by layer in tests/layers).
    fit with validation data on [B, T] ids runs in tests/cli/test_cli_gpt.py."""
    net, params, ids, targets = setup(dtype, layers=layers)
    rtol = RTOL[np.dtype(dtype)]
    loss, grads = maybe_jit(lambda p: fnnet.value_and_grad(net, p, ids, targets), jit)(params)
    want = jax.jit(jax.grad(lambda p: fnnet.loss(net, p, ids, targets)))(params)
    assert_trees_close(grads, want, rtol, "vs jax.grad")            # every parameter, leaf by leaf
    ref_loss, ref_grads = R.loss_and_grad(to_reference(params), np.asarray(ids), np.asarray(targets), H)
    assert abs(float(loss) - ref_loss) <= rtol * abs(ref_loss)
    assert_trees_close(grads, from_reference(ref_grads, params), rtol, "vs reference")


def test_gpt_check_network_all_witnesses():
    net, params, ids, targets = setup(batch=2, layers=1)

    def reference(p, x, ct):
        _, g = R.loss_and_grad(to_reference(p), np.asarray(x).astype(np.int64), np.asarray(targets), H)
        return jax.tree.map(lambda a: ct * a, from_reference(g, p)), None
    report = fnnet.check.check_network(net, params, ids, targets, wrt_x=False, reference=reference)
    report.raise_if_failed()
    assert "reference" in str(report) and "finite" in str(report).lower(), str(report)


def _trajectory(net, params, ids, targets, grad, steps=10):
    opt = optax.adamw(1e-2, weight_decay=0.01)
    out, hist, *_ = fnnet.fit(net, params, ids, targets, optimizer=opt, epochs=steps, grad=grad)
    return np.asarray(hist.loss, np.float64), out


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_golden_ten_adamw_steps(dtype):
    """llm.c's test: 10 AdamW steps, hand-written backward vs jax.grad, same start (fit's
    full-batch history: loss[e] is the loss before step e+1).

    float64: losses and every parameter after 10 steps within 1e-10 relative.
    float32: the loss trajectory within 1e-4 relative (RTOL's float32 bound for one
    gradient evaluation; a smooth loss of ~1k weights moved by ~lr per step stays within it).
    Parameters are not compared in float32: the key bias b_k has a true gradient of exactly
    0 (softmax is invariant to adding the same q·b_k to every score of a row), so both sides
    hand Adam rounding noise of ~1e-9, which m/(sqrt(v) + 1e-8) turns into steps of up to lr
    in unrelated directions; those weights leave the loss unchanged, which is what the
    trajectory shows (float64's noise is 1e-17, far below eps, so there they agree).
    """
    net, params, ids, targets = setup(dtype, batch=4, layers=1)
    manual, p_manual = _trajectory(net, params, ids, targets, "manual")
    auto, p_auto = _trajectory(net, params, ids, targets, "autodiff")
    assert manual[-1] < manual[0] - 0.1                             # it trains
    rtol = 1e-10 if dtype == jnp.float64 else 1e-4
    np.testing.assert_allclose(manual, auto, rtol=rtol, atol=0)
    if dtype == jnp.float64:
        assert_trees_close(p_manual, p_auto, rtol, "params after 10 steps")


def test_generate_greedy_and_temperature():
    net, params, ids, _ = setup(layers=1)
    prompt = np.array([3, 1])
    out = fnnet.generate(net, params, prompt, 8)                     # runs past the context (5)
    assert out.shape == (10,) and (out[:2] == prompt).all()
    logits_at = jax.jit(lambda w: net.layers[0].forward(params[0], w[None])[0][0])
    for n in range(2, 10):                                           # each greedy id is the argmax
        window = out[max(0, n - T):n]                                # the last <= T ids, zero-padded:
        logits = logits_at(jnp.asarray(np.pad(window, (0, T - len(window)))))   # causal, padding unseen
        assert out[n] == int(jnp.argmax(logits[len(window) - 1]))
    a = fnnet.generate(net, params, prompt, 8, key=jax.random.key(1), temperature=1.0)
    b = fnnet.generate(net, params, prompt, 8, key=jax.random.key(1), temperature=1.0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="needs key"):
        fnnet.generate(net, params, prompt, 3, temperature=0.5)
    with pytest.raises(ValueError, match=r"prompt ids must be in \[0, 7\)"):
        fnnet.generate(net, params, np.array([9]), 3)


def test_gpt_bad_input_through_network():
    net, params, ids, targets = setup()
    with pytest.raises(TypeError, match=r"layer 0 \(TiedLM\(vocab=7, context=5, dim=8\)\): TokenPositionEmbedding\(7, 5, 8\): token ids must be an integer"):
        fnnet.forward(net, params, ids.astype(jnp.float64))
    with pytest.raises(ValueError, match=r"x must be \[batch, 5\], got \(3, 6\)"):
        fnnet.forward(net, params, jnp.zeros((3, 6), jnp.int32))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 7\), got values from 0 to 7"):
        fnnet.forward(net, params, ids.at[0, 0].set(7))
    with pytest.raises(ValueError, match=r"targets must be \[batch, T\] = \[3, 5\], got \(3, 4\)"):
        fnnet.loss(net, params, ids, targets[:, :4])
    with pytest.raises(ValueError, match="heads must divide dim"):
        fnnet.gpt(V, T, 1, 3, 8)


def test_checkpoint_at_step_5_resumes_bit_identically(tmp_path):
    """llm.c's other half: save after 5 AdamW steps (params, opt_state, epoch), restore, run 5 more;
    the losses of steps 6-10 and the final params equal a straight 10-step run bit for bit."""
    net, params, ids, targets = setup(jnp.float32, batch=4, layers=1)
    opt = optax.adamw(1e-2, weight_decay=0.01)
    kw = dict(optimizer=opt, batch_size=2, key=jax.random.key(3))
    p10, h10, *_ = fnnet.fit(net, params, ids, targets, epochs=10, opt_state=opt.init(params), **kw)
    p5, h5, s5, *_ = fnnet.fit(net, params, ids, targets, epochs=5, opt_state=opt.init(params), **kw)
    fnnet.save(tmp_path / "gpt.npz", net, p5, opt_state=s5, epoch=5)
    ck = fnnet.restore(tmp_path / "gpt.npz", optimizer=opt)
    assert ck.net == net and ck.epoch == 5
    p_resumed, h_resumed, *_ = fnnet.fit(ck.net, ck.params, ids, targets, epochs=5, opt_state=ck.opt_state,
                                        initial_epoch=ck.epoch, **kw)
    np.testing.assert_array_equal(np.concatenate([h5.loss, h_resumed.loss]), h10.loss)
    for a, b in zip(jax.tree.leaves(p_resumed), jax.tree.leaves(p10)):
        np.testing.assert_array_equal(a, b)
