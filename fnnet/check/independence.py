"""Is jax.vjp of `fun` an independent witness? Not when `fun` runs a custom rule of the user's.

jax.vjp of a function containing a `jax.custom_vjp` (or `jax.custom_jvp`) differentiates it
with that rule, so when the rule is the one under test the autodiff row agrees with its
bugs. We trace `fun` to a jaxpr and look, through every nested jaxpr (jit, scan, cond,
while, remat, ...), for custom_vjp_call / custom_jvp_call equations. Rules defined inside
JAX itself (jax.nn.relu, jnp.logaddexp, ...) are JAX's, tested by JAX, not under test here:
they leave jax.vjp independent. Anything else (the user's code, fnnet's own
`loss_with_manual_grad`) makes the jax.vjp row "not independent": it is reported for
information and never votes; finite differences and the reference decide.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

_JAX_DIR = os.path.dirname(os.path.abspath(jax.__file__))
_CUSTOM = ("custom_vjp", "custom_jvp")


def _subjaxprs(params):
    for v in params.values():
        for item in (v if isinstance(v, (tuple, list)) else (v,)):
            if hasattr(item, "eqns"):
                yield item
            elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr


def _where(eqn) -> str:
    cj = eqn.params.get("call_jaxpr")
    info = getattr(getattr(cj, "jaxpr", cj), "debug_info", None)
    return str(getattr(info, "func_src_info", "") or "")


def _is_jax_own(src: str) -> bool:
    path = src.split(" at ", 1)[1].rsplit(":", 1)[0] if " at " in src else ""
    return bool(path) and os.path.abspath(path).startswith(_JAX_DIR + os.sep)


def _eqns(jaxpr, descend=lambda eqn: True):
    """Every equation of a jaxpr and of its nested jaxprs (each visited once); an equation's
    own sub-jaxprs are entered only where descend(eqn) is true."""
    stack, seen = [jaxpr], set()
    while stack:
        jp = stack.pop()
        if id(jp) in seen:
            continue
        seen.add(id(jp))
        for eqn in jp.eqns:
            yield eqn
            if descend(eqn):
                stack.extend(_subjaxprs(eqn.params))


def _user_rule(eqn) -> str:
    """'custom_vjp f at file.py:12' for a user's custom rule equation, else ''."""
    name = eqn.primitive.name
    if not name.startswith(_CUSTOM) or _is_jax_own(_where(eqn)):
        return ""
    kind, src = ("custom_vjp" if name.startswith("custom_vjp") else "custom_jvp"), _where(eqn)
    return f"{kind} {src}" if src else kind


def custom_rules(jaxpr) -> list:
    """['custom_vjp f at file.py:12', ...]: the user-defined custom rules in a jaxpr (nested too).
    A rule's body is the primal, not the rule: it is not searched further."""
    found = []
    for eqn in _eqns(jaxpr, descend=lambda e: not _user_rule(e)):
        text = _user_rule(eqn)
        if text and text not in found:
            found.append(text)
    return found


def stop_gradients(jaxpr) -> int:
    """How many stop_gradient equations a jaxpr holds (nested jaxprs included). Where fun
    stops a gradient, jax.vjp (and a rule written to match it) give the surrogate that
    stop_gradient defines, while finite differences see the function's own derivative; the
    two agree when the stopped value does not change the result to first order (the max
    subtracted inside jax.nn.softmax / logsumexp), and differ where it does."""
    return sum(eqn.primitive.name == "stop_gradient" for eqn in _eqns(jaxpr))


def rules_in(fun, *args) -> list:
    """custom_rules of fun traced at args ([] when fun cannot be traced abstractly)."""
    try:
        closed = jax.make_jaxpr(fun)(*args)
    except Exception:
        return []
    return custom_rules(closed.jaxpr)


def note(rules) -> str:
    shown = "; ".join(rules[:3]) + (f"; and {len(rules) - 3} more" if len(rules) > 3 else "")
    return (f"not an independent witness: fun contains the custom rule(s) {shown}, which jax.vjp "
            f"runs instead of differentiating; finite differences and the reference decide")


def _is_float(v) -> bool:
    dt = getattr(getattr(v, "aval", None), "dtype", None)
    return dt is not None and jnp.issubdtype(dt, jnp.floating)


def _carry_feedback(eqn, sub, tainted_out):
    """Loop carries: invars of a scan / while body fed by its own tainted outputs."""
    name = eqn.primitive.name
    if name == "scan":
        first, n = eqn.params["num_consts"], eqn.params["num_carry"]
    elif name == "while" and sub is _as_jaxpr(eqn.params.get("body_jaxpr")):
        first, n = eqn.params["body_nconsts"], len(sub.outvars)
    else:
        return set()
    return {first + i for i in range(n) if i < len(tainted_out) and tainted_out[i]}


def _as_jaxpr(item):
    return getattr(item, "jaxpr", item) if item is not None else None


def _tainted_dtypes(jaxpr, tainted_in, limit, found) -> list:
    """Walk `jaxpr` forward with the set of values that depend on a tainted input; add to
    `found` every floating dtype coarser than eps `limit` that such a value takes. Returns,
    per outvar, whether it is tainted. A sub-jaxpr's invars line up with the tail of its
    equation's operands (jit, remat, custom rules, scan: all of them; cond: all but the
    branch index; while's body: its consts and carry); loop carries are iterated to a fixed
    point. Where they do not line up, every invar is tainted if any operand is."""
    tainted = {v for v, t in zip(jaxpr.invars, tainted_in) if t}

    def is_t(v):
        return not hasattr(v, "val") and v in tainted

    for eqn in jaxpr.eqns:
        ins = [is_t(v) for v in eqn.invars]
        if not any(ins):
            continue
        subs = list(_subjaxprs(eqn.params))
        outs_t = [not subs] * len(eqn.outvars)      # a primitive: every output depends on x
        for sub in subs:
            k = len(sub.invars)
            sub_in = ins[len(ins) - k:] if k <= len(ins) else [True] * k
            extra = set()
            for _ in range(4):                                  # loop carries: to a fixed point
                out_t = _tainted_dtypes(sub, [t or i in extra for i, t in enumerate(sub_in)],
                                        limit, found)
                more = _carry_feedback(eqn, sub, out_t)
                if more <= extra:
                    break
                extra |= more
            if len(out_t) != len(outs_t):                       # not lined up: conservative
                out_t = [any(out_t)] * len(outs_t)
            outs_t = [a or b for a, b in zip(outs_t, out_t)]
        for v, t in zip(eqn.outvars, outs_t):
            if t:
                tainted.add(v)
                if _is_float(v) and float(jnp.finfo(v.aval.dtype).eps) > limit:
                    found.add(str(np.dtype(v.aval.dtype)))
    return [is_t(v) for v in jaxpr.outvars]


def low_precision(jaxpr, than) -> list:
    """Floating dtypes coarser than `than` that fun computes its result in, on the way from a
    floating input to the output (nested jaxprs too), e.g. ['bfloat16'] for a forward that
    casts x to bfloat16. Finite differences of such a fun are differences of a quantized
    function: 0 inside a rounding step, a jump across one, so they cannot judge a rule
    (fnnet.check.core says so instead). Values that do not depend on a floating input (a
    dropout mask drawn in float32 from a key, a constant table) quantize nothing of x."""
    limit = float(jnp.finfo(than).eps)
    found = set()
    _tainted_dtypes(jaxpr, [_is_float(v) for v in jaxpr.invars], limit, found)
    return sorted(found)
