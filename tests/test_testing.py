"""fnnet.testing: the one-line battery for a user's own layer, and its hypothesis strategies."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fnnet
import fnnet.testing as ft


@dataclasses.dataclass(frozen=True)
class ScaledRelu:
    """y = relu(x) ⊙ w, x [batch, d], w [d]; bug= plants one error."""
    bug: str = ""

    def init(self, key, in_shape):
        return {"w": jax.random.normal(key, in_shape)}, tuple(in_shape)

    def forward(self, params, x):
        return jnp.maximum(x, 0) * params["w"][None], x

    def backward(self, params, x, dy):
        mask = (x > 0) + (2.0 * (x == 0) if self.bug == "kink" else 0.0)   # relu'(0) = 0; 2 is no subgradient
        r = jnp.maximum(x, 0)
        dw = (dy * r).mean(axis=0) if self.bug == "mean" else (dy * r).sum(axis=0)   # dL/dw = Σ_batch dy ⊙ relu(x)
        dx = dy * params["w"][None] * mask                                # dL/dx = dy ⊙ w ⊙ 1[x > 0]
        return {"w": dw}, dx


def test_a_correct_layer_passes_the_whole_battery():
    cases = ft.layer_cases(ScaledRelu(), (5,))
    names = [str(c) for c in cases]
    assert any("float32" in n for n in names) and any("mid-network" in n for n in names)
    assert any("batch1" in n for n in names) and any("in1" in n for n in names)
    assert any("kinks" in n for n in names) and any("saturated" in n for n in names)
    assert any("eager" in n for n in names) and any("-jit-" in n for n in names)
    ft.assert_layer_correct(ScaledRelu(), (5,))


@pytest.mark.parametrize("bug", ["mean", "kink"])
def test_planted_bugs_fail_with_the_case_named(bug):
    with pytest.raises(AssertionError, match="case\\(s\\) failed") as err:
        ft.assert_layer_correct(ScaledRelu(bug), (5,), dtypes=("float64",), jit=(True,))
    failed = [line for line in str(err.value).splitlines() if line.startswith("--- ")]
    assert failed and "FAIL" in str(err.value)
    if bug == "kink":            # only the inputs that sit on relu's kink can show it
        assert all("-kinks-" in line for line in failed), failed


def test_integer_input_layer_with_given_ids():
    @dataclasses.dataclass(frozen=True)
    class Lookup:
        def init(self, key, in_shape):
            return {"table": jax.random.normal(key, (6, 3))}, (in_shape[0], 3)

        def forward(self, params, ids):
            return params["table"][ids], ids

        def backward(self, params, ids, dy):
            return {"table": jnp.zeros_like(params["table"]).at[ids].add(dy)}, None   # Σ over repeats

    ids = lambda rng, batch: rng.integers(0, 6, (batch, 4)).astype(np.int32)
    ft.assert_layer_correct(Lookup(), (4,), x=ids, jit=(True,), dtypes=("float64",))


def test_make_input_kinds():
    k = ft.make_input("kinks", (4, 6))
    assert (k == 0).sum() >= 6 and ((np.abs(k) > 0) & (np.abs(k) < 1e-6)).any()
    assert (np.abs(ft.make_input("saturated", (4, 6))) == 30).sum() >= 8
    with pytest.raises(ValueError, match="input kind"):
        ft.make_input("ones", (2, 2))


@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_hypothesis_strategies_drive_check_layer(data):
    shape = data.draw(ft.shapes(min_rank=2, max_rank=2, max_side=4))
    x = data.draw(ft.arrays(shape, np.float64))
    assert x.shape == shape and np.isfinite(x).all()
    report = fnnet.check.check_layer(fnnet.Relu(), (), x)
    assert report.ok, str(report)


def test_kink_values_reach_every_kind_of_hard_value():
    from hypothesis import find
    s = ft.kink_values(kinks=(0.0, 1.0))
    assert find(s, lambda v: v == 1.0) == 1.0                              # exactly on a kink
    assert 0 < abs(find(s, lambda v: 0 < abs(v) < 1e-6)) < 1e-6            # within the FD step
    assert abs(find(s, lambda v: abs(v) == 30.0)) == 30.0                  # saturated
    assert 2e-6 < abs(find(s, lambda v: 2e-6 < abs(v - 1.0) < 1e-5) - 1.0) < 1e-5   # a few steps away


def test_a_wrong_layer_leads_with_one_line_per_leaf():
    with pytest.raises(AssertionError) as err:
        ft.assert_layer_correct(ScaledRelu("mean"), (5,), dtypes=("float64",), jit=(True,))
    text = str(err.value)
    first = text.splitlines()[0]
    assert "params['w']: FAIL in" in first and "actual/expected ≈" in first, first
    assert "x: ok" in first or "x: warn" in first, first        # the bug is in dw only
    assert text.count("result: FAIL") == 1, text                 # one table: the worst case's
    assert len(text) < 8000, len(text)


def test_report_summary_and_json():
    import json
    report = fnnet.check.check_layer(ScaledRelu("mean"), {"w": np.linspace(-1, 1, 5)},
                                     np.random.default_rng(2).standard_normal((4, 5)))
    assert report.summary().startswith("params['w']: FAIL, actual/expected ≈ 0.25"), report.summary()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["summary"] == report.summary()
    assert any(r["status"] == "FAIL" and r["primal"] == "params['w']" for r in data["rows"])
    with pytest.raises(AssertionError) as err:
        report.raise_if_failed()
    assert str(err.value).splitlines()[0].endswith(report.summary())


def test_a_layer_asserting_against_width_one_is_not_cased_at_width_one():
    @dataclasses.dataclass(frozen=True)
    class Pairwise(fnnet.Tanh):                   # refuses width 1 by a bare assert in init
        def init(self, key, in_shape):
            assert in_shape[-1] > 1
            return super().init(key, in_shape)
    shapes = {c.in_shape for c in fnnet.testing.layer_cases(Pairwise(), (3,), dtypes=("float64",))}
    assert shapes == {(3,)}
