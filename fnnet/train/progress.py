"""Progress reporting for `fnnet.fit`, between compiled chunks of epochs (never inside one).

    fit(..., progress=True)                            # ProgressBar on stderr
    fit(..., progress=ProgressBar(epochs, label="test"))   # name what the validation set is
    fit(..., progress=lambda epochs_done, history: ...)    # your own hook

On a terminal the bar is tqdm's (rate, ETA, fitted to the terminal's width and redrawn
in place), with the metrics on a second line of their own so that they never squeeze the
bar; anywhere else (a file, a pipe, CI logs) it writes plain lines, one per
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

    epochs: the run's length. initial: epochs already trained (a resumed run: fit is
    called with initial_epoch=initial and epochs=epochs - initial). label: what fit's
    `validation` data is ("val"; the CLI says "test" because it validates on the test split). stream: default stderr.
    width: columns for the terminal bar (default: the terminal's, followed on resize).
    every: most seconds between plain lines when the stream is not a terminal.
    """

    def __init__(self, epochs, label="val", stream=None, width=None, every=30.0, initial=0):
        self.epochs, self.label, self.every, self.initial = epochs, label, every, initial
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = self.last_line = time.perf_counter()
        self.done, self.next_line = 0, initial
        isatty = getattr(self.stream, "isatty", None)
        self.bar = self.status = None
        if callable(isatty) and isatty():
            common = dict(file=self.stream, ncols=width, dynamic_ncols=width is None, leave=True)
            self.bar = tqdm(total=epochs, initial=initial, unit="epoch", desc="epoch", mininterval=0.1,
                            position=0, **common)
            self.status = tqdm(total=0, bar_format="  {desc}", position=1, **common)
            self.status.set_description_str("compiling", refresh=True)
        else:
            self._line(f"epoch {initial}/{epochs}: starting (compiling)")
            self.next_line = initial + max(1, epochs // 10)

    def __call__(self, epoch, history):
        """epoch: epochs done by this fit call; history: theirs."""
        stats = _stats(history, self.label)
        if self.bar is not None:
            self.status.set_description_str(stats, refresh=False)
            self.bar.update(epoch - self.done)
            self.status.refresh()
        else:
            now, absolute = time.perf_counter(), self.initial + epoch
            if absolute >= self.next_line or absolute == self.epochs or now - self.last_line >= self.every:
                elapsed = now - self.t0
                eta = elapsed / epoch * (self.epochs - absolute) if epoch else float("nan")
                self._line(f"epoch {absolute}/{self.epochs} ({100 * absolute / self.epochs:.0f}%) {stats}, "
                           f"{elapsed:.1f}s elapsed, ETA {eta:.1f}s")
                self.last_line = now
                while self.next_line <= absolute:
                    self.next_line += max(1, self.epochs // 10)
        self.done = epoch

    def _line(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()          # the bar, then its metrics line below it
            self.status.close()
            self.bar = self.status = None


def check(progress):
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"fit: progress must be None, True or a callable(epoch, history), got {progress!r}")


def make(progress, epochs):
    """None/False -> None; True -> ProgressBar (drawn from now on); a callable passes through."""
    check(progress)
    if progress is None or progress is False:
        return None
    return ProgressBar(epochs) if progress is True else progress
