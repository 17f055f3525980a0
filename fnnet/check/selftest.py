"""The checker's self-test: a battery of hand-written rules, correct and buggy, of the kinds the
field writes, each judged by fnnet.check in float64 and float32.

    result = run()                       # every rule, both dtypes
    print(result.text())                 # per family: bugs caught, false alarms; totals
    result.ok                            # every bug caught and no false alarm

A family is one function (layer norm, a conv, a pool with ties, attention, ...); each has one
correct rule and one or more buggy ones, each bug a realistic slip (a missing transpose, the
wrong axis, a dropped 1/n, a tie credited twice, a dropped term). A buggy rule is caught when
its report fails; a correct rule raises a false alarm when its report fails. Primals are drawn
from a fixed seed, in float64 and cast to float32 for the float32 run. `fnnet check
--self-test` runs it (fnnet/cli/check.py).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

DTYPES = ("float64", "float32")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One hand-written rule: fun(*primals) -> y, rule(*primals, ct) -> one cotangent per
    primal (check_vjp's convention), primals(rng) -> float64 arrays; correct: whether the rule
    is right; entry: "vjp" (check_vjp) or "custom_vjp" (fun is the jax.custom_vjp, rule
    unused: check_custom_vjp reads fwd/bwd); nondiff: positions held fixed."""
    family: str
    name: str
    correct: bool
    fun: Callable
    rule: Callable
    primals: Callable
    entry: str = "vjp"
    nondiff: tuple = ()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One rule checked in one dtype: passed is the report's verdict."""
    rule: Rule
    dtype: str
    passed: bool
    seconds: float

    @property
    def right(self):
        """The verdict is the right one: a correct rule passes, a buggy one fails."""
        return self.passed == self.rule.correct


@dataclasses.dataclass(frozen=True)
class Result:
    outcomes: tuple
    seconds: float

    @property
    def ok(self):
        return all(o.right for o in self.outcomes)

    def counts(self, family=None):
        """(bugs, caught, correct, false alarms) over the outcomes (of one family)."""
        mine = [o for o in self.outcomes if family is None or o.rule.family == family]
        bugs = [o for o in mine if not o.rule.correct]
        good = [o for o in mine if o.rule.correct]
        return len(bugs), sum(not o.passed for o in bugs), len(good), sum(not o.passed for o in good)

    def text(self):
        """Per family and dtype-summed: caught/bugs and false alarms/correct; the misses and
        false alarms by name; the totals."""
        families = list(dict.fromkeys(o.rule.family for o in self.outcomes))
        lines = [f"{'family':<28} {'caught':>9} {'false alarms':>13}"]
        for f in families:
            b, c, g, fa = self.counts(f)
            lines.append(f"{f:<28} {c:>4}/{b:<4} {fa:>6}/{g:<6}")
        wrong = [o for o in self.outcomes if not o.right]
        for o in wrong:
            lines.append(f"  {'MISSED' if not o.rule.correct else 'FALSE ALARM'}: {o.rule.family} / "
                         f"{o.rule.name} ({o.dtype})")
        b, c, g, fa = self.counts()
        n_rules = len({(o.rule.family, o.rule.name) for o in self.outcomes})
        n_bug = len({(o.rule.family, o.rule.name) for o in self.outcomes if not o.rule.correct})
        dts = "/".join(dict.fromkeys(o.dtype for o in self.outcomes))
        lines.append(f"total: {n_rules} rules ({n_bug} buggy, {n_rules - n_bug} correct) in {dts}: "
                     f"{c}/{b} bug checks caught, {fa} false alarm(s) in {g} correct checks "
                     f"({self.seconds:.1f} s)")
        return "\n".join(lines)


def _normal(*shape):
    return lambda rng: (rng.standard_normal(shape),)


# -- the families -------------------------------------------------------------------------------
# Each builder returns a list of Rules: the correct one first, then the bugs. Rules are written
# as users write them (plain jnp), differently from autodiff where that is natural.

