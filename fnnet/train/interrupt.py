"""Ctrl-C during `fnnet.fit`: stop at the next chunk boundary and hand back the last complete epoch.

    try:
        result = fnnet.fit(net, params, x, y, optimizer=opt, epochs=10_000)
    except fnnet.TrainingInterrupted as e:      # a KeyboardInterrupt
        fnnet.save("run.npz", net, e.result.params, opt_state=e.result.opt_state,
                   epoch=e.result.epoch, state=e.result.state)

The epochs run in compiled chunks whose input buffers are donated, so a KeyboardInterrupt
raised at an arbitrary bytecode could land between a chunk's dispatch and the assignment
of its output, losing both. While fit trains, a first SIGINT therefore only sets a flag
(`Deferred`); fit dispatches no further chunk, finishes the one in flight (chunks last about
0.25 s) and raises TrainingInterrupted carrying that epoch's FitResult. A second SIGINT
raises a plain KeyboardInterrupt at once (nothing is kept). On a terminal the first one says so. fit installs the handler only in
the main thread and only over Python's default one: a program with its own SIGINT handler
keeps it.
"""
from __future__ import annotations

import signal
import sys
import threading


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `fit` at an epoch boundary. result: the FitResult after the last
    complete epoch (params, history, opt_state, state, epoch); pass its fields back to fit
    (opt_state=, state=, initial_epoch=result.epoch) to continue bit-identically."""

    def __init__(self, result):
        super().__init__(f"fit: interrupted (Ctrl-C) after epoch {result.epoch}; .result holds the params, "
                         f"history, optimizer and layer state after it")
        self.result = result


class Deferred:
    """Context manager: while inside, the first SIGINT sets `.requested` instead of raising."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:                     # a second Ctrl-C: stop now, keep nothing
            raise KeyboardInterrupt
        self.requested = True
        if getattr(sys.stderr, "isatty", lambda: False)():   # someone is waiting at a terminal
            sys.stderr.write("\nfit: stopping after the epochs in flight (Ctrl-C again: stop now, keep nothing)\n")
            sys.stderr.flush()

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
