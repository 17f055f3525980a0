"""`fnnet check`: the four-way check of every built-in, run in-process, and its layer and loss
cases' NumPy float64 twin as a witness (the reference row is a comparison, never "n/a": the
bridge to reference/, fnnet/check/bridge.py, whose planted bugs are tests/check/test_bridge.py);
--list and --only run as a user runs them, in a subprocess."""
import contextlib
import dataclasses
import io
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import fnnet
from fnnet import cli
from fnnet.cli import check as _cli_check
from fnnet.cli import check_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PRIMITIVES = ["dense", "identity", "relu (kinks)", "leaky_relu (kinks)", "sigmoid (saturated)",
              "tanh (saturated)", "softmax (±1000 logits)", "mse", "half_sse", "softmax_cross_entropy",
              "sigmoid_binary_ce", "seed 000", "seed 001", "seed 002", "loss_with_manual_grad", "seed 003",
              "conv2d", "maxpool2d 2x2 (ties)", "avgpool2d", "flatten", "dropout", "batchnorm train",
              "batchnorm eval", "batchnorm full form", "elu", "silu", "softplus", "cnn conv/bn/pool/dropout train",
              "cnn conv/bn/pool/dropout eval", "gelu (tanh form)", "gelu (erf form)", "reshape", "layernorm",
              "rmsnorm", "embedding (ids)", "positional embedding", "token+position embedding",
              "causal self-attention", "attention, recompute", "positionwise dense", "tiedlm (tiny gpt)",
              "sequence_cross_entropy", "sequence_ce ignore 0, smoothing"]


# Public layers and losses whose reference row may be "n/a" in `fnnet check`, with the reason.
# Empty: every public layer and loss has a twin in reference/.
NO_TWIN = {}


@pytest.fixture(scope="module")
def builtins():
    """`fnnet check` with no options, run once: (exit status, what it printed, its reports
    {(case, dtype): report}). Its float64 reports are the reference-witness test's: the same
    cases, built and checked as that test would (x64 on), so they are not checked twice."""
    runs = []

    def run(*args, **kwargs):
        runs.append(real(*args, **kwargs))
        return runs[-1]
    real, text = _cli_check.run, io.StringIO()
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stdout(text):
        m.setattr(_cli_check, "run", run)
        rc = _cli_check.main([])
    (_, rows, _), = runs
    return rc, text.getvalue(), {(row[0], row[1]): report for row, report in rows}


def test_all_builtins_pass(builtins, capsys):
    rc, out, _ = builtins
    assert rc == 0
    rows = [l for l in out.splitlines() if l.rstrip().endswith(("ok", "FAIL"))]
    for name in PRIMITIVES:
        for dtype in ("float64", "float32"):
            assert any(r.startswith(name) and f" {dtype} " in r for r in rows), (name, dtype, out)
    assert all(r.rstrip().endswith("ok") for r in rows)
    assert "jax" in out and "reference" in out and "fd" in out
    n = len(check_cases.cases(np.random.default_rng(0)))
    assert f"{2 * n} checks, 0 failed" in out and " s wall" in out
    with capsys.disabled():
        print("\n" + out.splitlines()[-1])


WITNESSED = {name: (build, subjects) for name, kind, build, subjects in check_cases.cases(np.random.default_rng(0))
             if kind in ("layer", "loss")}
# float32 too for a mask drawn from the key, a padded recurrence, a twin composed of parts and
# options (the twin always computes in float64; the float64 run covers the rest)
FLOAT32 = ["dropout 0.3 (key fixed)", "groupnorm 2 groups", "lstm (padded)", "tiedlm (tiny gpt)",
           "sequence_ce ignore 0, smoothing"]


@pytest.mark.parametrize("dtype,name", [(np.float64, n) for n in WITNESSED] + [(np.float32, n) for n in FLOAT32],
                         ids=lambda v: v if isinstance(v, str) else np.dtype(v).name)
