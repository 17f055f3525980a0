"""Progress reporting for `fnnet.fit`, between compiled chunks of epochs (never inside one)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """progress=True: one line on stderr, redrawn in place with '\\r', e.g.

        epoch  300/1000 [#######-----------------]  30% loss 0.1523 val_loss 0.1611 val_acc 0.950 1.2s
    """

    def __init__(self, epochs, stream=None, width=24):
        self.epochs, self.width = epochs, width
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.last = 0   # length of the line drawn last, to blank out what a shorter one leaves
        self._draw(f"\repoch {0:>{len(str(epochs))}}/{epochs} [{'-' * width}]   0% starting (compiling)")

    def __call__(self, epoch, history):
        frac = epoch / self.epochs
        filled = int(round(frac * self.width))
        digits = len(str(self.epochs))
        line = (f"\repoch {epoch:>{digits}}/{self.epochs} [{'#' * filled}{'-' * (self.width - filled)}]"
                f" {100 * frac:3.0f}% loss {history.loss[-1]:.4g}")
        if history.val_loss is not None:
            line += f" val_loss {history.val_loss[-1]:.4g} val_acc {history.val_accuracy[-1]:.3f}"
        self._draw(f"{line} {time.perf_counter() - self.t0:.1f}s")

    def _draw(self, line):
        self.stream.write(line + " " * max(0, self.last - len(line)))
        self.last = len(line)
        self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


def check(progress):
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"fit: progress must be None, True or a callable(epoch, history), got {progress!r}")


def make(progress, epochs):
    """None/False -> None; True -> ProgressBar (drawn from now on); a callable passes through."""
    check(progress)
    if progress is None or progress is False:
        return None
    return ProgressBar(epochs) if progress is True else progress
