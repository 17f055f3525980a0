"""`fnnet` console command: `fnnet check`, `fnnet train`, `fnnet bench`, `fnnet --version`."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "check": ("fnnet.cli.check", "four-way gradient check of every built-in primitive and a few networks"),
    "train": ("fnnet.cli.train", "train a network (default: seed 001's digits classifier)"),
    "gpt": ("fnnet.cli.gpt", "train a character-level GPT on Python's docs (gpt train), or sample from one"),
    "bench": ("fnnet.bench.cli", "side-by-side training benchmark (NumPy, reference, fnnet, jax.grad, torch)"),
}


def usage() -> str:
    lines = ["usage: fnnet COMMAND [options]   (fnnet COMMAND --help for options; fnnet --version)", "",
             "commands:"]
    lines += [f"  {name:<6} {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from fnnet._version import __version__
        print(f"fnnet {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"fnnet: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    with _importing_notice(name):
        module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


class _importing_notice:
    """One status line on a terminal's stderr while the command's modules (JAX among them,
    seconds on a cold start) import, erased once they have: the user sees at once that the
    command started. Nothing when stderr is not a terminal (logs, pipes, tests' captures)."""

    def __init__(self, name):
        self.text = f"fnnet {name}: loading JAX ..."
        self.shown = False

    def __enter__(self):
        if sys.stderr.isatty():
            sys.stderr.write(self.text)
            sys.stderr.flush()
            self.shown = True
        return self

    def __exit__(self, *exc):
        if self.shown:
            sys.stderr.write("\r" + " " * len(self.text) + "\r")   # erase the line, cursor home
            sys.stderr.flush()
        return False


if __name__ == "__main__":
    sys.exit(main())
