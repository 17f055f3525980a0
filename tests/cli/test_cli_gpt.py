"""`fnnet gpt train|sample`: a tiny run end to end with every output, resuming, and bad input
(exit 2 and one line on stderr, never a traceback)."""
import contextlib
import io
import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import fnnet
from fnnet.cli import gpt as cli
from fnnet.cli import main
from fnnet.cli import session

TINY = ["--max-chars", "4000", "--layers", "1", "--heads", "2", "--dim", "8", "--context", "16",
        "--batch-size", "16"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GPT trained for 2 epochs with every output, once: {"rc", "out", "err" (what it
    printed), "json", "png", "ckpt" (the files it wrote)}. The checkpoint is also the one the
    bad-input tests read."""
    d = tmp_path_factory.mktemp("gpt")
    run = {"json": d / "run.json", "png": d / "curves.png", "ckpt": d / "gpt.npz"}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        run["rc"] = main(["gpt", "train", *TINY, "--epochs", "2", "--sample", "20", "--prompt", "T",
                          "--save", str(run["ckpt"]), "--json", str(run["json"]), "--plot", str(run["png"])])
    return {**run, "out": out.getvalue(), "err": err.getvalue()}


def test_gpt_train_tiny_writes_every_output(capsys, trained):
    out, err, ck = trained["out"], trained["err"], trained["ckpt"]
    assert trained["rc"] == 0, err
    assert "bigram baseline" in out and "nats/char vs bigram" in out
    assert "epoch 2/2 (100%)" in err and "val_loss" in err                 # the progress bar
    assert "--- greedy ---" in out and "--- temperature 0.8 ---" in out
    assert trained["png"].read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(trained["json"].read_text())
    assert summary["final_epoch"] == 2 and len(summary["history"]["val_loss"]) == 2
    assert summary["settings"]["dim"] == 8 and summary["bigram_val_loss"] > 0
    c = fnnet.restore(ck, optimizer=optax.adamw(optax.cosine_decay_schedule(3e-3, 1), weight_decay=0.01))
    assert c.epoch == 2 and c.opt_state is not None                         # resumable, not just params
    assert main(["gpt", "sample", str(ck), "--prompt", "T", "--chars", "30"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("T") and len(text.rstrip("\n")) >= 31


def test_gpt_resume_is_bit_identical(tmp_path, monkeypatch):
    """--checkpoint-every 1 keeps epoch 1 (copied aside by a spy); --resume from it to epoch 3
    equals the run that never stopped."""
    real = session.Saver.save

    def keep(self, r):
        real(self, r)
        shutil.copy(self.path, tmp_path / f"epoch{r.epoch}.npz")
    monkeypatch.setattr(session.Saver, "save", keep)
    common = ["gpt", "train", *TINY, "--epochs", "3", "--sample", "0", "--quiet"]
    assert main([*common, "--save", str(tmp_path / "straight.npz"), "--checkpoint-every", "1"]) == 0
    assert main([*common, "--resume", str(tmp_path / "epoch1.npz"), "--save", str(tmp_path / "resumed.npz")]) == 0
    a, b = fnnet.restore(tmp_path / "straight.npz"), fnnet.restore(tmp_path / "resumed.npz")
    assert a.epoch == b.epoch == 3
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def one_line_exit_2(capsys, argv, msg):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("fnnet gpt") and msg in err, err
    return out


@pytest.mark.parametrize("argv,msg", [
    (["gpt"], "the following arguments are required: {train,sample}"),
    (["gpt", "fly"], "invalid choice: 'fly'"),
    (["gpt", "train", "--dim", "0"], "--dim: must be >= 1"),
    (["gpt", "train", "--seed", "-1"], "--seed: must be >= 0"),
    (["gpt", "train", "--sample", "-5"], "--sample: must be >= 0"),
    (["gpt", "train", "--lr", "0"], "--lr: must be a finite number > 0"),
    (["gpt", "train", "--save", "gpt.json"], "--save: a checkpoint must end in .npz, got 'gpt.json'"),
    (["gpt", "train", "--save", "/no/such/dir/gpt.npz"], "does not exist"),
    (["gpt", "train", "--checkpoint-every", "2"], "--checkpoint-every needs --save"),
    (["gpt", "train", "--resume", "missing.npz"], "--resume 'missing.npz': no such file"),
    (["gpt", "sample", "x.npz", "--chars", "-3"], "--chars: must be >= 1"),
    (["gpt", "sample", "missing.npz"], "sample missing.npz: "),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, msg):
    one_line_exit_2(capsys, argv, msg)


def test_bad_prompts_checkpoints_and_shapes_exit_2_with_one_line(capsys, tmp_path, trained):
    trained = trained["ckpt"]
    one_line_exit_2(capsys, ["gpt", "sample", str(trained), "--prompt", "€uro"],
                    "--prompt '€uro': characters '€' are not in the corpus's vocabulary")
    one_line_exit_2(capsys, ["gpt", "train", *TINY, "--prompt", "\x01"], "are not in the corpus's vocabulary")
    one_line_exit_2(capsys, ["gpt", "train", *TINY, "--heads", "3"], "--heads 3 must divide --dim 8")
    mlp = fnnet.mlp([64, 10], loss="softmax_cross_entropy")
    fnnet.save(tmp_path / "mlp.npz", mlp, fnnet.init(mlp, jax.random.key(0)))
    one_line_exit_2(capsys, ["gpt", "sample", str(tmp_path / "mlp.npz")], "not a GPT saved by `fnnet gpt train")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    one_line_exit_2(capsys, ["gpt", "sample", str(tmp_path / "junk.npz")], "is not a valid fnnet checkpoint")
    # resuming with other options than the run's is refused before training
    one_line_exit_2(capsys, ["gpt", "train", *TINY[:-2], "--batch-size", "16", "--dim", "16", "--resume",
                             str(trained)], "the checkpoint's net is")
    one_line_exit_2(capsys, ["gpt", "train", *TINY, "--epochs", "2", "--resume", str(trained)],
                    "has already trained 2 epochs and --epochs is 2")


def test_help_names_the_actions_and_every_default(capsys):
    assert main(["gpt", "--help"]) == 0
    assert "{train,sample}" in capsys.readouterr().out
    assert cli.main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--layers LAYERS transformer blocks (default: 2)", "(default: 0.003)", "--resume FILE.npz",
                 "--checkpoint-every N", "--plot FILE.png", "--json FILE", "--quiet", "130 Ctrl-C"):
        assert text in out, text


def test_gpt_alone_in_a_subprocess_names_the_actions_in_one_line():
    r = subprocess.run([sys.executable, "-m", "fnnet", "gpt"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "{train,sample}" in r.stderr and "Traceback" not in r.stderr
