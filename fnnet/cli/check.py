"""`fnnet check`: the four-way gradient check of every built-in primitive and the seeds' nets
(and issue 8's conv / pool / shape / dropout / batchnorm / ELU / SiLU / Softplus and a CNN).

For each primitive (dense, every activation, every loss, the L2 penalty), each of the
seeds' networks and fnnet's custom_vjp bridge (loss_with_manual_grad, by check_custom_vjp),
in float64 and float32, the hand-written backward is compared with
jax.vjp, with the NumPy float64 twin in reference/ and with float64 finite differences
(fnnet.check). Inputs include relu kinks (exact zeros and |x| below the FD step),
saturated sigmoids and tanh (|x| = 40, 20) and softmax logits spread over ±1000.
Prints one row per case with the largest relative error against each oracle, the total
time, and exits 1 if anything failed.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

import jax
import numpy as np

DTYPES = {"float64": np.float64, "float32": np.float32}


def _kinky(rng, shape, step=1e-6):
    """Normal values with exact zeros and values inside the FD step (relu kinks)."""
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[::5] = 0.0
    flat[1::7] = 0.3 * step * np.sign(flat[1::7])
    return x


def _cases(rng):
    """[(name, kind, builder(dtype) -> (fnnet.check function, args, kwargs))]."""
    import fnnet

    def layer(lyr, x, params=None):
        def build(dt):
            if params is None:
                p = () if not hasattr(lyr, "units") else jax.tree.map(
                    lambda a: np.asarray(a, dt), lyr.init(jax.random.key(1), x.shape[1:])[0])
            else:
                p = jax.tree.map(lambda a: np.asarray(a, dt), params)
            return "check_layer", (lyr, p, np.asarray(x, dt)), {}
        return build

    def loss(name, out, target):
        return lambda dt: ("check_loss", (name, np.asarray(out, dt),
                                          target.astype(np.int32) if target.dtype.kind == "i"
                                          else np.asarray(target, dt)), {})

    def network(net, x, y, zero_biases=False):
        # Params drawn here with NumPy (N(0, 1/fan_in) weights): fnnet.init would spend a
        # compilation per op on them, and the check only needs generic values.
        params = []
        for layer, (in_shape, _, _) in zip(net.layers, fnnet.network._layout(net)):
            if isinstance(layer, fnnet.Dense):
                w = rng.standard_normal((in_shape[0], layer.units)) / np.sqrt(in_shape[0])
                b = np.zeros(layer.units) if zero_biases else 0.1 * rng.standard_normal(layer.units)
                params.append(fnnet.DenseParams(w, b))
            else:
                params.append(())
        x = np.array(x, np.float64)
        if zero_biases:   # zero biases + a zero input row: hidden pre-activations exactly 0 (kinks)
            x[0] = 0.0

        def build(dt):
            p = tuple(jax.tree.map(lambda a: np.asarray(a, dt), q) for q in params)
            yy = y.astype(np.int32) if y.dtype.kind == "i" else np.asarray(y, dt)
            return "check_network", (net, p, np.asarray(x, dt), yy), {}
        return build

    def custom(net, x, y):
        # fnnet.loss_with_manual_grad(net): a jax.custom_vjp around the hand-written backward,
        # checked by its own fwd/bwd against autodiff of the undecorated loss and FD
        def build(dt):
            p = tuple(jax.tree.map(lambda a: np.asarray(a, dt), q) for q in network(net, x, y)(dt)[1][1])
            return "check_custom_vjp", (fnnet.loss_with_manual_grad(net), p, np.asarray(x, dt), y), {}
        return build

    dense_params = fnnet.DenseParams(rng.standard_normal((3, 4)), rng.standard_normal(4))
    logits = rng.standard_normal((6, 5))
    logits[0] = rng.uniform(-1000, 1000, 5)              # huge spread: saturated softmax
    sat = rng.standard_normal((4, 6))
    sat[0, :3], sat[1, :3] = 40.0, -40.0                 # saturated sigmoid / tanh
    sat[2, :3] = 20.0
    onehot = np.eye(5)[rng.integers(0, 5, 6)]
    x_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])   # seed 003's XOR
    y_xor = np.array([[0.0], [1.0], [1.0], [0.0]])
    # Seed 001's net on a digits-shaped batch: 64 pixel intensities in [0, 1] (a third of them
    # 0, like the scaled 8x8 digits) and labels 0-9. Loading the real digits costs seconds of
    # scikit-learn import; the check is about the network's gradients, not the data.
    x_digits = rng.uniform(0, 1, (64, 64)) * (rng.uniform(0, 1, (64, 64)) > 0.33)
    y_digits = rng.integers(0, 10, 64)
    # seed 002's three clusters (means (0, 0), (1, 4), (2, 8)), drawn here: fnnet.datasets.blobs
    # splits with scikit-learn, whose import alone costs seconds
    y_blobs = np.arange(16) % 3
    x_blobs = np.array([(0.0, 0.0), (1.0, 4.0), (2.0, 8.0)])[y_blobs] + rng.standard_normal((16, 2))
    return [
        ("dense", "layer", layer(fnnet.Dense(4), rng.standard_normal((5, 3)), dense_params)),
        ("identity", "layer", layer(fnnet.Identity(), rng.standard_normal((5, 4)))),
        ("relu (kinks)", "layer", layer(fnnet.Relu(), _kinky(rng, (5, 4)))),
        ("leaky_relu (kinks)", "layer", layer(fnnet.LeakyRelu(0.1), _kinky(rng, (5, 4)))),
        ("sigmoid (saturated)", "layer", layer(fnnet.Sigmoid(), sat)),
        ("tanh (saturated)", "layer", layer(fnnet.Tanh(), sat)),
        ("softmax (±1000 logits)", "layer", layer(fnnet.Softmax(), logits)),
        ("mse", "loss", loss("mse", rng.standard_normal((6, 3)), rng.standard_normal((6, 3)))),
        ("half_sse", "loss", loss("half_sse", rng.standard_normal((6, 3)), rng.standard_normal((6, 3)))),
        ("softmax_cross_entropy", "loss", loss("softmax_cross_entropy", logits, onehot)),
        ("sigmoid_binary_ce", "loss", loss("sigmoid_binary_cross_entropy", sat, rng.uniform(0, 1, sat.shape))),
        ("seed 000: 2-3-2 relu/sigmoid", "network",
         network(fnnet.mlp([2, 3, 2], activation="relu", output="sigmoid", loss="half_sse"),
                 rng.standard_normal((4, 2)), rng.uniform(0, 1, (4, 2)), zero_biases=True)),
        ("seed 001: digits 64-128-128-10", "network",
         network(fnnet.mlp([64, 128, 128, 10], activation="sigmoid", loss="softmax_cross_entropy"),
                 x_digits[:64], y_digits[:64])),
        ("seed 002: 2-5-3 relu/CE + L2 0.01", "network",
         network(fnnet.mlp([2, 5, 3], activation="relu", loss="softmax_cross_entropy", l2=0.01),
                 x_blobs[:16], y_blobs[:16], zero_biases=True)),
        ("loss_with_manual_grad (custom_vjp)", "custom_vjp",
         custom(fnnet.mlp([2, 5, 3], activation="tanh", loss="softmax_cross_entropy"),
                x_blobs[:8], y_blobs[:8].astype(np.int32))),
        ("seed 003: 2-3-1 tanh/mse", "network",
         network(fnnet.mlp([2, 3, 1], activation="tanh", output="tanh", loss="mse"), x_xor, y_xor)),
        *_vision_cases(rng),
    ]


def _vision_cases(rng):
    """Issue 8's layers (conv, pools with ties, shape, dropout with its key held fixed, batchnorm in
    both modes, ELU/SiLU/Softplus) and a small CNN with batchnorm and dropout, in both modes."""
    import fnnet

    def case(lyr, x, params=None, **kw):
        def build(dt):
            cast = lambda t: jax.tree.map(lambda a: np.asarray(a, dt), t)
            p = cast(params) if params is not None else ()
            extra = {k: (cast(v) if k == "state" else v) for k, v in kw.items()}
            return "check_layer", (lyr, p, np.asarray(x, dt)), extra
        return build

    img = rng.standard_normal((2, 6, 5, 3))
    ties = rng.integers(-1, 2, (2, 6, 6, 2)).astype(np.float64)      # integer pixels: tied maxima
    conv = fnnet.Conv2D(4, 3, 2, "same")
    conv_p = fnnet.ConvParams(rng.standard_normal((3, 3, 3, 4)) / 5, 0.1 * rng.standard_normal(4))
    bn_p = fnnet.BatchNormParams(1 + 0.2 * rng.standard_normal(3), 0.1 * rng.standard_normal(3))
    bn_s = fnnet.BatchNormState(0.1 * rng.standard_normal(3), 1 + 0.1 * rng.uniform(size=3))
    key = jax.random.PRNGKey(3)
    net = fnnet.Network((fnnet.Conv2D(3, 2), fnnet.Tanh(), fnnet.BatchNorm(), fnnet.MaxPool2D(2),
                         fnnet.Flatten(), fnnet.Dropout(0.3), fnnet.Dense(3)), "softmax_cross_entropy", (5, 5, 2))
    net_p = [fnnet.ConvParams(rng.standard_normal((2, 2, 2, 3)) / 3, 0.1 * rng.standard_normal(3)), (),
             fnnet.BatchNormParams(1 + 0.2 * rng.standard_normal(3), 0.1 * rng.standard_normal(3)), (), (), (),
             fnnet.DenseParams(rng.standard_normal((12, 3)) / 4, 0.1 * rng.standard_normal(3))]
    net_s = ((), (), fnnet.BatchNormState(0.1 * rng.standard_normal(3), 1 + 0.1 * rng.uniform(size=3)),
             (), (), (), ())
    x_net, y_net = rng.standard_normal((4, 5, 5, 2)), rng.integers(0, 3, 4).astype(np.int32)

    def cnn(train):
        def build(dt):
            cast = lambda t: jax.tree.map(lambda a: np.asarray(a, dt), t)
            return "check_network", (net, tuple(cast(q) for q in net_p), np.asarray(x_net, dt), y_net), \
                dict(state=cast(net_s), forward_key=key, train=train)
        return build

    return [
        ("conv2d 3x3 stride 2 same", "layer", case(conv, img, conv_p)),
        ("maxpool2d 2x2 (ties)", "layer", case(fnnet.MaxPool2D(2), ties)),
        ("maxpool2d 3x3 stride 2", "layer", case(fnnet.MaxPool2D(3, 2), img)),
        ("avgpool2d 2x2", "layer", case(fnnet.AvgPool2D(2), img)),
        ("flatten", "layer", case(fnnet.Flatten(), img)),
        ("dropout 0.3 (key fixed)", "layer", case(fnnet.Dropout(0.3), img, forward_key=key)),
        ("batchnorm train (images)", "layer", case(fnnet.BatchNorm(), img, bn_p, state=bn_s, train=True)),
        ("batchnorm eval (images)", "layer", case(fnnet.BatchNorm(), img, bn_p, state=bn_s, train=False)),
        ("batchnorm full form, [N, C]", "layer", case(fnnet.BatchNorm(backward_form="full"),
                                                      rng.standard_normal((6, 3)), bn_p, state=bn_s, train=True)),
        ("elu", "layer", case(fnnet.ELU(), rng.standard_normal((5, 4)))),
        ("silu", "layer", case(fnnet.SiLU(), rng.standard_normal((5, 4)))),
        ("softplus", "layer", case(fnnet.Softplus(), rng.standard_normal((5, 4)))),
        ("cnn conv/bn/pool/dropout train", "network", cnn(True)),
        ("cnn conv/bn/pool/dropout eval", "network", cnn(False)),
    ]


def _warned(report):
    """True when a row says "warn": the report passes, with a note to read (an oracle outvoted)."""
    return any(r.status == "warn" for r in report.rows)


def _fmt(v):
    return "n/a" if v is None else f"{v:.1e}"


def run(dtypes=("float64", "float32"), only=None, verbose=False, jobs=1, out=None):
    """Run the cases; print the table to `out` (default stdout); return (ok, rows, seconds)."""
    from fnnet import check

    out = sys.stdout if out is None else out
    t0, cpu0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(0)
    cases = _cases(rng)
    if only:
        cases = [c for c in cases if any(o in c[0] for o in only)]
        if not cases:
            raise SystemExit(f"fnnet check: no case matches {only}")
    header = ("primitive", "dtype", "jax", "reference", "fd", "kinks", "time", "result")
    widths = (34, 7, 8, 9, 8, 5, 6, 6)
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    print("fnnet check: hand-written backward vs oracle, max relative error per oracle "
          "(jax.vjp / reference/ NumPy float64 / finite differences in float64)", file=out)
    print(line(header), file=out)
    print(line(["-" * w for w in widths]), file=out)

    def one(name, dt, build):
        # float64 cases need x64; float32 cases run as a user without x64 would run them
        # (jax's x64 switch is thread-local, so cases can run side by side)
        with jax.enable_x64(dt == "float64"):
            fn, args, kwargs = build(DTYPES[dt])
            t = time.perf_counter()
            report = getattr(check, fn)(*args, **kwargs)
        return report, time.perf_counter() - t

    ok, rows = True, []
    todo = [(name, dt, build) for name, _, build in cases for dt in dtypes]
    # jobs > 1: XLA compiles with the GIL released, so threads overlap one case's compilation
    # with another's tracing. Rows are printed in order either way.
    pool = concurrent.futures.ThreadPoolExecutor(jobs) if jobs > 1 else None
    results = ([pool.submit(one, *case) for case in todo] if pool else (one(*case) for case in todo))
    try:
        for (name, dt, _), result in zip(todo, results):
            report, secs = result.result() if pool else result
            row = (name, dt, _fmt(report.max_rel_err("jax")), _fmt(report.max_rel_err("reference")),
                   _fmt(report.max_rel_err("fd")), report.kinks, f"{secs:.2f}",
                   "FAIL" if not report.ok else "warn" if _warned(report) else "ok")
            rows.append((row, report))
            ok &= report.ok
            print(line(row), file=out, flush=True)
            if verbose or not report.ok or _warned(report):      # a warning's note must be read
                print("\n" + str(report) + "\n", file=out)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n_fail = sum(not r.ok for _, r in rows)
    n_warn = sum(r.ok and _warned(r) for _, r in rows)
    warned = f", {n_warn} passed with warnings (notes above)" if n_warn else ""
    print(f"\n{len(rows)} checks, {n_fail} failed{warned}, total {seconds:.1f} s wall "
          f"({cpu:.1f} s CPU; wall exceeds CPU when the machine is shared)", file=out)
    return ok, rows, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="fnnet check",
        description="Four-way gradient check of every built-in primitive (dense, activations, "
                    "losses, L2) and the seeds' networks, in float64 and float32: hand-written "
                    "backward vs jax.vjp, vs the NumPy float64 twin in reference/, vs float64 "
                    "finite differences. Exits 1 on any failure.")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                        help="precision of the primals (default: both)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only cases whose name contains NAME (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every full report")
    parser.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="cases checked side by side in threads (default: 2, or 1 on one core)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    ok, _, _ = run(dtypes, args.only, args.verbose, args.jobs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
