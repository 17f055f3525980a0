"""Parameter-free activation layers, each a forward and its hand-written backward.

Shapes: x [batch, ...] -> y of the same shape; params are always `()`.
Kinks: relu'(0) = 0 and leaky_relu'(0) = alpha (the left derivative); the forwards
are written with `x > 0` so that jax.grad of them uses the same convention.
Caches hold the least each backward needs, and preferably the output, which the next
layer (a Dense keeps its input) holds anyway, so it costs no extra memory: Relu, Sigmoid,
Tanh and Softmax cache their output y, LeakyRelu y (α ≥ 0) or the bool mask x > 0 (α < 0).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fnnet.validate import check_dy, check_floating


class _Activation:
    """Shared plumbing: shape-preserving, no parameters, input checks."""

    def init(self, key, in_shape):
        del key
        return (), tuple(in_shape)

    def _check(self, params, x):
        if params != ():
            raise ValueError(f"{self}: takes no parameters (params must be ()), got {type(params).__name__}")
        check_floating(str(self), "x", x)
        if x.ndim < 1:
            raise ValueError(f"{self}: x must be [batch, ...], got a scalar")

    def _check_dy(self, cache, dy):
        check_dy(str(self), dy, cache.shape)


@dataclasses.dataclass(frozen=True)
class Identity(_Activation):
    def forward(self, params, x):
        self._check(params, x)
        return x, x

    def backward(self, params, cache, dy):
        self._check_dy(cache, dy)
        return (), dy                                   # dL/dx = dL/dy


@dataclasses.dataclass(frozen=True)
class Relu(_Activation):
    def forward(self, params, x):
        self._check(params, x)
        y = jnp.where(x > 0, x, 0)                      # y = max(x, 0)
        return y, y                                     # cache the output: y > 0 exactly where x > 0

    def backward(self, params, cache, dy):
        y = cache
        self._check_dy(y, dy)
        return (), jnp.where(y > 0, dy, 0)              # dL/dx = dL/dy · 1[x > 0] = dL/dy · 1[y > 0]


@dataclasses.dataclass(frozen=True)
class LeakyRelu(_Activation):
    alpha: float = 0.01

    def forward(self, params, x):
        self._check(params, x)
        y = jnp.where(x > 0, x, self.alpha * x)         # y = x if x > 0 else αx
        # Cache the output when α ≥ 0 (then y > 0 exactly where x > 0); for α < 0, αx > 0
        # where x < 0 too, so keep the mask x > 0 (1 byte per element) instead.
        return y, (y if self.alpha >= 0 else x > 0)

    def backward(self, params, cache, dy):
        self._check_dy(cache, dy)
        up = cache if cache.dtype == jnp.bool_ else cache > 0   # 1[x > 0]
        return (), jnp.where(up, dy, self.alpha * dy)   # dL/dx = dL/dy · (1 or α)


@dataclasses.dataclass(frozen=True)
class Sigmoid(_Activation):
    def forward(self, params, x):
        self._check(params, x)
        y = jax.nn.sigmoid(x)                           # y = 1 / (1 + e^-x), overflow-free
        return y, y                                     # cache the output s

    def backward(self, params, cache, dy):
        s = cache
        self._check_dy(s, dy)
        return (), dy * s * (1 - s)                     # dL/dx = dL/dy · s(1 - s)


@dataclasses.dataclass(frozen=True)
class Tanh(_Activation):
    def forward(self, params, x):
        self._check(params, x)
        y = jnp.tanh(x)
        return y, y                                     # cache the output t

    def backward(self, params, cache, dy):
        t = cache
        self._check_dy(t, dy)
        return (), dy * (1 - t * t)                     # dL/dx = dL/dy · (1 - t²)


def softmax(x):
    """Max-shifted softmax over the last axis."""
    z = x - jax.lax.stop_gradient(x.max(axis=-1, keepdims=True))
    e = jnp.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Softmax(_Activation):
    """Softmax over the last axis as a layer; backward is the full Jacobian product."""

    def forward(self, params, x):
        self._check(params, x)
        s = softmax(x)
        return s, s

    def backward(self, params, cache, dy):
        s = cache
        self._check_dy(s, dy)
        # J = diag(s) - s sᵀ, so dL/dx = Jᵀ dy = s ⊙ (dy - <dy, s>)
        return (), s * (dy - (dy * s).sum(axis=-1, keepdims=True))


ACTIVATIONS = {"identity": Identity, "relu": Relu, "leaky_relu": LeakyRelu,
               "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax}


def get(name_or_layer):
    """'relu' -> Relu(); a layer object passes through."""
    if isinstance(name_or_layer, str):
        try:
            return ACTIVATIONS[name_or_layer]()
        except KeyError:
            raise ValueError(f"unknown activation {name_or_layer!r}; known: {sorted(ACTIVATIONS)}") from None
    return name_or_layer


# --- smooth activations: ELU, SiLU, Softplus ------------------------------------------

@dataclasses.dataclass(frozen=True)
class ELU(_Activation):
    """y = x for x > 0, α(eˣ - 1) otherwise (expm1: exact near 0; the exp never overflows); α > 0.

    The cache is the output y: for α > 0, y > 0 exactly when x > 0, and for x <= 0 the
    derivative α eˣ = y + α, so the backward needs no second exp (and y is the buffer the
    next layer keeps anyway).
    """
    alpha: float = 1.0

    def __post_init__(self):
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (a > 0 and a < float("inf")):
            raise ValueError(f"ELU: alpha must be a finite number > 0, got {a!r}")

    def forward(self, params, x):
        self._check(params, x)
        y = jnp.where(x > 0, x, self.alpha * jnp.expm1(jnp.minimum(x, 0)))   # α(e^min(x,0) - 1): finite
        return y, y                                       # cache y

    def backward(self, params, cache, dy):
        y = cache
        self._check_dy(y, dy)
        return (), jnp.where(y > 0, dy, dy * (y + self.alpha))   # dL/dx = dL/dy · (1 or α eˣ = y + α); ELU'(0) = α


@dataclasses.dataclass(frozen=True)
class SiLU(_Activation):
    """y = x σ(x) (swish)."""

    def forward(self, params, x):
        self._check(params, x)
        return x * jax.nn.sigmoid(x), x                   # cache x

    def backward(self, params, cache, dy):
        x = cache
        self._check_dy(x, dy)
        s = jax.nn.sigmoid(x)
        return (), dy * s * (1 + x * (1 - s))             # dL/dx = dL/dy · σ(x)(1 + x(1 - σ(x)))


@dataclasses.dataclass(frozen=True)
class Softplus(_Activation):
    """y = log(1 + eˣ), stable: logaddexp(x, 0) = max(x, 0) + log1p(e^-|x|); y' = σ(x), 0.5 at 0.

    Written with jnp.logaddexp, whose derivative rule is σ(x): jax.grad of the textbook
    stable form max(x, 0) + log1p(e^-|x|) says 0 at x = 0 (measured, jax 0.10), not 0.5.
    """

    def forward(self, params, x):
        self._check(params, x)
        return jnp.logaddexp(x, 0.0), x                   # y = log(eˣ + e⁰), no overflow; cache x

    def backward(self, params, cache, dy):
        x = cache
        self._check_dy(x, dy)
        return (), dy * jax.nn.sigmoid(x)                 # dL/dx = dL/dy · σ(x)


ACTIVATIONS.update(elu=ELU, silu=SiLU, softplus=Softplus)



_SQRT_2_OVER_PI = 0.7978845608028654   # sqrt(2/π)
_INV_SQRT_2 = 0.7071067811865476       # 1/sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327     # 1/sqrt(2π)


@dataclasses.dataclass(frozen=True)
class GELU(_Activation):
    """Gaussian error linear unit, y = x·Φ(x) (Hendrycks & Gimpel 2016).

    approximate=True (GPT-2's form): y = ½x(1 + tanh(u)), u = sqrt(2/π)(x + 0.044715x³).
    approximate=False: the exact y = ½x(1 + erf(x/√2)).  x [batch, ...] -> y same shape.
    """
    approximate: bool = True

    def __post_init__(self):
        if not isinstance(self.approximate, bool):
            raise TypeError(f"GELU: approximate must be True or False, got {self.approximate!r}")

    def __str__(self):
        return "GELU()" if self.approximate else "GELU(approximate=False)"

    def forward(self, params, x):
        self._check(params, x)
        if self.approximate:
            t = jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))   # t = tanh(u)
            return 0.5 * x * (1 + t), x                                  # y = ½x(1 + t); cache x
        return 0.5 * x * (1 + jax.lax.erf(x * _INV_SQRT_2)), x          # y = x·Φ(x); cache x

    def backward(self, params, cache, dy):
        x = cache
        self._check_dy(x, dy)
        if self.approximate:
            t = jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)          # du/dx
            return (), dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)  # dy/dx = ½(1+t) + ½x(1-t²)u'
        cdf = 0.5 * (1 + jax.lax.erf(x * _INV_SQRT_2))                  # Φ(x)
        pdf = _INV_SQRT_2PI * jnp.exp(-0.5 * x * x)                     # φ(x)
        return (), dy * (cdf + x * pdf)                                 # dy/dx = Φ(x) + x·φ(x)


ACTIVATIONS["gelu"] = GELU
