"""Multi-host data parallelism: 2 local processes x 2 simulated CPU devices each, joined
by jax.distributed.initialize on 127.0.0.1, train exactly what 1 process x 4 devices
trains (to 1e-12 relative, float64; tests/train/test_sharding.py relates meshes to one device). Runs tests/train/_multihost_worker.py.
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from helpers import rel_err

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "_multihost_worker.py")
TIMEOUT = 300          # seconds for the whole launch; the workers' own JAX time-outs are 30-60 s


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return env


def _launch(commands):
    procs = [subprocess.Popen(c, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
    port = _free_port()
    multi = _launch([[sys.executable, WORKER, "multi", str(i), str(port), str(d / "multi.npz")]
                     for i in range(2)])
    assert all("2 processes, 4 devices, mesh over processes [0, 1]" in log for log in multi), multi
    _launch([[sys.executable, WORKER, "single", "0", "0", str(d / "single.npz")]])
    return np.load(d / "multi.npz"), np.load(d / "single.npz")


@pytest.mark.parametrize("mode", ["full", "minibatch"])
def test_two_processes_equal_one_process(runs, mode):
    multi, single = runs
    keys = [k for k in single.files if k.startswith(mode + "/")]
    assert len(keys) == 5                   # 4 param leaves + the loss history
    for k in keys:
        assert rel_err(multi[k], single[k]) <= 1e-12, k

