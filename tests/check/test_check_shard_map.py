"""check_shard_map on 8 simulated CPU devices (a (2, 4) mesh "data" x "model"): the cases run
once, in a subprocess (tests/check/_shard_map_cases.py; JAX's device count is fixed per
process). A rule summing its partial cotangents (lax.psum) passes; one averaging them
(lax.pmean) fails both leaves by the axis sizes; one right on a single device raises under
shard_map and fails the "shard_map" row; a parameter placed replicated while in_specs splits
it gets a split gradient: its sharding row fails, its values pass. float64 and float32."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    path = tmp_path_factory.mktemp("shard_map") / "cases.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "_shard_map_cases.py"), str(path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(path.read_text())
    crashes = [v for k, v in out.items() if k.startswith("crash/")]
    assert not crashes, "\n".join(crashes)
    assert out["devices"] == 8
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_rule_summing_its_partial_cotangents_passes(cases, dtype):
    for name in ("psum", "vjp="):
        case = cases[f"{dtype}/{name}"]
        assert case["ok"] and case["kinds"] == ["shard_map", "sharding"], case


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_averaging_rule_fails_by_the_axis_sizes(cases, dtype):
    case = cases[f"{dtype}/pmean"]
    assert case["failed"] == ["w", "x"], case
    assert "w: FAIL, actual/expected ≈ 0.5" in case["summary"] and "x: FAIL, actual/expected ≈ 0.25" in case["summary"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_single_device_rule_raises_under_shard_map(cases, dtype):
    case = cases[f"{dtype}/none"]
    assert case["failed"] == ["shard_map"] and "lax.psum" in case["notes"][0], case


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_gradient_sharded_otherwise_than_its_parameter_fails_its_sharding_row(cases, dtype):
    case = cases[f"{dtype}/replicated"]
    assert case["failed"] == ["w"] and "P(None, 'model')" in case["notes"][0] and "parameter NamedSharding P()" \
        in case["notes"][0], case