def _layernorm():
    eps = 1e-5

    def fun(x, g):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + eps) * g[None, :]

    def make(n_fix=1.0):
        def rule(x, g, ct):
            mu = x.mean(-1, keepdims=True)
            s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
            xh = (x - mu) / s
            dxh = ct * g[None, :]
            dx = (dxh - dxh.mean(-1, keepdims=True) * n_fix - xh * (dxh * xh).mean(-1, keepdims=True)) / s
            return dx, (ct * xh).sum(0)
        return rule
    prim = lambda rng: (rng.standard_normal((4, 6)) * 2 + 1, rng.standard_normal(6))
    return [Rule("layer norm", "correct", True, fun, make(), prim),
            Rule("layer norm", "mean term scaled by 1/(n-1)", False, fun, make(n_fix=6 / 5), prim)]


def _rmsnorm():
    def fun(x):
        return x / jnp.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)

    def make(drop=False):
        def rule(x, ct):
            r = jnp.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
            y = x / r
            dx = ct / r if drop else (ct - y * (ct * y).mean(-1, keepdims=True)) / r
            return (dx,)
        return rule
    prim = lambda rng: (rng.standard_normal((3, 5)),)
    return [Rule("rms norm", "correct", True, fun, make(), prim),
            Rule("rms norm", "dropped the normalizer's term", False, fun, make(drop=True), prim)]


def _batchnorm():
    def fun(x):
        mu = x.mean(0, keepdims=True)
        return (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(0, keepdims=True) + 1e-5)

    def make(bessel=False):
        def rule(x, ct):
            n = x.shape[0]
            mu = x.mean(0, keepdims=True)
            var = ((x - mu) ** 2).sum(0, keepdims=True) / (n - 1 if bessel else n)
            s = jnp.sqrt(var + 1e-5)
            xh = (x - mu) / s
            return ((ct - ct.mean(0, keepdims=True) - xh * (ct * xh).mean(0, keepdims=True)) / s,)
        return rule
    prim = lambda rng: (rng.standard_normal((8, 3)) * 1.5,)
    return [Rule("batch norm", "correct", True, fun, make(), prim),
            Rule("batch norm", "Bessel-corrected variance in the backward", False, fun, make(True), prim)]


def _softmax():
    def fun(z):
        return jax.nn.softmax(z, axis=-1)

    def make(bug=None):
        def rule(z, ct):
            s = jax.nn.softmax(z, axis=-1)
            if bug == "no_inner":
                return (s * ct,)
            if bug == "axis":
                return (s * (ct - (ct * s).sum(0, keepdims=True)),)
            return (s * (ct - (ct * s).sum(-1, keepdims=True)),)
        return rule
    prim = _normal(3, 4)
    return [Rule("softmax", "correct", True, fun, make(), prim),
            Rule("softmax", "dropped <ct, s>", False, fun, make("no_inner"), prim),
            Rule("softmax", "inner product over the wrong axis", False, fun, make("axis"), prim)]


def _logsumexp():
    def fun(z):
        return jax.scipy.special.logsumexp(z, axis=-1)

    def make(bug=False):
        def rule(z, ct):
            e = jnp.exp(z - z.max(-1, keepdims=True))
            return (ct[:, None] * (e if bug else e / e.sum(-1, keepdims=True)),)
        return rule
    prim = lambda rng: (rng.standard_normal((3, 5)) * 3,)
    return [Rule("logsumexp", "correct", True, fun, make(), prim),
            Rule("logsumexp", "unnormalized exponentials", False, fun, make(True), prim)]


def _gelu():
    c = np.sqrt(2 / np.pi)

    def fun(x):
        return 0.5 * x * (1 + jnp.tanh(c * (x + 0.044715 * x ** 3)))

    def make(k=3.0):
        def rule(x, ct):
            u = c * (x + 0.044715 * x ** 3)
            t = jnp.tanh(u)
            return (ct * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + k * 0.044715 * x * x)),)
        return rule
    prim = lambda rng: (rng.standard_normal((4, 5)) * 2,)
    return [Rule("GELU (tanh)", "correct", True, fun, make(), prim),
            Rule("GELU (tanh)", "cubic's derivative without its 3", False, fun, make(1.0), prim)]


def _softplus():
    def fun(x):
        return jnp.logaddexp(x, 0.0)

    def make(bug=False):
        return lambda x, ct: (ct * jax.nn.sigmoid(-x if bug else x),)
    prim = lambda rng: (rng.standard_normal((3, 4)) * 3,)
    return [Rule("softplus", "correct", True, fun, make(), prim),
            Rule("softplus", "sigmoid of -x", False, fun, make(True), prim)]


