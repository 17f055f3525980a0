"""`fnnet bench --quick` on the course-zoo layer workloads (L-rnn, L-lstm, L-gru, L-convtranspose,
L-groupnorm): each runs for fnnet and jax.grad, with finite times and step memory, and both
systems train to the same loss. No speed is asserted (speed is measured, never in pytest)."""
import json
import math

import pytest

from fnnet.bench import cli, workloads

ZOO = ("L-rnn", "L-lstm", "L-gru", "L-convtranspose", "L-groupnorm")


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_zoo_workloads_are_in_the_layers_group():
    assert set(ZOO) <= set(workloads.expand("layers"))
    assert not set(ZOO) & set(workloads.default_names())


def test_zoo_workloads_run_quick(tmp_path):
    rc = cli.main(["--quick", "--repeats", "1", "--quiet", "--out", str(tmp_path), "--workloads", ",".join(ZOO)])
    assert rc == 0
    res = json.loads((tmp_path / "results-cpu.json").read_text())
    assert tuple(res["nets"]) == ZOO
    for name, w in res["nets"].items():
        rows = {r["system"]: r for r in w["rows"]}
        for s in ("fnnet", "jax.grad"):
            assert rows[s]["status"] == "ok", (name, rows[s])
            assert _positive(rows[s]["step_ms"]) and _positive(w["step_memory"][s]["temp_bytes"]), name
        f, a = rows["fnnet"]["final_loss"], rows["jax.grad"]["final_loss"]
        assert f == pytest.approx(a, rel=1e-4), name          # the same float32 steps
