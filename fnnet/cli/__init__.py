"""`fnnet` console command: `fnnet check`, `fnnet train`, `fnnet bench`, `fnnet --version`."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "check": ("fnnet.cli.check", "four-way gradient check of every built-in primitive and a few networks"),
    "train": ("fnnet.cli.train", "train a network (default: seed 001's digits classifier)"),
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
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