def _elu():
    def fun(x):
        return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0.0)))

    def make(bug=False):
        return lambda x, ct: (ct * jnp.where(x > 0, 1.0, 1.0 if bug else jnp.exp(jnp.minimum(x, 0.0))),)
    prim = lambda rng: (rng.standard_normal((3, 4)) * 2,)
    return [Rule("ELU", "correct", True, fun, make(), prim),
            Rule("ELU", "slope 1 on the negative side", False, fun, make(True), prim)]


def _matmul():
    def fun(x, w):
        return x @ w

    def make(bug=False):
        return lambda x, w, ct: (ct @ (w if bug else w.T), x.T @ ct)
    prim = lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((4, 4)))
    return [Rule("matmul", "correct", True, fun, make(), prim),
            Rule("matmul", "missing transpose in dx", False, fun, make(True), prim)]


def _batched_matmul():
    def fun(x, w):
        return jnp.einsum("bnk,km->bnm", x, w)

    def make(bug=False):
        def rule(x, w, ct):
            dw = x[0].T @ ct[0] if bug else jnp.einsum("bnk,bnm->km", x, ct)
            return jnp.einsum("bnm,km->bnk", ct, w), dw
        return rule
    prim = lambda rng: (rng.standard_normal((3, 2, 4)), rng.standard_normal((4, 5)))
    return [Rule("broadcasted matmul", "correct", True, fun, make(), prim),
            Rule("broadcasted matmul", "dw from the first batch only", False, fun, make(True), prim)]


def _conv1d():
    def fun(x, w):        # x [n, L], w [k]: valid cross-correlation
        k = w.shape[0]
        return sum(x[:, i:x.shape[1] - k + 1 + i] * w[i] for i in range(k))

    def make(bug=False):
        def rule(x, w, ct):
            k, L = w.shape[0], x.shape[1]
            out = L - k + 1
            dw = jnp.stack([(ct * x[:, i:out + i]).sum() for i in range(k)])
            ws = w[::-1] if bug else w
            dx = sum(jnp.pad(ct * ws[i], ((0, 0), (i, k - 1 - i))) for i in range(k))
            return dx, dw
        return rule
    prim = lambda rng: (rng.standard_normal((2, 7)), rng.standard_normal(3))
    return [Rule("conv 1d", "correct", True, fun, make(), prim),
            Rule("conv 1d", "kernel flipped in dx", False, fun, make(True), prim)]


def _avgpool():
    def fun(x):
        return x.reshape(x.shape[0], -1, 2).mean(-1)

    def make(bug=False):
        return lambda x, ct: (jnp.repeat(ct, 2, axis=1) * (1.0 if bug else 0.5),)
    prim = _normal(2, 6)
    return [Rule("average pool", "correct", True, fun, make(), prim),
            Rule("average pool", "missing 1/window", False, fun, make(True), prim)]


def _maxpool_ties():
    def fun(x):
        return x.reshape(x.shape[0], -1, 2).max(-1)

    def make(bug=False):
        def rule(x, ct):
            w = x.reshape(x.shape[0], -1, 2)
            m = w.max(-1, keepdims=True)
            hit = (w == m).astype(x.dtype)
            if not bug:                     # the first maximum only
                hit = hit * jnp.concatenate([jnp.ones_like(hit[..., :1]), 1 - hit[..., :1]], -1)
            return ((hit * ct[..., None]).reshape(x.shape),)
        return rule

    def prim(rng):
        x = rng.standard_normal((2, 6))
        x[0, 1] = x[0, 0]                  # a tie in the first window
        x[1, 5] = x[1, 4]
        return (x,)
    return [Rule("max pool with ties", "correct", True, fun, make(), prim),
            Rule("max pool with ties", "tie credited to both", False, fun, make(True), prim)]


def _embedding():
    def fun(table, ids):
        return table[ids]

    def make(bug=False):
        def rule(table, ids, ct):
            z = jnp.zeros_like(table)
            return (z.at[ids].set(ct) if bug else z.at[ids].add(ct)), None
        return rule

    def prim(rng):
        return rng.standard_normal((5, 3)), np.array([1, 3, 1, 0])
    return [Rule("embedding", "correct", True, fun, make(), prim, nondiff=(1,)),
            Rule("embedding", "repeated ids overwrite (set, not add)", False, fun, make(True), prim, nondiff=(1,))]