def test_fnnet_check_cases_have_a_reference_witness(builtins, name, dtype):
    build, subjects = WITNESSED[name]
    if dtype == np.float64:
        report = builtins[2][(name, "float64")]
    else:                                  # x64 on, unlike `fnnet check`'s float32 rows
        fn, args, kw = build(dtype)
        report = getattr(fnnet.check, fn)(*args, **kw)
    rows = [r for r in report.rows if r.kind == "reference"]
    assert rows, str(report)
    if set(check_cases.covered(subjects)) & set(NO_TWIN):
        return
    assert all(r.status == "ok" for r in rows), str(report)
    assert report.ok, str(report)


def test_every_public_layer_and_loss_is_in_a_case_with_a_twin():
    """Each public layer and loss is the subject of a layer/loss case (or a part of one, as
    Sequential and Residual in the TiedLM), so the test above gives each a reference row."""
    covered = set()
    for _, subjects in WITNESSED.values():
        covered |= check_cases.covered(subjects)
    public = set(check_cases.public_names())
    assert public - covered - set(NO_TWIN) == set()
    assert set(NO_TWIN) <= public, "the allow-list names only public layers and losses"


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


def _fnnet(*args):
    return subprocess.run([sys.executable, "-m", "fnnet", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_every_public_layer_and_loss_has_a_case():
    # discovered from fnnet.__all__: a new public layer without a case fails here
    names = check_cases.public_names()
    assert {"GELU", "LayerNorm", "RMSNorm", "Embedding", "CausalSelfAttention", "Residual",
            "Sequential", "SequenceCrossEntropy", "TiedLM", "Dense", "MSE"} <= set(names)
    cases = check_cases.cases(np.random.default_rng(0))
    done = set().union(*(check_cases.covered(c[3]) for c in cases))
    assert set(names) <= done, sorted(set(names) - done)


def test_a_new_public_layer_without_a_case_is_noticed(monkeypatch, capsys):
    @dataclasses.dataclass(frozen=True)
    class PReLU:
        def init(self, key, in_shape): return (), tuple(in_shape)
        def forward(self, params, x): return x, None
        def backward(self, params, cache, dy): return (), dy
    monkeypatch.setattr(fnnet, "PReLU", PReLU, raising=False)
    monkeypatch.setattr(fnnet, "__all__", [*fnnet.__all__, "PReLU"])
    assert "PReLU" in check_cases.public_names()
    assert _cli_check.main(["--list"]) == 0
    assert "PReLU" in capsys.readouterr().out.split("NO CASE")[0].splitlines()[-1]


def test_list_names_every_layer_and_loss_with_its_cases():
    run = _fnnet("check", "--list")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    for name in check_cases.public_names():
        row = next(l for l in lines if l.split() and l.split()[0] == name)
        assert "NO CASE" not in row, row
    assert any(l.split()[0] == "TiedLM" and "tiedlm (tiny gpt)" in l for l in lines if l.split())
    assert all(f"  {name}" in run.stdout for name in PRIMITIVES)


def test_only_by_layer_names_in_any_case_and_commas():
    run = _fnnet("check", "--only", "gelu,LayerNorm", "--only", "SEQUENCECROSSENTROPY", "--dtype", "float64")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [l.split("  ")[0] for l in run.stdout.splitlines() if l.rstrip().endswith(" ok")]
    assert rows == ["gelu (tanh form)", "gelu (erf form)", "layernorm", "sequence_cross_entropy",
                    "sequence_ce ignore 0, smoothing"], run.stdout


def test_only_an_unknown_name_exits_2_with_one_line_naming_the_valid_ones():
    run = _fnnet("check", "--only", "gelu,PReLU")
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fnnet check: --only 'PReLU' names no layer, loss or case")
    assert all(name in lines[0] for name in check_cases.public_names())


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
    monkeypatch.setattr(_cli_check, "_cases",
                        lambda rng: [("stable softplus at 0", "layer", build, (StableSoftplus(),))])
    assert _cli_check.main(["--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    row = next(l for l in out.splitlines() if l.startswith("stable softplus at 0"))
    assert row.rstrip().endswith("warn"), out
    assert "1 checks, 0 failed, 1 passed with warnings" in out and "hand-written vs oracle" in out, out
