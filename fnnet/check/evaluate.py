"""Running a check's callables: fun, the hand-written rule and jax.vjp in one jitted program.

Run together so that the rule and autodiff share the forward's values (a saturated tanh's
1 - t² is then rounded alike on both sides), in one compilation instead of one per eager op.
"""
from __future__ import annotations

import jax

from fnnet.check.inputs import annotate


def lowp_note(lowp):
    return (f"not judged: fun rounds to {'/'.join(lowp)} inside, so its finite differences are those "
            f"of a quantized function (0 within a rounding step, a jump across one); jax.vjp "
            f"(differentiating through the casts) and the reference judge the rule, to that dtype's "
            f"precision: an error smaller than a few of its eps cannot be told from rounding")


def evaluate(fun, hand, oracle_fun, primals, ct, jit, options, rule="the hand-written vjp"):
    """(y, hand-written cotangents, jax.vjp's cotangents, nondiff flags), by default in one
    jitted call. jax.vjp is of oracle_fun when given (second order), else of fun."""
    def hand_written(primals, ct):
        try:
            return hand(primals, ct)
        except Exception as e:
            raise annotate(e, rule)

    def both(primals, ct):
        if oracle_fun is None:
            y, pullback = jax.vjp(fun, *primals)
        else:
            y, (_, pullback) = fun(*primals), jax.vjp(oracle_fun, *primals)
        h, flags = hand_written(primals, ct)
        return y, h, pullback(ct), flags

    if not jit:
        return both(primals, ct)
    try:
        return jax.jit(both, compiler_options=options)(primals, ct)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerIntegerConversionError, jax.errors.TracerBoolConversionError):
        return both(primals, ct)   # value-dependent Python in the vjp: it only runs eagerly
    except TypeError as e:
        if "not a valid JAX type" not in str(e):
            raise
        return both(primals, ct)   # the vjp returned non-arrays (None, strings): let the checks name it