def _attention():
    def fun(q, k, v):
        s = jax.nn.softmax(q @ k.T / np.sqrt(q.shape[-1]), axis=-1)
        return s @ v

    def make(bug=False):
        def rule(q, k, v, ct):
            d = q.shape[-1]
            s = jax.nn.softmax(q @ k.T / np.sqrt(d), axis=-1)
            ds = ct @ v.T
            dz = s * (ds - (ds * s).sum(-1, keepdims=True))
            dq = dz @ k if bug else dz @ k / np.sqrt(d)
            return dq, dz.T @ q / np.sqrt(d), s.T @ ct
        return rule
    prim = lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2)))
    return [Rule("attention", "correct", True, fun, make(), prim),
            Rule("attention", "dq without 1/sqrt(d)", False, fun, make(True), prim)]


def _rnn_step():
    def fun(w, u, h, x):
        return jnp.tanh(h @ w + x @ u)

    def make(bug=False):
        def rule(w, u, h, x, ct):
            a = jnp.tanh(h @ w + x @ u)
            dz = ct if bug else ct * (1 - a * a)
            return h.T @ dz, x.T @ dz, dz @ w.T, dz @ u.T
        return rule
    prim = lambda rng: (rng.standard_normal((3, 3)) / 2, rng.standard_normal((2, 3)) / 2,
                        rng.standard_normal((4, 3)), rng.standard_normal((4, 2)))
    return [Rule("RNN step", "correct", True, fun, make(), prim),
            Rule("RNN step", "tanh's derivative dropped", False, fun, make(True), prim)]


def _label_smoothing():
    eps_ = 0.1

    def fun(z, y):
        k = z.shape[-1]
        t = jax.nn.one_hot(y, k, dtype=z.dtype) * (1 - eps_) + eps_ / k
        return -(t * jax.nn.log_softmax(z, -1)).sum(-1).mean()

    def make(bug=False):
        def rule(z, y, ct):
            k = z.shape[-1]
            t = jax.nn.one_hot(y, k, dtype=z.dtype) * (1 - eps_) + eps_ / (k - 1 if bug else k)
            return ct * (jax.nn.softmax(z, -1) - t) / z.shape[0], None
        return rule
    prim = lambda rng: (rng.standard_normal((4, 5)) * 2, np.array([0, 3, 1, 4]))
    return [Rule("label smoothing", "correct", True, fun, make(), prim, nondiff=(1,)),
            Rule("label smoothing", "smoothing spread over k-1", False, fun, make(True), prim, nondiff=(1,))]


def _mse():
    def fun(p, t):
        return ((p - t) ** 2).mean()

    def make(bug=False):
        return lambda p, t, ct: (ct * (1 if bug else 2) * (p - t) / p.size, -ct * (1 if bug else 2) * (p - t) / p.size)
    prim = lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))
    return [Rule("mean squared error", "correct", True, fun, make(), prim),
            Rule("mean squared error", "missing factor 2", False, fun, make(True), prim)]


def _maximum_ties():
    def fun(a, b):
        return jnp.maximum(a, b)

    def make(bug=False):
        def rule(a, b, ct):
            if bug:                         # both primals get the full cotangent at a tie
                return ct * (a >= b), ct * (b >= a)
            return ct * (a >= b), ct * (b > a)
        return rule

    def prim(rng):
        a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        b[0, :2] = a[0, :2]
        return a, b
    return [Rule("maximum with ties", "correct", True, fun, make(), prim),
            Rule("maximum with ties", "tie credited to both", False, fun, make(True), prim)]


def _sort():
    def fun(x):
        return jnp.sort(x, axis=-1) * jnp.arange(1.0, x.shape[-1] + 1, dtype=x.dtype)[None, :]

    def make(bug=False):
        def rule(x, ct):
            order = jnp.argsort(x, axis=-1)
            g = ct * jnp.arange(1.0, x.shape[-1] + 1, dtype=x.dtype)[None, :]
            rows = jnp.arange(x.shape[0])[:, None]
            if bug:                          # gathers with the permutation instead of scattering
                return (jnp.take_along_axis(g, order, axis=-1),)
            return (jnp.zeros_like(x).at[rows, order].set(g),)
        return rule
    prim = _normal(2, 5)
    return [Rule("sort", "correct", True, fun, make(), prim),
            Rule("sort", "gather instead of scatter", False, fun, make(True), prim)]


