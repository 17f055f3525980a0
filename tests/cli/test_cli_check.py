"""`fnnet check`: the four-way check of every built-in, run in-process."""
import jax
import pytest

import fnnet
from fnnet import cli
from fnnet.cli import check as _cli_check

PRIMITIVES = ["dense", "identity", "relu (kinks)", "leaky_relu (kinks)", "sigmoid (saturated)",
              "tanh (saturated)", "softmax (±1000 logits)", "mse", "half_sse", "softmax_cross_entropy",
              "sigmoid_binary_ce", "seed 000", "seed 001", "seed 002", "loss_with_manual_grad", "seed 003",
              "conv2d", "maxpool2d 2x2 (ties)", "avgpool2d", "flatten", "dropout", "batchnorm train",
              "batchnorm eval", "batchnorm full form", "elu", "silu", "softplus", "cnn conv/bn/pool/dropout train",
              "cnn conv/bn/pool/dropout eval"]


def test_all_builtins_pass(capsys):
    assert _cli_check.main([]) == 0
    out = capsys.readouterr().out
    rows = [l for l in out.splitlines() if l.rstrip().endswith(("ok", "FAIL"))]
    for name in PRIMITIVES:
        for dtype in ("float64", "float32"):
            assert any(r.startswith(name) and f" {dtype} " in r for r in rows), (name, dtype, out)
    assert all(r.rstrip().endswith("ok") for r in rows)
    assert "jax" in out and "reference" in out and "fd" in out
    assert "60 checks, 0 failed" in out and " s wall" in out
    with capsys.disabled():
        print("\n" + out.splitlines()[-1])


def test_dispatch_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["check", "--help"])
    assert exit_.value.code == 0
    assert "four-way" in capsys.readouterr().out.lower()


def test_a_broken_backward_exits_1(monkeypatch, capsys):
    def wrong(self, params, cache, dy):
        return (), dy * cache                     # s instead of s(1 - s)
    monkeypatch.setattr(fnnet.Sigmoid, "backward", wrong)
    assert cli.main(["check", "--only", "sigmoid (saturated)", "--dtype", "float64"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "hand-written vs oracle" in out   # the failing report is printed
    assert "1 checks, 1 failed" in out


def test_only_matching_nothing_is_an_error():
    with pytest.raises(SystemExit, match="no case matches"):
        _cli_check.main(["--only", "nonexistent"])


def test_a_warning_is_counted_and_its_report_printed(monkeypatch, capsys):
    import dataclasses
    import jax.numpy as jnp
    import numpy as np

    @dataclasses.dataclass(frozen=True)
    class StableSoftplus:
        """max(x, 0) + log1p(e^-|x|): jax.grad is 0 at x = 0, the truth (and this backward) 0.5."""
        def init(self, key, in_shape):
            return (), tuple(in_shape)

        def forward(self, params, x):
            return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x))), x

        def backward(self, params, x, dy):
            return (), dy * jax.nn.sigmoid(x)

    x = np.array([[0.0, 0.7, -1.3], [0.0, 2.1, -0.4]])
    build = lambda dt: ("check_layer", (StableSoftplus(), (), x.astype(dt)), {})
    monkeypatch.setattr(_cli_check, "_cases", lambda rng: [("stable softplus at 0", "layer", build)])
    assert _cli_check.main(["--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    row = next(l for l in out.splitlines() if l.startswith("stable softplus at 0"))
    assert row.rstrip().endswith("warn"), out
    assert "1 checks, 0 failed, 1 passed with warnings" in out and "hand-written vs oracle" in out, out
