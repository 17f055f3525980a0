"""`fnnet check`: the four-way check of every built-in, run in-process."""
import jax
import pytest

import fnnet
from fnnet import cli
from fnnet.cli import check as _cli_check

PRIMITIVES = ["dense", "identity", "relu (kinks)", "leaky_relu (kinks)", "sigmoid (saturated)",
              "tanh (saturated)", "softmax (±1000 logits)", "mse", "half_sse", "softmax_cross_entropy",
              "sigmoid_binary_ce", "seed 000", "seed 001", "seed 002", "loss_with_manual_grad", "seed 003"]


def test_all_builtins_pass(capsys):
    assert _cli_check.main([]) == 0
    out = capsys.readouterr().out
    rows = [l for l in out.splitlines() if l.rstrip().endswith(("ok", "FAIL"))]
    for name in PRIMITIVES:
        for dtype in ("float64", "float32"):
            assert any(r.startswith(name) and f" {dtype} " in r for r in rows), (name, dtype, out)
    assert all(r.rstrip().endswith("ok") for r in rows)
    assert "jax" in out and "reference" in out and "fd" in out
    assert "32 checks, 0 failed" in out and " s wall" in out
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
