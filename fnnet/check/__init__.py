"""fnnet.check: prove a hand-written backward against three independent oracles.

    report = check_vjp(fun, vjp, *primals, cotangent=None, key=None)
    #   fun(*primals) -> y                  pure JAX forward (array or pytree)
    #   vjp(*primals, cotangent) -> tuple   one cotangent per primal (pytrees allowed)
    report.ok                  # every comparison passed
    print(report)              # primal | oracle | max abs err | rel err | worst index | actual | expected | tol | verdict
    report.raise_if_failed()   # AssertionError carrying the table
    report.plot("where.png")   # per leaf, |actual - expected| / tol element by element (fnnet.check.plot)
    ci.save_json(report)       # to $FNNET_CHECK_JSON/<title>.json for CI (fnnet.check.ci; a pytest
                               # fixture: fnnet.check.pytest_plugin)

    check_layer(layer, params, x)            # layer.backward vs jax / reference / FD (integer x ok)
    check_network(net, params, x, y)         # fnnet.backprop (params and x) vs the same
    check_loss(loss, out, target)            # loss.grad vs the same
    check_custom_vjp(f, *primals)            # a jax.custom_vjp's own fwd/bwd vs FD and autodiff of f.fun;
                                             # f's keywords pass through (f, x, n=3); a determinism row
                                             # (two runs bit for bit); transforms=(...) adds
                                             # check_transforms' rows; a custom_jvp: "use check_jvp"
    check_jvp(f, *primals)                   # a jax.custom_jvp's rule (or jvp=...) vs FD along directions
    check_second_order(fun, vjp, *primals)   # the backward's own VJP (Hessian-vector products) vs FD
    check_per_example(fun, vjp, params, x)   # vmap of the backward == per-example loop; sums to the batch
                                             # (both also take a custom_vjp as it is: (f, *primals))
    check_transforms(f, *primals)            # a custom_vjp (or fun, vjp=) under jit, vmap, lax.scan, remat
                                             # and vmap∘grad vs the rule alone: one row per transform
    check_shard_map(f, *primals, mesh=, in_specs=, out_specs=)   # the rule inside jax.shard_map vs autodiff
                                             # of f.fun there; each gradient sharded as its parameter
    check_adjoint(f, jvp, vjp, *primals)     # <u, Jᵀv> == <Ju, v>: a JVP and a VJP rule are each other's
                                             # transpose (custom_jvp: jvp, vjp None; custom_vjp: vjp None)
    taylor_test(fun, vjp, *primals)          # |f(x+hv) - f(x) - h<g, v>| falls as h² (slope 2) for a right
                                             # gradient, as h for a wrong one; no step size, no tolerance
    check_symbolic_zeros(f, *primals)        # a symbolic_zeros=True custom_vjp handed SymbolicZero
                                             # cotangents == handed zeros (also inside check_custom_vjp)
    check_complex_vjp(fun, vjp, *primals)    # complex primals/outputs in JAX's convention (c pairs with t
                                             # by Re(c·t)), checked as (re, im) pairs by check_vjp's witnesses;
                                             # check_vjp and check_custom_vjp route complex rules here; the four
                                             # checks above take complex rules in the same convention

Non-differentiable inputs (integer indices, bool masks, PRNG keys, static config): nondiff=
by position or name, or automatically for non-floating primals (fnnet.check.nondiff). A
module passed whole (an equinox Module with its activation functions, a flax nnx Module with
its Rngs) is differentiated in its floating arrays, the other leaves held fixed, as
eqx.filter_grad does.
Overrides: rtol=, atol=. Rows show the ACTUAL (hand-written) and EXPECTED (oracle) values
at the worst index.

The oracles, per primal leaf (pytree path such as `params.w` or `x`):
  jax.vjp    autodiff of `fun`, in the primals' dtype, element by element; "info" (not a
             witness) when fun contains a user custom_vjp/custom_jvp (fnnet.check.independence);
  reference  the NumPy float64 twin in reference/ (check_layer/network/loss find it
             through fnnet.check.bridge; check_vjp takes reference=callable), "n/a" if none;
  finite differences of g = <cotangent, fun> in float64 (fnnet.check.fd), under
             jax.enable_x64 whatever the user's setting: one difference per element for
             small leaves (mode="auto": <= full_max elements, <= full_budget in all; every
             leaf up to localize_max when jax.vjp is not a witness), random directions plus
             block directions of stated power (detect=) for the others, localized per
             element on the failing blocks.
Kinks (relu at 0, max ties) are not failures: where two answers disagree, or one disagrees
with the central difference, and both lie inside the interval spanned by the one-sided
differences of a genuine kink, the element is "accepted at kink" and counted, provided the
accepted elements are jointly a subgradient (fnnet.check.kinks; the rules, including several
kinks crossed at once: fnnet.check.fdcompare). Where jax.vjp disagrees with finite
differences and the hand-written value agrees with them (and with the reference, if any),
the jax.vjp row is a warning, not a failure (autodiff at a kink or of a stable rewrite). NaN/inf in the hand-written result fails
unless the oracle has the identical value there.
Several kinks crossed by one coordinate (a 3-way sort tie, maxout rows sharing a weight):
fnnet.check.hull. A fun computing in bfloat16/float16 inside: finite differences n/a, judged
against jax.vjp at that dtype's precision. Every row's status: fnnet.check.verdict.
Tolerances and why (dtype-aware rtol, resolution floor, FD noise, autodiff yardstick):
fnnet.check.compare. Validation of what goes in and comes out: fnnet.check.inputs.
"""
from __future__ import annotations

from fnnet.check import ci
from fnnet.check.adjoint import check_adjoint
from fnnet.check.complex_vjp import check_complex_vjp
from fnnet.check.vjp import check_vjp
from fnnet.check.extra import check_per_example, check_second_order
from fnnet.check.jvp import check_custom_vjp, check_jvp
from fnnet.check.objects import check_layer, check_loss, check_network
from fnnet.check.report import Report, Row
from fnnet.check.symbolic_zeros import check_symbolic_zeros
from fnnet.check.taylor import TaylorReport, taylor_test
from fnnet.check.transforms import check_transforms
from fnnet.check.sharded import check_shard_map
from fnnet.check.precision import PrecisionReport, precision_report

__all__ = ["check_vjp", "check_layer", "check_network", "check_loss", "check_custom_vjp", "check_jvp",
           "check_second_order", "check_per_example", "check_transforms", "check_shard_map", "check_adjoint", "taylor_test",
           "TaylorReport", "check_symbolic_zeros", "check_complex_vjp", "Report", "Row", "precision_report",
           "PrecisionReport"]
