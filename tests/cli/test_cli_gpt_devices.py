"""`fnnet gpt train --devices N --fsdp | --tensor-parallel`: the GPT split over simulated CPU
devices (a fresh process each: JAX's device count is fixed when it starts) trains what one
device trains."""
import json
import os
import subprocess
import sys

import pytest

from fnnet.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 224 training windows of 16 characters, minibatches of 16: every step splits over 2 devices;
# 2 heads and an MLP of 32 split over a "model" axis of 2.
TINY = ["--max-chars", "4000", "--layers", "1", "--heads", "2", "--dim", "8", "--context", "16",
        "--batch-size", "16", "--epochs", "2", "--sample", "0", "--quiet", "--dtype", "float64"]


def _fresh_process(cwd, *argv):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-m", "fnnet", "gpt", "train", *argv], env=env,
                          capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt1") / "one.json"
    assert main(["gpt", "train", *TINY, "--json", str(path)]) == 0
    return json.loads(path.read_text())


@pytest.mark.parametrize("flag, axis", [("--fsdp", "fsdp"), ("--tensor-parallel", "model")])
def test_split_over_two_devices_trains_what_one_device_trains(tmp_path, one_device, flag, axis):
    proc = _fresh_process(tmp_path, "--devices", "2", flag, *TINY, "--json", "split.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "devices: 2 cpu (simulated: they share this machine's cores)" in proc.stdout
    assert "split 2 ways" in proc.stdout
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["settings"]["devices"] == 2 and split["settings"][axis.replace("model", "tensor_parallel")]
    assert one_device["settings"]["devices"] is None
    for k in ("train_loss", "val_loss", "val_accuracy"):
        a, b = split["history"][k], one_device["history"][k]
        assert len(a) == len(b) == 2
        for u, v in zip(a, b):
            assert abs(u - v) <= 1e-12 * abs(v), (k, u, v)
    assert one_device["history"]["train_loss"][1] < one_device["history"]["train_loss"][0]


@pytest.mark.parametrize("flag", ["--fsdp", "--tensor-parallel"])
def test_a_split_without_devices_is_a_usage_error(capsys, flag):
    assert main(["gpt", "train", *TINY, flag]) == 2
    assert f"{flag} splits the run over devices: give --devices N as well" in capsys.readouterr().err
