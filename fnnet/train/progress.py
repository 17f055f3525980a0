"""Progress reporting for `fnnet.fit`, between compiled chunks of epochs (never inside one).

    fit(..., progress=True)                            # ProgressBar on stderr
    fit(..., progress=ProgressBar(epochs, label="test"))   # name what the validation set is
    fit(..., progress=lambda epochs_done, history: ...)    # your own hook

On a terminal the bar is tqdm's (rate, ETA, fitted to the terminal's width and redrawn
in place); anywhere else (a file, a pipe, CI logs) it writes plain lines, one per
~10 % of the run or per `every` seconds, whichever comes first, plus the last one.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


def _stats(history, label):
    text = f"loss {history.loss[-1]:.4g}"
    if history.val_loss is not None:
        text += f" {label}_loss {history.val_loss[-1]:.4g} {label}_acc {history.val_accuracy[-1]:.3f}"
    return text


class ProgressBar:
    """A progress callable(epochs_done, history) for fit; fit calls close() at the end.

    epochs: the run's length. label: what fit's `validation` data is ("val"; the CLI
    says "test" because it validates on the test split). stream: default stderr.
    width: columns for the terminal bar (default: the terminal's, followed on resize).
    every: most seconds between plain lines when the stream is not a terminal.
    """

    def __init__(self, epochs, label="val", stream=None, width=None, every=30.0):
        self.epochs, self.label, self.every = epochs, label, every
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = self.last_line = time.perf_counter()
        self.done = self.next_line = 0
        isatty = getattr(self.stream, "isatty", None)
        self.bar = None
        if callable(isatty) and isatty():
            self.bar = tqdm(total=epochs, unit="epoch", file=self.stream, ncols=width,
                            dynamic_ncols=width is None, leave=True, desc="epoch", mininterval=0.1)
            self.bar.set_postfix_str("compiling", refresh=True)
        else:
            self._line(f"epoch 0/{epochs}: starting (compiling)")
            self.next_line = max(1, epochs // 10)

    def __call__(self, epoch, history):
        stats = _stats(history, self.label)
        if self.bar is not None:
            self.bar.set_postfix_str(stats, refresh=False)
            self.bar.update(epoch - self.done)
        else:
            now = time.perf_counter()
            if epoch >= self.next_line or epoch == self.epochs or now - self.last_line >= self.every:
                elapsed = now - self.t0
                eta = elapsed / epoch * (self.epochs - epoch) if epoch else float("nan")
                self._line(f"epoch {epoch}/{self.epochs} ({100 * epoch / self.epochs:.0f}%) {stats}, "
                           f"{elapsed:.1f}s elapsed, ETA {eta:.1f}s")
                self.last_line = now
                while self.next_line <= epoch:
                    self.next_line += max(1, self.epochs // 10)
        self.done = epoch

    def _line(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def check(progress):
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"fit: progress must be None, True or a callable(epoch, history), got {progress!r}")


def make(progress, epochs):
    """None/False -> None; True -> ProgressBar (drawn from now on); a callable passes through."""
    check(progress)
    if progress is None or progress is False:
        return None
    return ProgressBar(epochs) if progress is True else progress
