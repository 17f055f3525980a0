"""How long fnnet.check takes on a realistic leaf: a 300x300 weight, right and with one wrong row.

    python scripts/check_localization_time.py [--repeats 3]

The check of tanh(x @ w), x [4, 300], w [300, 300], float32 and float64: the right rule, and
one whose row 17 of dW is 1.5x too large (the check must name row 17). Each case runs once
timed on its own (it compiles), then `repeats` timed runs; the median and range are printed
with the load average before and after. Run it with nothing else on the machine (load < 1).
"""
import argparse
import os
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fnnet import check  # noqa: E402


def fun(w, x):
    return jnp.tanh(x @ w)


def right(w, x, ct):
    dz = ct * (1 - jnp.tanh(x @ w) ** 2)         # dL/dz = ct ⊙ (1 - tanh²)
    return x.T @ dz, dz @ w.T                    # dL/dw = xᵀ dz, dL/dx = dz wᵀ


def wrong(w, x, ct):
    dw, dx = right(w, x, ct)
    return dw.at[17].multiply(1.5), dx            # one wrong row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(5)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for dtype in ("float32", "float64"):
        w = (rng.standard_normal((300, 300)) / 17).astype(dtype)
        x = rng.standard_normal((4, 300)).astype(dtype)
        for name, rule in (("right rule", right), ("row 17 wrong", wrong)):
            t = time.perf_counter()
            rep = check.check_vjp(fun, rule, w, x)          # compiles
            first = time.perf_counter() - t
            found = "" if rep.ok else f", worst at {rep.rows_for('w', 'fd')[0].worst_index}"
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                check.check_vjp(fun, rule, w, x)
                times.append(time.perf_counter() - t)
            print(f"{dtype} {name:>12}: {'ok' if rep.ok else 'FAIL'}{found}; first call {first:.2f} s "
                  f"(compiles), then median {statistics.median(times):.2f} s "
                  f"({min(times):.2f}-{max(times):.2f}, {args.repeats} runs)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
