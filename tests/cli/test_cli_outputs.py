"""`fnnet train` never loses a trained model: output paths checked before training,
each output written on its own (item 8); a diverged run said so, with no accuracy from
NaN and no silent checkpoint (item 2); per-epoch losses in --json, "1 epoch" (item 13);
`fnnet --version` (item 12)."""
import json
import os
import re

import pytest

import fnnet
from fnnet import cli
from fnnet.cli.train import main

UNWRITABLE = "/proc/fnnet-test-model.npz"       # /proc refuses new files, even to root


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")
@pytest.mark.parametrize("opt", ["--save", "--json", "--plot"])
def test_unwritable_path_is_refused_before_training(tmp_path, capsys, opt):
    path = UNWRITABLE.replace(".npz", ".png") if opt == "--plot" else UNWRITABLE
    rc = main(["--dataset", "xor", "--epochs", "2", "--quiet", opt, path, "--json" if opt != "--json"
               else "--save", str(tmp_path / ("run.json" if opt != "--json" else "m.npz"))])
    out, err = capsys.readouterr()
    assert rc == 2 and f"{opt} '{path}': cannot create a file in /proc" in err
    assert "training:" not in out and os.listdir(tmp_path) == []


def test_empty_path_is_refused(capsys):
    assert main(["--dataset", "xor", "--json", ""]) == 2
    assert "--json '': the path is empty" in capsys.readouterr().err


def test_a_failed_save_does_not_stop_the_plot_and_json(tmp_path, capsys, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fnnet, "save", full)
    j, png = tmp_path / "run.json", tmp_path / "c.png"
    rc = main(["--dataset", "xor", "--epochs", "1", "--quiet", "--save", str(tmp_path / "m.npz"),
               "--json", str(j), "--plot", str(png)])
    out, err = capsys.readouterr()
    assert rc == 1 and f"cannot write output --save {tmp_path / 'm.npz'}: [Errno 28] No space" in err
    assert png.stat().st_size > 1000 and json.loads(j.read_text())["epochs"] == 1
    assert "(1 epoch, compile included)" in out and "1 epochs" not in out
    assert sorted(os.listdir(tmp_path)) == ["c.png", "run.json"]          # no temp files left


def test_json_has_per_epoch_losses(tmp_path, capsys):
    j = tmp_path / "run.json"
    assert main(["--dataset", "xor", "--epochs", "3", "--quiet", "--json", str(j)]) == 0
    h = json.loads(j.read_text())["history"]
    assert [len(h[k]) for k in ("train_loss", "test_loss", "test_accuracy")] == [3, 3, 3]
    assert all(isinstance(v, float) for v in h["train_loss"])


def test_divergence_is_said_and_nothing_non_finite_is_reported_or_saved(tmp_path, capsys):
    """blobs + half_sse at lr 0.01: the second step overflows. Before: 'final loss: train inf,
    test inf', accuracies printed, exit 0."""
    ck, j, png = tmp_path / "m.npz", tmp_path / "run.json", tmp_path / "c.png"
    rc = main(["--dataset", "blobs", "--loss", "half_sse", "--epochs", "3", "--quiet", "--save", str(ck),
               "--json", str(j), "--plot", str(png)])
    out, err = capsys.readouterr()
    assert rc == 1 and "training diverged at epoch" in err and "kept" in err
    m = re.search(r"final loss \(last finite params, after epoch (\d)\): train (\S+), test (\S+)", out)
    assert m and all(float(v) < float("inf") for v in m.groups()[1:]), out
    net, params = fnnet.load(ck)
    x, labels = fnnet.datasets.blobs()[:2]
    loss = float(fnnet.loss(net, params, x, fnnet.datasets.one_hot(labels, 3, x.dtype)))
    assert loss < float("inf")                          # the checkpoint has a finite training loss
    s = json.loads(j.read_text())
    assert s["diverged"] is True and s["kept_finite_params"] is True and s["epochs"] == int(m[1])


def test_divergence_in_the_first_epoch_draws_no_empty_plot(tmp_path, capsys):
    png = tmp_path / "c.png"
    rc = main(["--dataset", "blobs", "--loss", "half_sse", "--lr", "1e30", "--epochs", "3", "--quiet",
               "--plot", str(png)])
    out, err = capsys.readouterr()
    assert rc == 1 and "not drawing" in err and not png.exists()
    assert "the initial params" in out


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fnnet {fnnet.__version__}"