def _where_guard():
    def fun(x):
        safe = jnp.where(x > 0, x, 1.0)
        return jnp.where(x > 0, jnp.sqrt(safe), 0.0)

    def make(bug=False):
        def rule(x, ct):
            safe = jnp.where(x > 0, x, 1.0)
            return (ct * jnp.where(x > 0 if not bug else x > -1, 0.5 / jnp.sqrt(safe), 0.0),)
        return rule

    def prim(rng):
        x = rng.standard_normal((3, 4))
        x[0, 0] = 0.0
        return (x,)
    return [Rule("where-guarded sqrt", "correct", True, fun, make(), prim),
            Rule("where-guarded sqrt", "guard leaks to the negative side", False, fun, make(True), prim)]


def _argmax_output():
    def fun(x):
        return x.max(-1), jnp.argmax(x, -1)

    def make(bug=False):
        def rule(x, ct):
            hit = jax.nn.one_hot(jnp.argmax(x, -1), x.shape[-1], dtype=x.dtype)
            return (hit * ct[0][:, None] * (2.0 if bug else 1.0),)
        return rule
    prim = _normal(3, 4)
    return [Rule("max with an integer argmax", "correct", True, fun, make(), prim),
            Rule("max with an integer argmax", "doubled", False, fun, make(True), prim)]


def _bfloat16_inside():
    def fun(x):
        return (x.astype(jnp.bfloat16) ** 2).astype(x.dtype)

    def make(k=2.0):
        return lambda x, ct: (ct * k * x,)
    prim = lambda rng: (rng.standard_normal((3, 4)),)
    return [Rule("bfloat16 inside", "correct", True, fun, make(), prim),
            Rule("bfloat16 inside", "factor 3 for 2", False, fun, make(3.0), prim)]


def _custom_vjp_rule(bug=False):
    @jax.custom_vjp
    def f(x):
        return jnp.log1p(jnp.exp(-jnp.abs(x))) + jnp.maximum(x, 0.0)

    def fwd(x):
        return f(x), x

    def bwd(x, g):
        return (g * (jax.nn.sigmoid(x) if not bug else jax.nn.sigmoid(x) * (1 - jax.nn.sigmoid(x))),)
    f.defvjp(fwd, bwd)
    return f


def _custom_vjp():
    prim = lambda rng: (rng.standard_normal((3, 4)) * 3,)
    return [Rule("custom_vjp softplus", "correct", True, _custom_vjp_rule(), None, prim, entry="custom_vjp"),
            Rule("custom_vjp softplus", "sigmoid's derivative for sigmoid", False, _custom_vjp_rule(True),
                 None, prim, entry="custom_vjp")]


def _cumsum():
    def fun(x):
        return jnp.cumsum(x, -1)

    def make(bug=False):
        return lambda x, ct: (jnp.cumsum(ct, -1) if bug else jnp.cumsum(ct[:, ::-1], -1)[:, ::-1],)
    prim = _normal(2, 5)
    return [Rule("cumsum", "correct", True, fun, make(), prim),
            Rule("cumsum", "forward cumsum of ct", False, fun, make(True), prim)]


def _cumprod():
    def fun(x):
        return jnp.cumprod(x, -1)

    def make(bug=False):
        def rule(x, ct):
            y = jnp.cumprod(x, -1)
            r = jnp.cumsum((ct * y)[:, ::-1], -1)[:, ::-1]
            return (r if bug else r / x,)
        return rule
    prim = lambda rng: (rng.uniform(0.5, 2.0, (2, 5)) * rng.choice((-1.0, 1.0), (2, 5)),)
    return [Rule("cumprod", "correct", True, fun, make(), prim),
            Rule("cumprod", "missing division by x", False, fun, make(True), prim)]


def _l2_normalize():
    def fun(x):
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    def make(bug=False):
        def rule(x, ct):
            n = jnp.linalg.norm(x, axis=-1, keepdims=True)
            y = x / n
            return (ct / n if bug else (ct - y * (ct * y).sum(-1, keepdims=True)) / n,)
        return rule
    prim = _normal(3, 4)
    return [Rule("l2 normalize", "correct", True, fun, make(), prim),
            Rule("l2 normalize", "projection term dropped", False, fun, make(True), prim)]


