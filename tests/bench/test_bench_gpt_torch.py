"""`fnnet bench --workloads GPT-torch` (tiny config) and the torch twin of fnnet.gpt.

No speed is asserted (speed is measured by `fnnet bench` on a quiet machine, never in
pytest): only that every system has a row, that fnnet, jax.grad, torch eager and
torch.compile start from the same loss (the same model, weights and tokens), that the
torch twin's loss and gradients equal fnnet's, and that every table carries its load and
publishability.
"""
import json
import math

import numpy as np
import pytest

from fnnet.bench import cli, gpt_torch

torch = pytest.importorskip("torch")     # the bench extra; the rows say "not installed" without it


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_gpt_torch")
    rc = cli.main(["--quick", "--repeats", "2", "--quiet", "--out", str(out), "--workloads", "GPT-torch"])
    assert rc == 0
    assert not (out / "results-cpu.json").exists()          # GPT-torch alone: only its own files
    return json.loads((out / "gpt-torch-cpu.json").read_text()), (out / "gpt-torch-cpu.md").read_text()


def test_every_system_has_a_row_and_the_same_first_loss(quick):
    res, _ = quick
    (table,) = res["tables"]
    assert table["config"]["name"] == "tiny" and table["steps"] == 2 and table["repeats"] == 2
    rows = {r["system"]: r for r in table["rows"]}
    assert set(rows) == set(gpt_torch.SYSTEMS)
    for name in ("fnnet.fit", "fnnet jit step", "jax.grad jit step", "torch eager"):
        r = rows[name]
        assert r["status"] == "ok", r
        assert len(r["ms_per_step_runs"]) == 2 and all(math.isfinite(t) and t > 0 for t in r["ms_per_step_runs"])
        assert r["ms_per_step"] == pytest.approx(float(np.median(r["ms_per_step_runs"])))
    # torch.compile: timed, or a row that says why it could not compile on this machine
    assert rows["torch.compile"]["status"] == "ok" or rows["torch.compile"]["status"].startswith("failed")
    losses = [r["first_loss"] for r in rows.values() if r["status"] == "ok" and r["first_loss"] is not None]
    assert len(losses) >= 3
    assert np.allclose(losses, losses[0], rtol=1e-5), losses
    by = {k: v for k, v in rows.items() if v["status"] == "ok"}
    for key, ratio in table["speedups"].items():
        theirs, ours = key.split(" / ")
        assert ratio == pytest.approx(by[theirs]["ms_per_step"] / by[ours]["ms_per_step"])


def test_load_recorded_and_publishability(quick):
    res, md = quick
    (table,) = res["tables"]
    load1 = [float(table[k].split()[0]) for k in ("load_before", "load_after")]
    assert table["publishable"] == all(v <= 1.0 for v in load1)
    assert ("NOT PUBLISHABLE" in md) == (not table["publishable"])
    assert f"before {table['load_before']}, after {table['load_after']}" in md
    assert res["config"]["quick"] is True and res["peak"]["gflops"] > 0
    assert res["machine"]["fnnet_xla_flags_status"] in ("set", "user", "opted out", "too late")


def test_publishable_rule():
    from fnnet.bench.timing import load_record, publishable
    assert publishable("0.50 0.40 0.30", "1.00 0.90 0.80")
    assert not publishable("0.50 0.40 0.30", "1.20 0.40 0.30")
    assert not publishable("3.1 2 1", "0.2 0.2 0.2")
    assert not publishable("?", "0.2 0.2 0.2")              # unknown load: never publishable
    assert load_record("2.0 1 1", "0.5 1 1") == {"load_before": "2.0 1 1", "load_after": "0.5 1 1",
                                                  "publishable": False}


def _fake_machine(loads):
    """A clock that advances only when slept on, and a load reading that walks through `loads`."""
    t = [0.0]
    it = iter(loads)
    return dict(clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s),
                read=lambda: next(it))


