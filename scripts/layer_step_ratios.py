#!/usr/bin/env python
"""Per new layer: fnnet.fit step time with the hand-written backward vs jax.grad of the same loss.

The measurement now lives in `fnnet bench` (the L-* workloads of fnnet/bench/workloads_nets.py,
timed by fnnet/bench/systems_nets.py); this script runs them:

    python scripts/layer_step_ratios.py                      # = fnnet bench --workloads layers,CNN
    python scripts/layer_step_ratios.py --only conv maxpool  # = fnnet bench --workloads L-conv,L-maxpool
    python scripts/layer_step_ratios.py --quick --out /tmp/l # other options pass through
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fnnet.bench.cli import main  # noqa: E402


def argv(args):
    """--only a b ... -> --workloads L-a,L-b (cnn -> CNN); default: every layer and the CNN."""
    if "--only" not in args:
        return ["--workloads", "layers,CNN", "--out", "bench/nets", *args]
    i = args.index("--only")
    names, j = [], i + 1
    while j < len(args) and not args[j].startswith("--"):
        names.append("CNN" if args[j].lower().startswith("cnn") else f"L-{args[j]}")
        j += 1
    return ["--workloads", ",".join(names), "--out", "bench/nets", *args[:i], *args[j:]]


if __name__ == "__main__":
    sys.exit(main(argv(sys.argv[1:])))
