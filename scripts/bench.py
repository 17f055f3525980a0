#!/usr/bin/env python
"""Side-by-side training benchmark; the same as `fnnet bench`. See `--help`.

    python scripts/bench.py                      # full run, writes fnnet-bench-<UTC date-time>/results-cpu.*
    python scripts/bench.py --out bench          # the same, replacing the committed bench/ results
    python scripts/bench.py --quick --out /tmp/b # seconds
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fnnet.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
