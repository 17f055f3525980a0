"""Ctrl-C in `fnnet train` / `fnnet gpt train`, with real signals: the CLI runs in a subprocess,
trains until --checkpoint-every has written its file, gets SIGINT, and must exit 130 with one
line on stderr, leaving a checkpoint of the last complete epoch that restores and resumes
bit-identically to a run that never stopped."""
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

import fnnet

if sys.platform == "win32":
    pytest.skip("POSIX signals", allow_module_level=True)

MLP = ["--sizes", "64,16,10", "--quiet"]
GPT = ["--max-chars", "4000", "--layers", "1", "--heads", "2", "--dim", "8", "--context", "16",
       "--batch-size", "16", "--sample", "0", "--quiet"]


def cli(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "fnnet", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def interrupt_when_saved(argv, path, cwd):
    """Start the CLI, wait for the first checkpoint at `path`, send SIGINT -> (rc, stdout, stderr)."""
    # the child gets SIGINT's default disposition, as from a shell: an ignored SIGINT is
    # inherited across exec, and a test worker may have been left with one
    proc = subprocess.Popen([sys.executable, "-m", "fnnet", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not path.exists():
            assert proc.poll() is None, f"the CLI ended before its first checkpoint: {proc.communicate()}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        time.sleep(0.3)                                   # a few more epochs into the run
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def leaves(path, optimizer):
    ck = fnnet.restore(path, optimizer=optimizer)
    return ck, [np.asarray(a) for a in jax.tree.leaves((ck.params, ck.opt_state))]


def test_ctrl_c_in_fnnet_train_saves_the_last_epoch_and_resume_is_bit_identical(tmp_path):
    ck_path = tmp_path / "run.npz"
    rc, out, err = interrupt_when_saved(["train", *MLP, "--epochs", "1000000", "--save", str(ck_path),
                                         "--checkpoint-every", "20"], ck_path, tmp_path)
    assert rc == 130, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err                       # one line
    m = re.fullmatch(r"fnnet train: interrupted after epoch (\d+) of 1000000; saved it to (.*) "
                     r"\(continue with --resume \2\)\n", err)
    assert m and m[2] == str(ck_path), err
    done = int(m[1])
    ck, got = leaves(ck_path, optax.sgd(0.5))
    assert ck.epoch == done >= 20 and ck.opt_state is not None
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"

    target = done + 7
    r = cli("train", *MLP, "--epochs", str(target), "--resume", str(ck_path), "--save", "resumed.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {ck_path}, after epoch {done} of {target}" in r.stdout
    r = cli("train", *MLP, "--epochs", str(target), "--save", "straight.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a, resumed = leaves(tmp_path / "resumed.npz", optax.sgd(0.5))
    b, straight = leaves(tmp_path / "straight.npz", optax.sgd(0.5))
    assert a.epoch == b.epoch == target
    for x, y in zip(resumed, straight):
        np.testing.assert_array_equal(x, y)                                  # bit-identical


def test_ctrl_c_in_fnnet_gpt_train_saves_the_last_epoch_with_its_adamw_state(tmp_path):
    ck_path = tmp_path / "gpt.npz"
    rc, out, err = interrupt_when_saved(["gpt", "train", *GPT, "--epochs", "100000", "--save", str(ck_path),
                                         "--checkpoint-every", "1"], ck_path, tmp_path)
    assert rc == 130, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    m = re.fullmatch(r"fnnet gpt: interrupted after epoch (\d+) of 100000; saved it to .*gpt.npz "
                     r"\(continue with --resume .*gpt.npz\)\n", err)
    assert m, err
    ck = fnnet.restore(ck_path)
    assert ck.epoch == int(m[1]) >= 1
    # resuming needs the same options (the same AdamW schedule): one more epoch from the checkpoint
    r = cli("gpt", "train", *GPT, "--epochs", str(ck.epoch + 1), "--resume", str(ck_path), cwd=tmp_path)
    assert r.returncode == 0 and f"after epoch {ck.epoch} of {ck.epoch + 1}" in r.stdout, r.stderr
