"""Atomic file writes that leave no temporary files behind.

    write(path, fill, where="save")    # fill(fileobj) writes the content

The content goes to `.{name}.{pid}-{hex}.tmp` beside `path`, is fsync'ed and renamed
over `path`. On an exception, KeyboardInterrupt or SIGTERM/SIGHUP the temporary file
is removed (the signal is then re-delivered). A SIGKILL cannot be caught: the next
write to the same target sweeps temporary files whose writer process is gone (and
those of older fnnet versions, `.{name}.{hex}.tmp`, after an hour). Errors name the
path the caller gave, never the temporary file.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time

_OLD_STYLE_AGE = 3600.0     # seconds before an old-style temp file (no pid) counts as stale
_SIGNALS = tuple(getattr(signal, s) for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s))


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # exists but not ours (EPERM): alive
        return True
    return True


def sweep(path):
    """Remove stale temporary files of target `path`; returns the names removed."""
    directory, base = os.path.split(os.path.abspath(path))
    pattern = re.compile(r"\." + re.escape(base) + r"\.(?:(\d+)-)?[0-9a-f]{12}\.tmp")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if not m:
            continue
        full = os.path.join(directory, name)
        try:
            stale = (not _alive(int(m.group(1))) if m.group(1)
                     else time.time() - os.path.getmtime(full) > _OLD_STYLE_AGE)
            if stale:
                os.unlink(full)
                removed.append(name)
        except OSError:
            pass
    return removed


def _named(e, path, where):
    """The same OSError subclass, naming the user's path instead of the temporary file."""
    out = type(e)(e.errno, f"{where}: cannot write {path!r}: {e.strerror or e}", path)
    out.__cause__ = None
    return out


def write(path, fill, where="save"):
    """Write `path` atomically: fill(f) gets a binary file object."""
    path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{where}: the path is empty; give a file name such as 'model.npz'")
    if os.path.isdir(path):
        raise IsADirectoryError(21, f"{where}: {path!r} is a directory, not a file name", path)
    directory = os.path.dirname(os.path.abspath(path))
    sweep(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
    previous = {}

    def on_signal(signum, frame):
        _unlink(tmp)
        signal.signal(signum, previous.get(signum) or signal.SIG_DFL)
        os.kill(os.getpid(), signum)            # re-deliver to the previous handler

    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            previous[s] = signal.signal(s, on_signal)
    try:
        try:
            # os.open with 0o666 lets the umask decide the permissions, as a plain open() would
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except OSError as e:
            raise _named(e, path, where) from None
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            _unlink(tmp)
            raise _named(e, path, where) from None
        except BaseException:
            _unlink(tmp)
            raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
    _fsync_dir(directory)


def _unlink(name):
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _fsync_dir(directory):
    """Make the rename itself durable (POSIX); not possible everywhere."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
