"""What each fnnet.check entry point costs on one small custom rule, first call and again.

    python scripts/check_costs.py [--repeats 3] [--dtype float32]

The rule: y = tanh(x @ w) as a jax.custom_vjp (x [8, 32], w [32, 16]), its hand-written
backward beside each line; a custom_jvp twin for the JVP checks, a symbolic_zeros=True
variant for check_symbolic_zeros and a complex z·w for check_complex_vjp. Every check must
pass (the script stops otherwise: a cost of a failing check is not the cost users pay).
Each check runs once (its first call, compiles included; the checks run in the table's
order in one process, so a first call may reuse what an earlier row compiled), then `repeats` more
times; the table prints the first call and the median of the others in seconds, with the
1-minute load average before and after. Run it with nothing else on the machine (load < 1).
check_shard_map needs several devices and is timed in its own test (tests/check).
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


@jax.custom_vjp
def layer(x, w):
    return jnp.tanh(x @ w)


def layer_fwd(x, w):
    y = jnp.tanh(x @ w)
    return y, (x, w, y)


def layer_bwd(res, ct):
    x, w, y = res
    dz = ct * (1 - y * y)                       # dL/dz = ct ⊙ (1 − tanh²)
    return dz @ w.T, x.T @ dz                   # dL/dx = dz wᵀ, dL/dw = xᵀ dz


layer.defvjp(layer_fwd, layer_bwd)


def layer_vjp(x, w, ct):
    return layer_bwd(layer_fwd(x, w)[1], ct)


@jax.custom_jvp
def layer_jvp(x, w):
    return jnp.tanh(x @ w)


@layer_jvp.defjvp
def _layer_jvp_rule(primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    y = jnp.tanh(x @ w)
    return y, (1 - y * y) * (dx @ w + x @ dw)   # dy = (1 − y²) ⊙ (dx w + x dw)


@jax.custom_vjp
def sincos(x, w):
    return jnp.sin(x) * w, jnp.cos(x)


def _sincos_fwd(x, w):
    return sincos.fun(x.value, w.value), (x.value, w.value)


def _sincos_bwd(res, cts):
    x, w = res
    a, b = cts
    dx, dw = jnp.zeros_like(x), jnp.zeros_like(w)
    if not isinstance(a, jax.custom_derivatives.SymbolicZero):
        dx = dx + a * jnp.cos(x) * w             # d(sin x · w)/dx = cos(x)·w
        dw = dw + a * jnp.sin(x)                 # d(sin x · w)/dw = sin(x)
    if not isinstance(b, jax.custom_derivatives.SymbolicZero):
        dx = dx - b * jnp.sin(x)                 # d(cos x)/dx = −sin(x)
    return dx, dw


sincos.defvjp(_sincos_fwd, _sincos_bwd, symbolic_zeros=True)


def complex_mul(z, w):
    return jnp.sin(z) * w


def complex_mul_vjp(z, w, ct):
    # JAX's convention (c pairs with t by Re(c·t)): for a holomorphic y the VJP is the plain
    # transpose, ct · ∂y/∂input, no conjugate
    return ct * jnp.cos(z) * w, ct * jnp.sin(z)


def per_example_out(w, x):
    return jnp.tanh(x @ w) ** 2                  # [batch, 16]: one row per example


def per_example_vjp(w, x, ct):
    y = jnp.tanh(x @ w)
    dz = ct * 2 * y * (1 - y * y)                # d(y²)/dz = 2y(1 − y²)
    return x.T @ dz, dz @ w.T                    # dL/dw = xᵀ dz, dL/dx = dz wᵀ


def cases(dtype):
    """(name, thunk) for every entry point; each thunk returns a Report."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 32)).astype(dtype)
    w = (rng.standard_normal((32, 16)) / 6).astype(dtype)
    s = rng.standard_normal((3, 4)).astype(dtype)
    cdt = np.complex128 if dtype == np.float64 else np.complex64
    z = (rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))).astype(cdt)
    cw = (rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))).astype(cdt)
    return [
        ("check_vjp", lambda: check.check_vjp(layer.fun, layer_vjp, x, w)),
        ("check_custom_vjp", lambda: check.check_custom_vjp(layer, x, w)),
        ("check_custom_vjp(transforms=all)",
         lambda: check.check_custom_vjp(layer, x, w, transforms=check.transforms.TRANSFORMS)),
        ("check_transforms", lambda: check.check_transforms(layer, x, w)),
        ("check_jvp", lambda: check.check_jvp(layer_jvp, x, w)),
        ("check_adjoint", lambda: check.check_adjoint(layer_jvp, None, layer_vjp, x, w)),
        ("taylor_test", lambda: check.taylor_test(layer.fun, layer_vjp, x, w)),
        ("check_symbolic_zeros", lambda: check.check_symbolic_zeros(sincos, s, s[::-1].copy())),
        ("check_complex_vjp", lambda: check.check_complex_vjp(complex_mul, complex_mul_vjp, z, cw)),
        ("check_second_order", lambda: check.check_second_order(layer.fun, layer_vjp, x, w)),
        ("check_per_example", lambda: check.check_per_example(per_example_out, per_example_vjp, w, x)),
    ]


def timed(thunk):
    t0 = time.perf_counter()
    report = thunk()
    seconds = time.perf_counter() - t0
    if not report.ok:
        raise SystemExit(f"a right rule failed, so its cost is not measured:\n{report}")
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = p.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    load_before = os.getloadavg()[0]
    rows = []
    for name, thunk in cases(dtype):
        first = timed(thunk)
        again = [timed(thunk) for _ in range(args.repeats)]
        rows.append((name, first, statistics.median(again)))
    load_after = os.getloadavg()[0]
    print(f"| check ({args.dtype}, small rule) | first call s | again s (median of {args.repeats}) |")
    print("|---|---|---|")
    for name, first, again in rows:
        print(f"| {name} | {first:.2f} | {again:.2f} |")
    print(f"\n1-minute load average: {load_before:.2f} before, {load_after:.2f} after")


if __name__ == "__main__":
    main()
