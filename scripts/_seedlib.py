"""Shared plumbing for the seed-reproduction scripts (scripts/seed00*_*.py).

Each script reruns one of the four tutorials fnnet grew out of, once with fnnet and
once with the NumPy float64 twin in reference/ started from the SAME initial weights,
and prints the post's figure beside both:

    quantity            | post   | fnnet (float32) | reference (float64)
    test accuracy       | 96.4%  | 96.1%           | 96.1%

What lives here: the common command line (--quick, --json, --dtype, --no-reference),
the table printer, a stopwatch, fnnet params -> reference layer dicts, and JSON output.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:                    # run as `python scripts/seedXXX.py` from anywhere
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

NOT_REPORTED = "not reported"
NOT_RUN = "not run"


def enable_x64():
    """Turn on jax float64 support, always, in every seed script.

    Two reasons: --dtype float64 needs it, and fnnet.init draws its numbers in the
    default float dtype before casting, so the same key gives different float32 weights
    with x64 on and off. pytest (tests/conftest.py) turns it on; doing the same here
    makes a script's command-line run and its test run start from identical weights.
    float32 arrays stay float32 with x64 on.
    """
    jax.config.update("jax_enable_x64", True)


def parser(doc: str) -> argparse.ArgumentParser:
    """The common command line; `doc` is the script's module docstring."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="far fewer epochs/steps: a smoke test of the whole script, not the post's result")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the fnnet run (default float32; the reference is always float64)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the NumPy float64 reference run (it is the slow part)")
    p.add_argument("--blas-threads", type=int, default=1, metavar="N",
                   help="BLAS threads for the NumPy reference run (default 1; 0 = OpenBLAS's own "
                        "default). On a busy 2-core machine OpenBLAS's threads spin against each "
                        "other: seed 001's x.T @ dy took 113 ms with 2 threads and 4 ms with 1.")
    return p


def blas_threads(n: int):
    """Context manager limiting NumPy's BLAS to n threads (n <= 0: leave it alone)."""
    import contextlib
    if n is None or n <= 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits      # installed with scikit-learn
    return threadpool_limits(limits=int(n), user_api="blas")


class Stopwatch:
    """`with Stopwatch() as t: ...; t.seconds` (wall clock; block on jax results inside)."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        return False


def block(tree):
    """Wait for every jax array in `tree` (so a stopwatch measures the work, not the dispatch)."""
    return jax.block_until_ready(tree)


# -- fnnet -> reference ------------------------------------------------------------------

def to_reference(net, params):
    """fnnet (net, params) -> reference's list of layer dicts, weights copied to float64.

    Both use the row layout x [batch, d_in] · w [d_in, d_out] + b [d_out], so the
    arrays carry over unchanged. Layers are matched by their exact fnnet class: a user's
    own layer (e.g. seed 000's buggy sigmoid) has no twin and raises.
    """
    import fnnet
    kinds = {fnnet.Identity: "identity", fnnet.Relu: "relu", fnnet.LeakyRelu: "leaky_relu",
             fnnet.Sigmoid: "sigmoid", fnnet.Tanh: "tanh", fnnet.Softmax: "softmax"}
    layers = []
    for i, (layer, p) in enumerate(zip(net.layers, params)):
        if type(layer) is fnnet.Dense:
            layers.append({"kind": "dense", "w": np.array(p.w, np.float64), "b": np.array(p.b, np.float64)})
        elif type(layer) in kinds:
            d = {"kind": kinds[type(layer)]}
            if type(layer) is fnnet.LeakyRelu:
                d["alpha"] = float(layer.alpha)
            layers.append(d)
        else:
            raise TypeError(f"to_reference: layer {i} ({layer!r}) has no twin in reference/")
    return layers


def reference_outputs(layers, loss_name, x):
    """reference.predict on float64 inputs."""
    import fnnet_reference as reference
    return reference.predict(layers, loss_name, np.asarray(x, np.float64))


def max_weight_diff(net, params, layers):
    """max |fnnet - reference| over all weights and biases after training."""
    ref = to_reference(net, params)
    diffs = [np.max(np.abs(a[k] - b[k])) for a, b in zip(ref, layers) if a["kind"] == "dense"
             for k in ("w", "b")]
    return float(max(diffs)) if diffs else 0.0


# -- printing ----------------------------------------------------------------------------

def pct(v, digits=2) -> str:
    """0.964 -> '96.40%'; strings (e.g. 'not reported') pass through."""
    if isinstance(v, str) or v is None:
        return v if v is not None else "—"
    return f"{100 * float(v):.{digits}f}%"


def num(v, digits=4) -> str:
    if isinstance(v, str) or v is None:
        return v if v is not None else "—"
    v = float(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.3g}"
    return f"{v:.{digits}f}"


def secs(v) -> str:
    return v if isinstance(v, str) else f"{float(v):.2f} s"


def table(headers, rows, title=None) -> str:
    """An aligned plain-text table; cells are already strings."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [list(headers)] + rows) for i in range(len(headers))]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = ([title] if title else []) + [line(headers), "-+-".join("-" * w for w in widths)]
    return "\n".join(out + [line(r) for r in rows])


def columns(dtype: str):
    """The header of every comparison table."""
    return ("quantity", "post", f"fnnet ({dtype})", "reference (float64)")


def wrap(text: str, width: int = 92) -> str:
    import textwrap
    return "\n".join(textwrap.fill(p, width) for p in text.strip().split("\n\n"))


# -- results -----------------------------------------------------------------------------

def _plain(v):
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.generic, np.ndarray)) or hasattr(v, "__array__") and not isinstance(v, str):
        a = np.asarray(v)
        return _plain(a.tolist()) if a.ndim else _plain(a.item())
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_json(path, results):
    """Write the results dict (NumPy/jax values become plain JSON numbers and lists)."""
    if not path:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_plain(results), f, indent=2, sort_keys=False)
        f.write("\n")
