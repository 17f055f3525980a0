"""`fnnet gpt train --devices N --fsdp | --tensor-parallel`: the GPT split over simulated CPU
devices (in a fresh process: JAX's device count is fixed when it starts) trains what one
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


SPLITS = {"fsdp": "--fsdp", "model": "--tensor-parallel"}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Both splits in ONE fresh process (`--devices 2` asks for 2 simulated CPU devices before
    JAX starts, and the second run finds them): {axis: (exit status, stdout, --json summary)}."""
    d = tmp_path_factory.mktemp("gpt2")
    script = ("import contextlib, io, json, sys\n"
              "from fnnet.cli import main\n"
              "out = {}\n"
              "for axis, flag in json.loads(sys.argv[1]).items():\n"
              "    buf = io.StringIO()\n"
              "    with contextlib.redirect_stdout(buf):\n"
              "        rc = main(['gpt', 'train', '--devices', '2', flag, *json.loads(sys.argv[2]),\n"
              "                   '--json', axis + '.json'])\n"
              "    out[axis] = [rc, buf.getvalue()]\n"
              "print(json.dumps(out))\n")
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(SPLITS), json.dumps(TINY)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.splitlines()[-1])
    return {axis: (rc, text, json.loads((d / f"{axis}.json").read_text()) if rc == 0 else None)
            for axis, (rc, text) in runs.items()}


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt1") / "one.json"
    assert main(["gpt", "train", *TINY, "--json", str(path)]) == 0
    return json.loads(path.read_text())


@pytest.mark.parametrize("axis", SPLITS)
def test_split_over_two_devices_trains_what_one_device_trains(split, one_device, axis):
    rc, stdout, summary = split[axis]
    assert rc == 0, stdout[-3000:]
    assert "devices: 2 cpu (simulated: they share this machine's cores)" in stdout
    assert "split 2 ways" in stdout
    assert summary["settings"]["devices"] == 2
    assert summary["settings"]["fsdp" if axis == "fsdp" else "tensor_parallel"]
    assert one_device["settings"]["devices"] is None
    for k in ("train_loss", "val_loss", "val_accuracy"):
        a, b = summary["history"][k], one_device["history"][k]
        assert len(a) == len(b) == 2
        for u, v in zip(a, b):
            assert abs(u - v) <= 1e-12 * abs(v), (k, u, v)
    assert one_device["history"]["train_loss"][1] < one_device["history"]["train_loss"][0]


@pytest.mark.parametrize("flag", ["--fsdp", "--tensor-parallel"])
def test_a_split_without_devices_is_a_usage_error(capsys, flag):
    assert main(["gpt", "train", *TINY, flag]) == 2
    assert f"{flag} splits the run over devices: give --devices N as well" in capsys.readouterr().err