def _weight_norm():
    def fun(g, v):
        return g[None, :] * v / jnp.linalg.norm(v, axis=0, keepdims=True)

    def make(bug=False):
        def rule(g, v, ct):
            n = jnp.linalg.norm(v, axis=0, keepdims=True)
            u = v / n
            dg = (ct * u).sum(0)
            dv = g[None, :] / n * (ct - u * (ct * u).sum(0 if not bug else 1, keepdims=True))
            return dg, dv
        return rule
    prim = lambda rng: (rng.standard_normal(3) + 2, rng.standard_normal((4, 3)))
    return [Rule("weight norm", "correct", True, fun, make(), prim),
            Rule("weight norm", "projection over the wrong axis", False, fun, make(True), prim)]


def _huber():
    d = 1.0

    def fun(p, t):
        r = p - t
        return jnp.where(jnp.abs(r) <= d, 0.5 * r * r, d * (jnp.abs(r) - 0.5 * d)).sum()

    def make(bug=False):
        def rule(p, t, ct):
            r = p - t
            g = jnp.where(jnp.abs(r) <= d, r, d * (jnp.sign(r) if not bug else 1.0))
            return ct * g, -ct * g
        return rule
    prim = lambda rng: (rng.standard_normal((3, 4)) * 2, rng.standard_normal((3, 4)))
    return [Rule("huber loss", "correct", True, fun, make(), prim),
            Rule("huber loss", "sign lost in the linear branch", False, fun, make(True), prim)]


def _leaky_relu():
    a = 0.1

    def fun(x):
        return jnp.where(x > 0, x, a * x)

    def make(bug=False):
        return lambda x, ct: (ct * (jnp.where(x > 0, a, 1.0) if bug else jnp.where(x > 0, 1.0, a)),)
    prim = _normal(3, 4)
    return [Rule("leaky relu", "correct", True, fun, make(), prim),
            Rule("leaky relu", "slopes swapped", False, fun, make(True), prim)]


def _dropout_mask():
    p = 0.25
    mask = np.random.default_rng(11).uniform(size=(3, 4)) > p

    def fun(x):
        return x * jnp.asarray(mask, x.dtype) / (1 - p)

    def make(bug=False):
        return lambda x, ct: (ct * jnp.asarray(mask, x.dtype) / (1.0 if bug else 1 - p),)
    prim = _normal(3, 4)
    return [Rule("dropout (fixed mask)", "correct", True, fun, make(), prim),
            Rule("dropout (fixed mask)", "missing 1/(1-p)", False, fun, make(True), prim)]