def test_settle_waits_for_the_benchmarks_own_load_to_leave():
    from fnnet.bench.timing import load_record, settle
    # the table's own two threads left the average at 1.9; it decays below 1 after three polls
    text, waited = settle(150, poll_s=3, **_fake_machine(["1.90 1.2 1", "1.60 1 1", "1.20 1 1", "0.95 1 1"]))
    assert (text, waited) == ("0.95 1 1", 9.0)
    assert load_record("0.40 1 1", text, waited)["publishable"]
    # something else keeps running: the load never falls, the wait ends at the limit, not publishable
    text, waited = settle(12, poll_s=3, **_fake_machine(["2.10 2 2"] * 10))
    assert waited == 12.0 and not load_record("0.40 1 1", text, waited)["publishable"]
    # a quiet machine: read once, no wait; --quick (limit 0) never waits either
    assert settle(150, **_fake_machine(["0.30 1 1"])) == ("0.30 1 1", 0.0)
    assert settle(0, **_fake_machine(["5.00 5 5"])) == ("5.00 5 5", 0.0)


def test_load_line_says_how_long_it_waited():
    from fnnet.bench.timing import load_line, load_record
    line = load_line(load_record("0.40 1 1", "0.95 1 1", 42.04))
    assert "after 0.95 1 1 (read after 42 s of quiet" in line and line.endswith(": publishable.")
    assert "quiet" not in load_line(load_record("0.40 1 1", "0.95 1 1"))


def test_configs():
    assert [c.name for c in gpt_torch.parse_configs("S,M,L,XL")] == ["S", "M", "L", "XL"]
    s = gpt_torch.CONFIGS["S"]
    assert (s.context, s.layers, s.dim, s.batch) == (64, 2, 64, 32)      # the README model
    for c in gpt_torch.CONFIGS.values():
        assert c.dim % c.heads == 0
    with pytest.raises(ValueError, match="unknown GPT config"):
        gpt_torch.parse_configs("S,XXL")
    assert cli.main(["--workloads", "GPT-torch", "--gpt-configs", "Q", "--quiet", "--out", "/nonexistent"]) == 2


def test_torch_twin_matches_fnnet_loss_and_gradients():
    """The same weights give the same loss and the same gradients in torch and fnnet (float32)."""
    import jax
    import jax.numpy as jnp

    import fnnet
    from fnnet.bench.gpt_torch_model import build
    net = fnnet.gpt(gpt_torch.VOCAB, 8, 2, 2, 8)
    params = fnnet.init(net, jax.random.key(3), jnp.float32)
    # non-trivial norms and biases, so that every parameter's copy is exercised
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(4), len(leaves))
    params = jax.tree.unflatten(tree, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    ids, tgt = gpt_torch.data(gpt_torch.Config("t", 8, 2, 8, 3, heads=2), 1, seed=5)
    loss, grads = fnnet.value_and_grad(net, params, jnp.asarray(ids), jnp.asarray(tgt))
    model = build(params, heads=2)
    tloss = model.loss(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(tgt.astype(np.int64)))
    tloss.backward()
    assert float(tloss.detach()) == pytest.approx(float(loss), rel=1e-5)
    lm = grads[0]
    assert np.allclose(model.wte.grad.numpy(), np.asarray(lm.encoder.wte), atol=1e-5)
    assert np.allclose(model.wpe.grad.numpy(), np.asarray(lm.encoder.wpe), atol=1e-5)
    blk, (attn, mlp) = model.blocks[1], (lm.body[2], lm.body[3])
    assert np.allclose(blk.w_qkv.grad.numpy().T, np.asarray(attn[1].w_qkv), atol=1e-5)
    assert np.allclose(blk.ln1_g.grad.numpy(), np.asarray(attn[0].gamma), atol=1e-5)
    assert np.allclose(blk.w1.grad.numpy().T, np.asarray(mlp[1].w), atol=1e-5)
    assert np.allclose(blk.b2.grad.numpy(), np.asarray(mlp[3].b), atol=1e-5)
    assert np.allclose(model.lnf_b.grad.numpy(), np.asarray(lm.body[-1].beta), atol=1e-5)
