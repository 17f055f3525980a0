"""`fnnet bench --quick` runs and writes well-formed JSON and Markdown.

No timing is asserted here (speed is measured by scripts/bench.py, never in pytest):
only that every system has a row per workload, numbers are positive and the reported
ratios are the ratios of the reported times.
"""
import json
import math

import pytest

from fnnet.bench import cli, workloads

SYSTEMS = {"numpy-seed", "reference", "fnnet", "fnnet.fit", "jax.grad", "torch"}
MLPS = workloads.names("mlp")        # the nets (CNN, GPT, L-*): tests/bench/test_bench_nets.py


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = cli.main(["--quick", "--repeats", "2", "--quiet", "--out", str(out), "--workloads", ",".join(MLPS)])
    assert rc == 0
    jsons, mds = list(out.glob("results-*.json")), list(out.glob("results-*.md"))
    assert len(jsons) == 1 and len(mds) == 1
    return json.loads(jsons[0].read_text()), mds[0].read_text()


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_json_top_level(quick):
    res, _ = quick
    assert set(res) >= {"machine", "config", "peak", "workloads", "targets", "notes", "wall_s"}
    assert res["config"]["quick"] is True and res["config"]["repeats"] == 2
    assert set(res["workloads"]) == set(MLPS) >= {"W1", "W2", "W3", "W4"}
    assert res["nets"] == {}
    m = res["machine"]
    for key in ("cpu", "cores", "jax", "numpy", "torch", "date", "backend"):
        assert m[key], key
    assert _positive(res["peak"]["gflops"]) and _positive(res["wall_s"])


def test_a_row_per_system_and_workload(quick):
    res, _ = quick
    for name, w in res["workloads"].items():
        systems = {r["system"] for r in w["rows"]}
        assert systems == SYSTEMS, name
        for r in w["rows"]:
            assert r["status"] == "ok" or r["status"] == "not installed", (name, r)
            assert r["dtype"] in ("float32", "float64")
        ok = {(r["system"], r["variant"], r["dtype"]) for r in w["rows"] if r["status"] == "ok"}
        assert ("fnnet", "", "float32") in ok and ("jax.grad", "", "float32") in ok
        assert ("fnnet.fit", "", "float32") in ok and ("numpy-seed", "", "float64") in ok
        assert ("reference", "", "float64") in ok
        assert _positive(w["flops"]) and 0 < w["needed_flops"] < w["flops"]
        assert _positive(w["matmul_ceiling"]["gflops"])


def test_numbers_positive_and_ratios_consistent(quick):
    res, _ = quick
    peak = res["peak"]["gflops"]
    for name, w in res["workloads"].items():
        rows = [r for r in w["rows"] if r["status"] == "ok"]
        base = next(r for r in rows if (r["system"], r["variant"], r["dtype"]) == ("fnnet", "", "float32"))
        for r in rows:
            assert len(r["times_s"]) == 2 and all(_positive(t) for t in r["times_s"])
            assert min(r["times_s"]) <= r["median_s"] <= max(r["times_s"])
            assert r["min_s"] == min(r["times_s"]) and r["max_s"] == max(r["times_s"])
            assert r["ratio_to_fnnet"] == pytest.approx(r["median_s"] / base["median_s"], rel=1e-12)
            assert len(r["cpu_s"]) == 2 and all(c >= 0 for c in r["cpu_s"])    # process CPU time
            if r["cpu_ratio_to_fnnet"] is not None:
                assert r["cpu_ratio_to_fnnet"] == pytest.approx(r["cpu_median_s"] / base["cpu_median_s"], rel=1e-12)
            lo, hi = r["ratio_to_fnnet_range"]
            assert 0 < lo <= hi
            assert r["gflops"] == pytest.approx(w["flops"] / r["median_s"] / 1e9, rel=1e-12)
            assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / peak, rel=1e-12)
            if r["compile_s"] is not None:
                assert r["compile_s"] >= 0
            if r["system"] in ("fnnet", "jax.grad"):
                assert _positive(r["compile_s"])
        assert base["ratio_to_fnnet"] == 1.0


