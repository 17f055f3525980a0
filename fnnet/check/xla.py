"""XLA compiler options for the programs a check compiles (fnnet.check.fd, core)."""
from __future__ import annotations

import jax

# A check runs each program a handful of times, so XLA's LLVM optimization costs more than
# it saves for dense/elementwise programs: measured on the digits net (2-core CPU), level 0
# compiles in 0.8 s instead of 1.4 s and runs no slower. It changes code generation, not the
# computation. For convolutions, windowed reductions and loops it is the other way round:
# unoptimized loops run 10-100x slower (a conv2d check on x [2, 3, 8, 8]: 44 s at level 0,
# about 1 s at the default), so those programs get XLA's defaults (jit_options).
JIT_OPTIONS = {"xla_backend_optimization_level": 0}
HEAVY = ("conv", "reduce_window", "select_and", "scan", "while", "cumsum", "cumprod", "cummax",
         "sort", "fft", "dot_general")


def jit_options(fun, *args):
    """JIT_OPTIONS, or {} (XLA's defaults) when fun's jaxpr has a primitive in HEAVY with work
    beyond a small dense layer (any conv/window/loop; a dot_general with batch dimensions)."""
    try:
        jaxpr = jax.make_jaxpr(fun)(*args).jaxpr
    except Exception:
        return JIT_OPTIONS
    return options_for(jaxpr)


def options_for(jaxpr):
    """jit_options of an already traced jaxpr."""
    stack = [jaxpr]
    while stack:
        jp = stack.pop()
        for eqn in jp.eqns:
            name = eqn.primitive.name
            if name == "dot_general":
                if eqn.params["dimension_numbers"][1][0]:      # batch dims: attention-like
                    return {}
            elif name.startswith(HEAVY):
                return {}
            for v in eqn.params.values():
                for item in (v if isinstance(v, (tuple, list)) else (v,)):
                    sub = getattr(item, "jaxpr", item)
                    if hasattr(sub, "eqns"):
                        stack.append(sub)
    return JIT_OPTIONS
