"""`fnnet train` end to end, in-process: outputs, files, exit codes, --check, divergence."""
import json
import re
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnnet
from fnnet import datasets
from fnnet.cli import train as _cli_train
from fnnet.cli import plot as _plot
from fnnet.cli.train import main


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])      # IHDR width, height


@pytest.fixture
def figures(monkeypatch):
    """Spy on the figures the CLI draws: [(path, Figure)]."""
    drawn = []
    real = _plot.save_figure

    def spy(path, *a, **k):
        fig = real(path, *a, **k)
        drawn.append((path, fig))
        return fig
    monkeypatch.setattr(_plot, "save_figure", spy)
    return drawn


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_digits_short_run_prints_accuracies_and_writes_every_file(tmp_path, capsys, figures):
    j, ck, png = tmp_path / "run.json", tmp_path / "model.npz", tmp_path / "curves.png"
    rc = main(["--epochs", "20", "--json", str(j), "--save", str(ck), "--plot", str(png)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "seed 001" in out and "1617 train / 180 test" in out
    assert "Dense(128) -> Sigmoid() -> Dense(128) -> Sigmoid() -> Dense(10)" in out
    assert "sgd lr 0.5, 20 epochs, full batch" in out
    m = re.search(r"test accuracy: (\d+\.\d\d)% \((\d+)/180\)", out)
    assert m and abs(float(m[1]) - 100 * int(m[2]) / 180) < 0.006
    assert re.search(r"train accuracy: \d+\.\d\d% \(\d+/1617\)", out)
    assert re.search(r"time: \d+\.\d\d s training", out)
    assert "epoch 20/20" in err and "loss" in err            # the live progress bar

    summary = json.loads(j.read_text())
    assert summary["epochs"] == 20 and summary["diverged"] is False
    assert summary["settings"]["sizes"] == [64, 128, 128, 10] and summary["settings"]["lr"] == 0.5
    assert summary["settings"]["optimizer"] == "sgd" and summary["settings"]["init"] == "normal"
    assert 0 <= summary["test_accuracy"] <= 1 and summary["seconds"] >= summary["train_seconds"] > 0
    assert round(summary["test_accuracy"] * 180) == int(m[2])

    net, params = fnnet.load(ck)
    assert net == fnnet.mlp([64, 128, 128, 10], activation="sigmoid", loss="softmax_cross_entropy",
                            w_init="normal")
    _, _, x_te, y_te = datasets.digits()
    hits = int((_plot.predicted_class(net, params, x_te) == y_te).sum())
    assert hits == round(summary["test_accuracy"] * 180)
    assert png.stat().st_size > 10_000 and png_size(png)[0] > 600
    [(_, fig)] = figures
    assert titles(fig)[0] == "loss per epoch" and titles(fig)[1].startswith("test accuracy per epoch")


def test_blobs_minibatches_with_decision_regions(tmp_path, capsys, figures):
    png = tmp_path / "blobs.png"
    rc = main(["--dataset", "blobs", "--epochs", "3", "--batch-size", "500", "--lr", "0.05",
               "--quiet", "--plot", str(png)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "seed 002" in out and "13500 train / 1500 test" in out and "l2=0.01" in out
    assert "batch size 500, reshuffled each epoch" in out
    assert re.search(r"test accuracy: \d+\.\d\d% \(\d+/1500\)", out)
    assert err == ""                                            # --quiet: no progress bar
    w, h = png_size(png)
    assert w > 1000 and h > 400
    [(_, fig)] = figures
    assert titles(fig)[1].startswith("decision regions, test accuracy")
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any(t.startswith("test point, right") for t in legend)
    assert any(t.startswith("test point, wrong") for t in legend)


def test_xor_seed_003_defaults_solve_it(tmp_path, capsys):
    j = tmp_path / "xor.json"
    rc = main(["--dataset", "xor", "--quiet", "--json", str(j)])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "Dense(3) -> Tanh() -> Dense(1) -> Tanh() | loss=mse" in out
    assert "sgd lr 0.1, 1000 epochs, batch size 1" in out and "biases normal" in out
    assert "test accuracy: 100.00% (4/4)" in out
    s = json.loads(j.read_text())
    assert s["settings"]["batch_size"] == 1 and s["final_loss"] < 0.05


def test_float64_and_adam_round_trip(tmp_path, capsys):
    ck = tmp_path / "m.npz"
    rc = main(["--dataset", "xor", "--dtype", "float64", "--optimizer", "adam", "--epochs", "5",
               "--quiet", "--save", str(ck)])
    out, _ = capsys.readouterr()
    assert rc == 0 and "adam lr 0.001" in out and "float64" in out
    _, params = fnnet.load(ck)
    assert params[0].w.dtype == jnp.float64


@pytest.mark.parametrize("argv,msg", [
    (["--lr", "-1"], "--lr: must be a finite number > 0"),
    (["--lr", "fast"], "--lr: must be a number"),
    (["--epochs", "0"], "--epochs: must be >= 1"),
    (["--batch-size", "0"], "--batch-size: must be >= 1"),
    (["--l2", "nan"], "--l2: must be a finite number >= 0"),
    (["--seed", "-3"], "--seed: must be >= 0"),
    (["--dataset", "mnist"], "invalid choice: 'mnist'"),
    (["--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["--init", "magic"], "invalid choice: 'magic'"),
    (["--sizes", "64,a,10"], "comma-separated integers"),
    (["--sizes", "64"], ">= 2 positive sizes"),
    (["--sizes", "63,128,10"], "digits has 64 input features and 10 outputs"),
    (["--dataset", "blobs", "--sizes", "2,5,2"], "blobs has 2 input features and 3 outputs"),
    (["--dataset", "xor", "--loss", "softmax_cross_entropy"], "needs >= 2 classes"),
    (["--output", "tanh"], "takes logits"),
    (["--plot", "curves.jpg"], "--plot: a figure must end in .png, .pdf or .svg, got 'curves.jpg'"),
    (["--save", "/no/such/dir/m.npz"], "does not exist"),
    (["--save", "model.json"], "--save: a checkpoint must end in .npz, got 'model.json'"),
    (["--resume", "missing.npz"], "--resume 'missing.npz': no such file"),
    (["--checkpoint-every", "10"], "--checkpoint-every needs --save"),
    (["--checkpoint-every", "0", "--save", "m.npz"], "--checkpoint-every: must be >= 1"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--fsdp"], "--fsdp splits the run over devices: give --devices N"),
    (["--tensor-parallel", "--fsdp", "--devices", "2"], "not allowed with argument"),
    (["--batchnorm"], "--batchnorm is a --model cnn setting"),
    (["--model", "cnn", "--dropout", "1"], "a dropout rate must be in [0, 1), got 1"),
    (["--model", "cnn", "--dropout", "x"], "expected a number in [0, 1)"),
])
def test_bad_options_exit_2_with_argparse_error(capsys, argv, msg):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("fnnet train: error: ") and err.count("\n") == 1, err   # one line
    assert msg in err and "Traceback" not in err, err


def test_help_lists_every_option(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--dataset", "--sizes", "--activation", "--loss", "--optimizer", "--lr", "--epochs",
                "--batch-size", "--l2", "--seed", "--init", "--dtype", "--plot", "--save", "--check",
                "--quiet", "--json", "--model", "--batchnorm", "--dropout", "--devices", "--fsdp",
                "--tensor-parallel"):
        assert opt in out


def test_defaults_per_dataset_and_optimizer():
    parser = _cli_train.build_parser()

    def settings(*argv):
        return _cli_train.resolve(parser.parse_args(list(argv)), parser)
    d = settings()
    assert (d["sizes"], d["activation"], d["output"], d["loss"], d["lr"], d["epochs"], d["batch_size"],
            d["init"], d["b_init"], d["l2"]) == ((64, 128, 128, 10), "sigmoid", "identity",
                                                  "softmax_cross_entropy", 0.5, 1500, None, "normal", "zeros", 0.0)
    b = settings("--dataset", "blobs")
    assert (b["sizes"], b["activation"], b["lr"], b["epochs"], b["l2"]) == ((2, 5, 3), "relu", 0.01, 5001, 0.01)
    x = settings("--dataset", "xor")
    assert (x["output"], x["loss"], x["batch_size"], x["b_init"]) == ("tanh", "mse", 1, "normal")
    assert settings("--dataset", "xor", "--loss", "sigmoid_binary_cross_entropy")["output"] == "identity"
    assert settings("--optimizer", "momentum")["lr"] == pytest.approx(0.05)
    assert settings("--optimizer", "adadelta")["lr"] == 1.0
    assert settings("--optimizer", "rmsprop", "--lr", "0.3")["lr"] == 0.3


# half_sse sums over 13500 x 3 elements: at blobs' lr 0.01 its second step overflows to inf
# (main reported "final loss: train inf, test inf" with accuracies and exit 0), so it gets a
# step size that trains; the divergence itself is tested below.
@pytest.mark.parametrize("loss,lr", [("mse", "0.01"), ("half_sse", "1e-5"), ("sigmoid_binary_cross_entropy", "0.01")])
def test_non_softmax_losses_train_on_one_hot_targets(loss, lr, capsys):
    rc = main(["--dataset", "blobs", "--loss", loss, "--epochs", "2", "--quiet", "--lr", lr])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f"loss={loss}" in out and re.search(r"test accuracy: \d+\.\d\d% \(\d+/1500\)", out)
    assert re.search(r"final loss: train \d[^,]*, test \d", out), out          # finite numbers


def test_check_passes_then_trains(capsys):
    rc = main(["--dataset", "xor", "--check", "--epochs", "2", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "gradient check on the initial params" in out and "result: OK" in out
    assert "test accuracy:" in out


def test_check_failure_exits_1_without_training(capsys, monkeypatch):
    def wrong_backward(self, params, cache, dy):
        return (), dy * (1 - cache)            # the bug: 1 - t instead of 1 - t²
    monkeypatch.setattr(fnnet.Tanh, "backward", wrong_backward)
    rc = main(["--dataset", "xor", "--check", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "gradient check FAILED" in err and "test accuracy" not in out


def test_divergence_exits_1_and_saves_last_finite_params(tmp_path, capsys):
    ck, j = tmp_path / "m.npz", tmp_path / "run.json"
    rc = main(["--dataset", "blobs", "--lr", "1e6", "--epochs", "30", "--quiet", "--save", str(ck),
               "--json", str(j)])
    out, err = capsys.readouterr()
    assert rc == 1
    m = re.search(r"training diverged at epoch (\d+) of 30.*lower --lr \(now 1e\+06\)", err)
    assert m, err
    net, params = fnnet.load(ck)                       # load checks every value is finite
    assert all(bool(jnp.isfinite(a).all()) for a in jax.tree.leaves(params))
    s = json.loads(j.read_text())                      # strict JSON: no NaN/Infinity tokens
    assert s["diverged"] is True and s["diverged_epoch"] == int(m[1]) and s["epochs"] == int(m[1]) - 1
    assert "last finite params" in out


def test_unwritable_output_exits_1_with_message(tmp_path, capsys, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fnnet, "save", full)
    rc = main(["--dataset", "xor", "--epochs", "2", "--quiet", "--save", str(tmp_path / "m.npz")])
    out, err = capsys.readouterr()
    assert rc == 1 and "cannot write output" in err and "No space left" in err
    assert "test accuracy:" in out                     # the results were printed first


def test_dispatcher_runs_train(capsys):
    from fnnet import cli
    assert cli.main(["train", "--epochs", "0"]) == 2
    assert "fnnet train: error: argument --epochs: must be >= 1" in capsys.readouterr().err


def test_predicted_class_rules():
    net = fnnet.mlp([2, 1], output="tanh", loss="mse")
    params = (fnnet.DenseParams(jnp.array([[1.0], [0.0]], jnp.float32), jnp.zeros(1, jnp.float32)),
              ())
    x = np.array([[0.2, 0.0], [0.9, 0.0]], np.float32)
    assert _plot.predicted_class(net, params, x).tolist() == [0, 1]


def test_cnn_with_batchnorm_and_dropout_trains_checks_and_saves_its_state(tmp_path, capsys, figures):
    ck, j, png = tmp_path / "bn.npz", tmp_path / "cnn.json", tmp_path / "cnn.png"
    rc = main(["--model", "cnn", "--batchnorm", "--dropout", "0.2", "--epochs", "1", "--quiet",
               "--check", "--save", str(ck), "--json", str(j), "--plot", str(png)])
    out, _ = capsys.readouterr()
    assert rc == 0, out
    assert "BatchNorm" in out and "Dropout(0.2)" in out and "result: OK" in out
    assert "init: fnnet.cnn's" in out and "biases" not in out
    # the figure and the summary describe the CNN, not the MLP defaults
    title = figures[0][1]._suptitle.get_text()
    assert "--model cnn" in title and "BatchNorm, dropout 0.2" in title and "adam lr 0.001, batch 32" in title
    assert "sigmoid" not in title and "64-128-128-10" not in title
    settings = json.loads(j.read_text())["settings"]
    assert settings["model"] == "cnn" and settings["optimizer"] == "adam"
    assert not {"sizes", "activation", "output", "b_init"} & set(settings), settings
    # --save keeps adam's state and the epoch: --resume continues with the running statistics
    assert fnnet.restore(ck, optimizer=optax.adam(1e-3)).opt_state is not None
    assert main(["--model", "cnn", "--batchnorm", "--dropout", "0.2", "--epochs", "2", "--quiet",
                 "--resume", str(ck)]) == 0
    assert "resuming: " in capsys.readouterr().out
    acc = float(re.search(r"test accuracy: ([0-9.]+)%", out).group(1)) / 100
    ck_ = fnnet.restore(ck)
    assert ck_.state is not None and any(s != () for s in ck_.state)       # running statistics saved
    _, _, x_te, y_te = datasets.digits()
    x_te = np.asarray(x_te, np.float32).reshape(-1, 8, 8, 1)
    assert fnnet.accuracy(ck_.net, ck_.params, x_te, y_te, state=ck_.state) == pytest.approx(acc, abs=1e-4)


def _one_line(capsys, argv, msg):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err and msg in err, err


def test_save_keeps_the_optimizer_state_and_epoch_and_resume_refuses_what_does_not_fit(tmp_path, capsys):
    ck = tmp_path / "m.npz"
    assert main(["--sizes", "64,8,10", "--optimizer", "momentum", "--epochs", "3", "--quiet",
                 "--save", str(ck)]) == 0
    capsys.readouterr()
    c = fnnet.restore(ck, optimizer=optax.sgd(0.05, momentum=0.9))
    assert c.epoch == 3 and c.opt_state is not None                          # was None before
    base = ["--sizes", "64,8,10", "--quiet", "--resume", str(ck)]
    _one_line(capsys, base + ["--optimizer", "momentum", "--epochs", "3"],
              "has already trained 3 epochs and --epochs is 3 (the total, not more)")
    _one_line(capsys, base + ["--epochs", "5"], "was saved with another optimizer than the one given")
    _one_line(capsys, ["--quiet", "--resume", str(ck), "--optimizer", "momentum", "--epochs", "5"],
              "the checkpoint's net is")
    _one_line(capsys, base + ["--optimizer", "momentum", "--epochs", "5", "--dtype", "float64"],
              "the checkpoint holds float32 params, the options ask for float64")
    ck.write_bytes(b"PK junk")
    _one_line(capsys, base + ["--optimizer", "momentum", "--epochs", "5"], "is not a valid fnnet checkpoint")


def _fresh_process(tmp_path, *argv):
    """`fnnet train ARGV` in a new process (simulated devices need a JAX that has not started)."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-m", "fnnet", "train", *argv], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


def test_tensor_parallel_and_fsdp_from_the_shell_train_what_one_device_trains(tmp_path, capsys):
    """--devices 4 --tensor-parallel (digits: its hidden 128 split 4 ways) and --devices 4
    --fsdp (blobs, 13500 examples) equal the one-device run; a width the devices do not
    divide is a usage error before training."""
    for flag, axis, dataset, epochs in (("--tensor-parallel", "model", "digits", "6"),
                                        ("--fsdp", "fsdp", "blobs", "4")):
        args = ["--dataset", dataset, "--epochs", epochs, "--dtype", "float64", "--quiet", "--json"]
        proc = _fresh_process(tmp_path, "--devices", "4", flag, *args, "split.json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "split 4 ways" in proc.stdout
        assert main([*args, str(tmp_path / "one.json")]) == 0
        split, one = (json.loads((tmp_path / f).read_text()) for f in ("split.json", "one.json"))
        assert split["settings"]["mesh_axis"] == axis
        for k in ("final_loss", "test_loss"):
            assert abs(split[k] - one[k]) <= 1e-12 * abs(one[k]), (flag, k)
    proc = _fresh_process(tmp_path, "--devices", "3", "--tensor-parallel", "--epochs", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "has 128 units, which the 'model' axis of size 3 does not divide" in proc.stderr
