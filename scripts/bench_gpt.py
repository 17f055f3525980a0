#!/usr/bin/env python
"""GPT step time and compiled memory: fnnet's hand-written backward vs jax.grad of the same forward.

The measurement now lives in `fnnet bench` (the GPT workload of fnnet/bench/workloads_nets.py:
step time of fnnet.fit with each gradient, interleaved, their ratio, the jitted step's
`compiled.memory_analysis()` temporaries with attention recompute=False and True, and
CausalSelfAttention alone with both cache choices); this script runs it:

    python scripts/bench_gpt.py            # = fnnet bench --workloads GPT --out bench/nets
    python scripts/bench_gpt.py --quick    # smaller, for a smoke run (other options pass through)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fnnet.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--workloads", "GPT", "--out", "bench/nets", *sys.argv[1:]]))