def _group_norm():
    groups = 2

    def fun(x):           # x [n, c], channels split into groups
        n, c = x.shape
        xg = x.reshape(n, groups, c // groups)
        mu = xg.mean(-1, keepdims=True)
        s = jnp.sqrt(((xg - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
        return ((xg - mu) / s).reshape(n, c)

    def make(bug=False):
        def rule(x, ct):
            n, c = x.shape
            xg = x.reshape(n, groups, c // groups)
            dg = ct.reshape(n, c // groups, groups).swapaxes(1, 2) if bug else ct.reshape(n, groups, c // groups)
            mu = xg.mean(-1, keepdims=True)
            s = jnp.sqrt(((xg - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
            xh = (xg - mu) / s
            dx = (dg - dg.mean(-1, keepdims=True) - xh * (dg * xh).mean(-1, keepdims=True)) / s
            return (dx.reshape(n, c),)
        return rule
    prim = lambda rng: (rng.standard_normal((3, 6)) * 2,)
    return [Rule("group norm", "correct", True, fun, make(), prim),
            Rule("group norm", "cotangent grouped along the wrong axis", False, fun, make(True), prim)]


def _mean_axis():
    def fun(x):
        return x.mean(0)

    def make(bug=False):
        return lambda x, ct: (jnp.broadcast_to(ct[None, :], x.shape) / (x.shape[1] if bug else x.shape[0]),)
    prim = _normal(3, 5)
    return [Rule("mean over an axis", "correct", True, fun, make(), prim),
            Rule("mean over an axis", "divided by the other axis' size", False, fun, make(True), prim)]


def _cross_entropy():
    def fun(z, t):
        return -(t * jax.nn.log_softmax(z, -1)).sum()

    def make(bug=False):
        def rule(z, t, ct):
            s = jax.nn.softmax(z, 0 if bug else -1)
            return ct * (s * t.sum(-1, keepdims=True) - t), -ct * jax.nn.log_softmax(z, -1)
        return rule

    def prim(rng):
        t = rng.uniform(size=(3, 4))
        return rng.standard_normal((3, 4)) * 2, t / t.sum(-1, keepdims=True)
    return [Rule("soft-target cross-entropy", "correct", True, fun, make(), prim),
            Rule("soft-target cross-entropy", "softmax over the batch axis", False, fun, make(True), prim)]


def _sigmoid_bce():
    def fun(z, t):
        return (jnp.maximum(z, 0) - z * t + jnp.log1p(jnp.exp(-jnp.abs(z)))).sum()

    def make(bug=False):
        return lambda z, t, ct: (ct * (jax.nn.sigmoid(z) - t) * (1.0 if not bug else 0.5), -ct * z)
    prim = lambda rng: (rng.standard_normal((3, 4)) * 3, rng.uniform(size=(3, 4)))
    return [Rule("sigmoid cross-entropy", "correct", True, fun, make(), prim),
            Rule("sigmoid cross-entropy", "spurious factor 1/2", False, fun, make(True), prim)]


FAMILIES = (_layernorm, _rmsnorm, _batchnorm, _group_norm, _softmax, _logsumexp, _gelu, _softplus, _elu,
            _leaky_relu, _matmul, _batched_matmul, _conv1d, _avgpool, _maxpool_ties, _embedding, _attention,
            _rnn_step, _label_smoothing, _mse, _cross_entropy, _sigmoid_bce, _huber, _maximum_ties, _sort,
            _where_guard, _argmax_output, _bfloat16_inside, _custom_vjp, _cumsum, _cumprod, _l2_normalize,
            _weight_norm, _dropout_mask, _mean_axis)
# a quick subset for CI (tests/check/test_check_selftest.py): one correct and one buggy rule each
QUICK = ("max pool with ties", "embedding", "custom_vjp softplus")


def battery(families=None):
    """Every Rule of the battery (families: names to keep, None: all)."""
    rules = [r for build in FAMILIES for r in build()]
    return tuple(r for r in rules if families is None or r.family in families)


def select(words):
    """The rules of the families whose name contains one of `words` (any letter case); a word
    that names no family is a ValueError listing them."""
    rules = battery()
    names = list(dict.fromkeys(r.family for r in rules))
    chosen = set()
    for w in words:
        hits = {n for n in names if w.lower() in n.lower()}
        if not hits:
            raise ValueError(f"self-test: {w!r} names no family; families: {', '.join(names)}")
        chosen |= hits
    return tuple(r for r in rules if r.family in chosen)


def check_one(rule, dtype, seed=0):
    """Check one rule in one dtype; returns the Report."""
    from fnnet import check
    dt = np.dtype(dtype)
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        primals = tuple(p.astype(dt) if np.issubdtype(np.asarray(p).dtype, np.floating) else np.asarray(p)
                        for p in rule.primals(rng))
    with jax.enable_x64(dt == np.float64):
        if rule.entry == "custom_vjp":
            return check.check_custom_vjp(rule.fun, *primals)
        return check.check_vjp(rule.fun, rule.rule, *primals, nondiff=rule.nondiff,
                               names=[f"p{i}" for i in range(len(primals))], title=f"{rule.family}: {rule.name}")


def run(rules=None, dtypes=DTYPES, verbose=None):
    """Check every rule in every dtype; verbose(text) receives each wrong verdict's report."""
    t0 = time.perf_counter()
    outcomes = []
    for rule in (battery() if rules is None else rules):
        for dt in dtypes:
            t = time.perf_counter()
            report = check_one(rule, dt)
            o = Outcome(rule, dt, report.ok, time.perf_counter() - t)
            outcomes.append(o)
            if verbose is not None and not o.right:
                verbose(str(report))
    return Result(tuple(outcomes), time.perf_counter() - t0)
