"""The float64 replay (fnnet/check/replay.py): a float32 check also runs the rule in float64.

Bugs smaller than float32 resolves (rtol 1e-4) fail; correct rules whose float32 numerics
are hard (saturation, kinks, ill-conditioning) still pass; rules that cannot run in float64
are judged at float32 only, and the header says so.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet import check


def rule(f, fwd, bwd):
    g = jax.custom_vjp(f)
    g.defvjp(fwd, bwd)
    return g


def mean_sq(divisor_offset):
    f = lambda x: jnp.mean(x ** 2)
    return rule(f, lambda x: (f(x), x), lambda x, g: (g * 2 * x / (x.size - divisor_offset),))


X_BIG = (np.random.default_rng(1).standard_normal(100_000) + 3).astype(np.float32)


@pytest.mark.parametrize("jit", [True, False])
def test_a_bug_below_float32_resolution_fails_in_the_replay(jit):
    # d/dx mean(x²) divided by n - 1 instead of n: relative error 1e-5 at n = 1e5, inside float32's 1e-4
    report = check.check_custom_vjp(mean_sq(1), X_BIG, jit=jit)
    assert not report.ok, str(report)
    failing = [r for r in report.rows if r.status == "FAIL"]
    assert {r.kind for r in failing} == {"replay64"} and failing[0].primal == "x", str(report)
    assert "rule in float64" in failing[0].oracle and "float64_replay=False" in failing[0].note
    assert 3e-6 < failing[0].rel_err < 3e-5
    # what float32 alone resolves: the same check without the replay passes it
    assert check.check_custom_vjp(mean_sq(1), X_BIG, jit=jit, float64_replay=False).ok


def test_the_correct_rule_passes_with_the_replay():
    report = check.check_custom_vjp(mean_sq(0), X_BIG)
    assert report.ok and "replayed in float64" in report.header, str(report)


def test_bessel_correction_over_16384_elements_in_float32():
    # a population variance's backward written with n - 1: 6e-5 relative, inside float32's 1e-4
    x = np.random.default_rng(2).standard_normal((2, 16384)).astype(np.float32) * 2 + 1
    var = lambda x: jnp.var(x, -1)
    mk = lambda d: rule(var, lambda x: (var(x), x),
                        lambda x, g: (g[:, None] * 2 * (x - x.mean(-1, keepdims=True)) / (x.shape[-1] - d),))
    assert check.check_custom_vjp(mk(0), x).ok
    report = check.check_custom_vjp(mk(1), x)
    assert not report.ok and {r.kind for r in report.rows if r.status == "FAIL"} == {"replay64"}, str(report)
    assert check.check_custom_vjp(mk(1), x, float64_replay=False).ok


def test_correct_rules_at_kinks_and_saturation_pass_in_float32():
    r = np.random.default_rng(3)
    x = r.standard_normal((4, 8)).astype(np.float32)
    x[:, ::3] = 0.0
    relu = lambda x: jnp.maximum(x, 0)
    half = rule(relu, lambda x: (relu(x), x), lambda x, g: (g * jnp.where(x > 0, 1., jnp.where(x == 0, .5, 0.)),))
    assert check.check_custom_vjp(half, x).ok
    net = fnnet.mlp([4, 3, 3, 1], activation="tanh", loss="half_sse")   # two saturated tanh layers
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), fnnet.init(net, jax.random.key(5), np.float64))
    params = tuple(fnnet.DenseParams(3 * p.w, p.b) if p else () for p in params)
    xs = (30 * r.standard_normal((3, 4))).astype(np.float32)
    report = check.check_network(net, params, xs, r.uniform(0, 1, (3, 1)).astype(np.float32))
    assert report.ok and all(r.status in ("ok", "n/a") for r in report.rows), str(report)


def test_a_rule_that_stays_float32_is_judged_at_float32_only():
    f = lambda x: jnp.sin(x)
    g = rule(f, lambda x: (f(x), x), lambda x, ct: ((ct * jnp.cos(x)).astype(jnp.float32),))
    report = check.check_custom_vjp(g, np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4))
    assert report.ok, str(report)
    assert "not replayed" in report.header and "coarser than float64" in report.header


def test_user_tolerances_turn_the_replay_off():
    report = check.check_custom_vjp(mean_sq(1), X_BIG, rtol=1e-4)
    assert report.ok and "replayed" not in report.header