def test_same_training_same_loss(quick):
    """Every full (not extrapolated) row trained the same steps from the same weights."""
    res, _ = quick
    for name, w in res["workloads"].items():
        shuffled = w["batch"] < w["rows_per_epoch"]          # fit shuffles minibatches
        losses = [r["final_loss"] for r in w["rows"] if r["status"] == "ok"
                  and r["final_loss"] is not None and not (shuffled and r["system"] == "fnnet.fit")
                  and r["variant"] != "bf16 matmuls"]          # bf16 rounds differently by design
        assert losses and all(math.isfinite(v) for v in losses)
        assert max(losses) - min(losses) <= 1e-3 * max(1.0, abs(min(losses))), (name, losses)
        for r in w["rows"]:
            if r["status"] == "ok" and r["extrapolated_from_steps"]:
                assert r["final_loss"] is None and r["extrapolated_from_steps"] < r["steps"]


def test_targets(quick):
    res, _ = quick
    assert len(res["targets"]) >= 9
    for t in res["targets"]:
        assert t["op"] in (">=", "<=")
        if t["measured"] is not None:
            assert t["met"] == (t["measured"] >= t["bound"] if t["op"] == ">=" else t["measured"] <= t["bound"])


def test_markdown(quick):
    res, md = quick
    assert md.startswith("# fnnet benchmark")
    assert res["machine"]["cpu"] in md and f"jax {res['machine']['jax']}" in md
    assert "## Targets" in md and "| workload | target | measured | met |" in md
    for name, w in res["workloads"].items():
        assert f"## {name}:" in md
        section = md.split(f"## {name}:")[1].split("\n## ")[0]
        main = section.split("| system |")[1]                 # the timing table, after its header
        table = [l for l in main.splitlines()[2:] if l.startswith("| ")]
        assert len(table) == len(w["rows"])
        for line in table:
            assert line.count("|") == 12, line


def test_help_and_bad_arguments(capsys):
    assert cli.main(["--help"]) == 0
    assert "--quick" in capsys.readouterr().out
    assert cli.main(["--workloads", "W9", "--out", "/nonexistent"]) == 2


def test_step_memory(quick):
    """Every workload reports the compiled step's bytes for the three gradients."""
    res, md = quick
    for name, w in res["workloads"].items():
        mem = w["step_memory"]
        assert mem["batch"] == w["batch"] and set(mem["kinds"]) == {"fnnet", "jax.grad", "custom_vjp"}
        for m in mem["kinds"].values():
            assert all(isinstance(v, int) and v >= 0 for v in m.values()), (name, m)
            assert m["peak_bytes"] == m["argument_bytes"] + m["output_bytes"] - m["alias_bytes"] + m["temp_bytes"]
            assert m["temp_bytes"] > 0
        assert "| gradient | temporaries MB | peak MB |" in md.split(f"## {name}:")[1]
    t = next(t for t in res["targets"] if t["kind"] == "memory")
    mem = res["workloads"][t["workload"]]["step_memory"]["kinds"]
    assert t["measured"] == mem["fnnet"]["temp_bytes"] / mem["jax.grad"]["temp_bytes"]


def test_register_rejects_a_duplicate_name():
    with pytest.raises(ValueError, match="W1.*already registered"):
        workloads.register(workloads.FULL["W1"])
    assert workloads.get(["W4"], quick=True)[0].sizes[-1] == 10


def test_bf16_row_and_accuracy(quick):
    """W3 has an opt-in bf16 row; its loss and accuracy stay near float32's (not equal)."""
    res, _ = quick
    rows = {(r["system"], r["variant"]): r for r in res["workloads"]["W3"]["rows"] if r["status"] == "ok"}
    low, base = rows[("fnnet", "bf16 matmuls")], rows[("fnnet", "")]
    assert low["dtype"] == "float32" and "bfloat16" in low["note"]
    assert abs(low["final_loss"] - base["final_loss"]) <= 0.05 * base["final_loss"]
    for r in rows.values():
        if r["final_loss"] is not None:
            assert 0.0 <= r["final_accuracy"] <= 1.0
    assert ("fnnet.fit", "autodiff") in rows
