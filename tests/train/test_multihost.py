"""Multi-host training: 2 local processes x 4 simulated CPU devices each, joined by
jax.distributed.initialize on 127.0.0.1, train exactly what 1 process x 8 devices trains
(to 1e-12 relative, float64) in every layout: data parallelism, FSDP (alone and beside
"data") and tensor parallelism beside "data". Each process reads only its own half of the
training set's rows. tests/train/test_sharding.py, test_fsdp.py and test_tensor_parallel.py
relate each 8-device layout to one device. Runs tests/train/_multihost_worker.py: one pair
of processes for every layout, then one process.
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import fnnet
from _mesh_subprocess import child_env
from helpers import rel_err

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_multihost_worker.py")
N = 160                # rows: 80 per process; full batches of 160 and minibatches of 36 and 40
LAYOUTS = ("data/full", "data/minibatch", "fsdp/full", "data_fsdp/minibatch", "data_model/minibatch")
TIMEOUT = 300          # seconds for the whole launch; the workers' own JAX time-outs are 30-60 s


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(commands):
    procs = [subprocess.Popen(c, env=child_env(fast_compile=True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for c in commands]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"multi-host launch did not finish in {TIMEOUT} s")
    finally:
        for p in procs:                      # never leave a peer behind
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    return logs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("multihost")
    x, y, _, _ = fnnet.datasets.digits()
    rng = np.random.default_rng(5)
    np.save(d / "x.npy", x[:N] + 0.1 * rng.standard_normal((N, 64)))
    np.save(d / "y.npy", y[:N])
    port = _free_port()
    multi = _launch([[sys.executable, WORKER, "multi", str(i), str(port), str(d), str(d / "multi.npz")]
                     for i in range(2)])
    _launch([[sys.executable, WORKER, "single", "0", "0", str(d), str(d / "single.npz")]])
    return multi, np.load(d / "multi.npz"), np.load(d / "single.npz")


def test_each_process_reads_only_its_own_rows(runs):
    logs, _, _ = runs
    half = N // 2
    for pid, rows in enumerate(([(0, half)], [(half, N)])):
        assert f"process {pid}: ok, 2 processes, 8 devices, devices of processes [0, 1], " \
               f"rows read {rows} of {N}" in logs[pid], logs[pid]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_processes_equal_one_process(runs, layout):
    _, multi, single = runs
    keys = [k for k in single.files if k.startswith(layout + "/")]
    assert len(keys) == 5                   # 4 param leaves + the loss history
    for k in keys:
        assert rel_err(multi[k], single[k]) <= 1e-12, k
    for i in range(4):                      # training really moved every leaf
        assert rel_err(single[f"{layout}/{i}"], single[f"init/{i}"]) > 0.01



def test_sharded_checkpoint_written_by_two_processes_restores_onto_another_layout(runs):
    # each process wrote its own devices' blocks of the ("data", "fsdp") 2 x 4 result; one
    # process of 8 devices restores them onto ("fsdp",) x 8: params and Adam's state equal
    # what the writers held (their own 1 x 8 run is within 1e-12 of it)
    _, multi, single = runs
    files = list(single["ckpt/files"])
    assert "checkpoint.json" in files and sum(f.endswith((".p0.npz", ".p1.npz")) for f in files) == 2, files
    assert int(single["ckpt/epoch"]) == 2
    assert "P('fsdp',)" in list(single["ckpt/specs"])
    restored = sorted(k for k in single.files if k.startswith("ckpt/") and k.split("/")[1].isdigit())
    assert len(restored) == 4 + 1 + 4 + 4           # params, and Adam's count, mu and nu
    for i in range(4):                              # the params the two processes saved, exactly
        assert np.array_equal(single[f"ckpt/{i}"], multi[f"data_fsdp/minibatch/{i}"])
    for k in restored:
        assert rel_err(single[k], single[k.replace("ckpt/", "ckpt/own/")]) <= 1e-12, k
