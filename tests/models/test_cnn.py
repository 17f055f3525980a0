"""fnnet.cnn: the layer stack and shapes, the hand-written backward of the whole CNN vs jax.grad
(params and dx), check_network in float64, a short fit that learns, optional BatchNorm/Dropout,
and bad input. Small configurations: the 5-key accuracy figure is scripts/cnn_digits.py's."""
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from helpers import RTOL, assert_trees_close


def digits_images(n, dtype):
    x, y, _, _ = fnnet.datasets.digits(dtype=np.float64)
    return jnp.asarray(x[:n].reshape(-1, 8, 8, 1), dtype), jnp.asarray(y[:n])


def test_default_stack_and_shapes():
    net = fnnet.cnn()
    kinds = [type(l).__name__ for l in net.layers]
    assert kinds == ["Conv2D", "Relu", "MaxPool2D", "Conv2D", "Relu", "MaxPool2D", "Flatten", "Dense", "Relu", "Dense"]
    assert fnnet.out_shape(net) == (10,) and net.in_shape == (8, 8, 1)
    params = fnnet.init(net, jax.random.key(0))
    assert params[0].w.shape == (3, 3, 1, 32) and params[3].w.shape == (3, 3, 32, 64)
    assert params[7].w.shape == (256, 128)
    assert fnnet.init_state(net) == ((),) * len(net.layers)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_whole_cnn_backward_matches_jax_grad(dtype):
    net = fnnet.cnn(conv=(4, 6), dense=(16,), l2=1e-3)
    params = fnnet.init(net, jax.random.key(1), dtype)
    x, y = digits_images(8, dtype)
    value, grads, dx = jax.jit(lambda p, x: fnnet.backprop(net, p, x, y))(params, x)
    av, (ag, adx) = jax.jit(jax.value_and_grad(lambda p, x: fnnet.loss(net, p, x, y), argnums=(0, 1)))(params, x)
    rtol = RTOL[np.dtype(dtype)]
    assert_trees_close((value, grads, dx), (av, ag, adx), rtol, "cnn backprop vs jax.grad")


def test_check_network_of_the_default_cnn_in_float64():
    net = fnnet.cnn()
    params = fnnet.init(net, jax.random.key(0), jnp.float64)
    x, y = digits_images(4, jnp.float64)
    t = time.perf_counter()
    report = fnnet.check.check_network(net, params, x, y)
    seconds = time.perf_counter() - t
    report.raise_if_failed()
    print(f"check_network of the default CNN, batch 4, float64: {seconds:.1f} s")   # timing is reported, not asserted


def test_short_fit_learns_and_batchnorm_dropout_variants_build():
    net = fnnet.cnn(conv=(8,), dense=(32,))
    x, y = digits_images(256, jnp.float32)
    params = fnnet.init(net, jax.random.key(0))
    before = float(fnnet.loss(net, params, x, y))
    params, hist, *_ = fnnet.fit(net, params, x, y, optimizer=optax.adam(3e-3), epochs=12, batch_size=32,
                             key=jax.random.key(1))
    assert float(fnnet.loss(net, params, x, y)) < 0.5 * before
    assert fnnet.accuracy(net, params, x, y) > 0.8
    bn = fnnet.cnn(conv=(4,), dense=(8,), batchnorm=True, dropout=0.25)
    kinds = [type(l).__name__ for l in bn.layers]
    assert kinds == ["Conv2D", "BatchNorm", "Relu", "MaxPool2D", "Flatten", "Dense", "Relu", "Dropout", "Dense"]
    p = fnnet.init(bn, jax.random.key(0))
    s = fnnet.init_state(bn)
    _, grads, new_s = fnnet.value_and_grad(bn, p, x[:16], y[:16], state=s, key=jax.random.key(2))
    assert new_s[1].mean.shape == (4,) and jax.tree.structure(grads) == jax.tree.structure(p)


def test_bad_input():
    with pytest.raises(ValueError, match=r"cnn: input must be images \[batch, height, width, channels\].*\(64,\)"):
        fnnet.cnn((64,))
    with pytest.raises(ValueError, match=r"cnn: conv filters must be an int >= 1, got 0"):
        fnnet.cnn(conv=(8, 0))
    with pytest.raises(ValueError, match=r"Dropout: rate must be"):
        fnnet.cnn(dropout=1.0)
    net = fnnet.cnn()
    params = fnnet.init(net, jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2D.*x must be \[batch, 8, 8, 1\], got \(3, 64\)"):
        fnnet.forward(net, params, jnp.ones((3, 64), jnp.float32))


def test_fnnet_train_model_cnn_trains_saves_and_refuses_mlp_options(tmp_path, capsys):
    from fnnet.cli import train as cli_train
    ck = tmp_path / "cnn.npz"
    assert cli_train.main(["--model", "cnn", "--epochs", "1", "--quiet", "--save", str(ck)]) == 0
    out = capsys.readouterr().out
    assert "Conv2D(32" in out and "adam lr 0.001, 1 epoch, batch size 32" in out and "test accuracy:" in out
    restored = fnnet.restore(ck)
    assert restored.net == fnnet.cnn() and restored.epoch == 1
    assert cli_train.main(["--model", "cnn", "--dataset", "blobs"]) == 2
    assert cli_train.main(["--model", "cnn", "--sizes", "64,10"]) == 2
    assert "--model cnn takes images" in capsys.readouterr().err
