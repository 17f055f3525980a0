"""`fnnet` itself (fnnet/cli/__init__.py): the command table and what a terminal sees first."""
import os
import pty
import select
import subprocess
import sys

import pytest


def _run_on_a_terminal(*args, timeout=120):
    """Everything `python -m fnnet args` writes to a pseudo-terminal (stdout and stderr both)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fnnet", *args], stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            pytest.fail(f"no output for {timeout} s; so far {out[-300:]!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError:          # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout) == 0
    return out.decode()


def test_a_terminal_is_told_at_once_that_the_command_started_and_the_notice_is_erased():
    out = _run_on_a_terminal("train", "--help")
    notice = "fnnet train: loading JAX ..."
    assert out.startswith(notice), out[:200]
    rest = out[len(notice):]
    assert rest.startswith("\r" + " " * len(notice) + "\r"), rest[:80]   # erased before the help
    assert "usage: fnnet train" in rest


def test_no_notice_where_stderr_is_not_a_terminal():
    done = subprocess.run([sys.executable, "-m", "fnnet", "train", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "loading JAX" not in done.stderr + done.stdout


def test_unknown_command_exits_2_naming_it_and_the_commands():
    done = subprocess.run([sys.executable, "-m", "fnnet", "trian"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "unknown command 'trian'" in done.stderr and "train" in done.stderr
