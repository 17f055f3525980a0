"""`fnnet bench --quick` on the nets (CNN, GPT, two L-* layers) through the CLI.

No speed is asserted (speed is measured by `fnnet bench`, never in pytest): only that each
net has its fnnet and jax.grad rows with finite positive times and ratios, that the two
systems trained to the same final loss (the benchmark checks what it times), that the
other systems say "not applicable", and that the Markdown carries the tables and targets.
"""
import json
import math

import pytest

from fnnet.bench import cli, workloads

NETS = ("CNN", "GPT", "L-batchnorm", "L-dropout")     # BatchNorm: layer state; Dropout: a key
OTHERS = {"numpy-seed", "reference", "fnnet.fit", "torch"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_nets")
    rc = cli.main(["--quick", "--repeats", "2", "--quiet", "--out", str(out), "--workloads", ",".join(NETS)])
    assert rc == 0
    return json.loads((out / "results-cpu.json").read_text()), (out / "results-cpu.md").read_text()


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_rows_and_ratios(quick):
    res, _ = quick
    assert res["workloads"] == {} and tuple(res["nets"]) == NETS
    for name, w in res["nets"].items():
        rows = {r["system"]: r for r in w["rows"]}
        assert set(rows) == OTHERS | {"fnnet", "jax.grad"}, name
        for s in ("fnnet", "jax.grad"):
            r = rows[s]
            assert r["status"] == "ok", (name, r)
            assert len(r["times_s"]) == 2 and all(_positive(t) for t in r["times_s"])
            assert _positive(r["compile_s"]) and _positive(r["step_ms"])
            assert r["step_ms"] == pytest.approx(1e3 * r["median_s"] / w["steps"], rel=1e-12)
        for s in OTHERS:
            assert rows[s]["status"].startswith("not applicable"), (name, rows[s])
        c = w["comparison"]
        assert c["time_ratio"] == pytest.approx(rows["fnnet"]["median_s"] / rows["jax.grad"]["median_s"], rel=1e-12)
        for k in ("time_ratio", "cpu_ratio", "temp_ratio", "peak_ratio", "time_ratio_best"):
            assert _positive(c[k]), (name, k, c[k])
        assert 0 < c["time_ratio_range"][0] <= c["time_ratio_range"][1]
        for s in ("fnnet", "jax.grad"):
            assert _positive(w["step_memory"][s]["temp_bytes"]) and _positive(w["step_memory"][s]["peak_bytes"])


def test_both_systems_train_to_the_same_loss(quick):
    """Same params, batches, masks and state: the final losses differ by float32 rounding only."""
    res, _ = quick
    for name, w in res["nets"].items():
        rows = {r["system"]: r for r in w["rows"]}
        f, a = rows["fnnet"]["final_loss"], rows["jax.grad"]["final_loss"]
        assert _positive(f) and _positive(a)
        assert f == pytest.approx(a, rel=1e-4), name          # a few float32 steps apart
        assert w["comparison"]["loss_abs_diff"] == pytest.approx(abs(f - a), abs=1e-15)


def test_gpt_memory_and_targets(quick):
    res, md = quick
    gpt = res["nets"]["GPT"]
    for s in ("fnnet", "jax.grad"):
        assert _positive(gpt["recompute_step_memory"][s]["temp_bytes"])
    att = gpt["attention_memory"]["recompute"]
    assert att["True"]["cache_bytes"] < att["False"]["cache_bytes"]       # lse [B,H,T,1] < p [B,H,T,T]
    targets = {(t["workload"], t["kind"]): t for t in res["targets"]}
    assert set(targets) == {(n, "time_ratio") for n in NETS} | {("GPT", "memory")}
    for t in targets.values():
        assert _positive(t["measured"]) and isinstance(t["met"], bool)
    assert targets[("GPT", "memory")]["measured"] == pytest.approx(gpt["comparison"]["temp_ratio"])
    assert "## Nets: fnnet's hand-written backward vs jax.grad" in md
    for name in NETS:
        assert f"### {name}:" in md and f"| {name} | fnnet not slower than jax.grad (ratio ≤ 1.0) |" in md
    assert "| GPT | fnnet step temporaries below jax.grad's |" in md
    assert "not applicable" in md and "CausalSelfAttention alone" in md and "Largest final-loss difference" in md


def test_defaults_aliases_and_wrong_names(capsys):
    assert workloads.default_names() == ("W1", "W2", "W3", "W4", "CNN", "GPT")
    layers = workloads.expand("layers")
    assert len(layers) == 17 and all(n.startswith("L-") for n in layers) and "L-relu" in layers
    assert workloads.expand("CNN,layers,L-conv")[:2] == ["CNN", "L-conv"]
    assert cli.main(["--quick", "--workloads", "CNN,L-nope", "--out", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "unknown workload(s) ['L-nope']" in err and "L-rmsnorm" in err and "layers" in err
