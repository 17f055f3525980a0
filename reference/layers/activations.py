"""Activation functions in NumPy float64, each a forward and its backward.

Every backward takes the forward's INPUT x (the pre-activation z) and the upstream
gradient dy = dL/dy, and returns dx = dL/dx. Seed 000 evaluates the sigmoid
derivative at the activation a = σ(z) with a formula meant for z, which is wrong;
taking x here rules that mistake out.

Shapes: x: [batch, ...] (any shape; softmax works over the last axis),
dy: exactly x's shape, dx: x's shape.
Kinks: relu'(0) = 0 and leaky_relu'(0) = alpha (the derivative from the left).
"""
import numpy as np


def _error(fn, msg):
    return ValueError(f"reference.{fn}: {msg}")


def _as_x_dy(fn, x, dy):
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if dy.shape != x.shape:
        raise _error(fn, f"dy must have x's shape {x.shape}, got {dy.shape}")
    return x, dy


def identity_forward(x):
    """y = x.  x: [batch, ...] -> y: same shape."""
    return np.array(x, dtype=np.float64)


def identity_backward(x, dy):
    """x, dy: [batch, ...] -> dx: same shape."""
    x, dy = _as_x_dy("identity_backward", x, dy)
    return dy.copy()  # dy/dx = 1


def relu_forward(x):
    """y = max(x, 0).  x: [batch, ...] -> y: same shape."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, 0.0)


def relu_backward(x, dy):
    """x, dy: [batch, ...] -> dx: same shape; relu'(0) = 0."""
    x, dy = _as_x_dy("relu_backward", x, dy)
    return np.where(x > 0, dy, 0.0)  # relu'(x) = 1 if x > 0 else 0


def leaky_relu_forward(x, *, alpha=0.01):
    """y = x if x > 0 else alpha·x.  x: [batch, ...] -> y: same shape."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, float(alpha) * x)


def leaky_relu_backward(x, dy, *, alpha=0.01):
    """x, dy: [batch, ...] -> dx: same shape; leaky_relu'(0) = alpha."""
    x, dy = _as_x_dy("leaky_relu_backward", x, dy)
    return np.where(x > 0, dy, float(alpha) * dy)  # f'(x) = 1 if x > 0 else alpha


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), without overflow.  x: [batch, ...] -> y: same shape.

    With e = exp(-|x|) <= 1: σ(x) = 1/(1+e) for x >= 0 and e/(1+e) for x < 0.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore"):  # exp(-1000) = 0 is the right float answer
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(x, dy):
    """x, dy: [batch, ...] -> dx: same shape; σ'(x) = σ(x)(1 - σ(x))."""
    x, dy = _as_x_dy("sigmoid_backward", x, dy)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(x))
        ds = e / (1.0 + e) ** 2  # σ'(x) = σ(x)(1-σ(x)) = e/(1+e)², even in x, no cancellation
        return dy * ds           # dL/dx = dL/dy ⊙ σ'(x)


def tanh_forward(x):
    """y = tanh(x).  x: [batch, ...] -> y: same shape."""
    return np.tanh(np.asarray(x, dtype=np.float64))


def tanh_backward(x, dy):
    """x, dy: [batch, ...] -> dx: same shape; tanh'(x) = 1 - tanh(x)²."""
    x, dy = _as_x_dy("tanh_backward", x, dy)
    t = np.tanh(x)
    with np.errstate(under="ignore"):
        return dy * (1.0 - t * t)  # dL/dx = dL/dy ⊙ (1 - tanh²(x))


def softmax_forward(x):
    """y_k = exp(x_k) / Σ_j exp(x_j) over the last axis, max-shifted.

    x: [batch, k] (or any [..., k]) -> y: same shape, rows sum to 1.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise _error("softmax", f"x must be [batch, k] with k >= 1, got {x.shape}")
    with np.errstate(under="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))  # shift: exponents <= 0
        return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(x, dy):
    """Full Jacobian-vector product of softmax (not just its diagonal).

    x, dy: [batch, k] -> dx: [batch, k].
    J = diag(s) - s sᵀ per row, so dx = Jᵀ dy = s ⊙ (dy - Σ_k dy_k s_k).
    """
    x, dy = _as_x_dy("softmax_backward", x, dy)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise _error("softmax_backward", f"x must be [batch, k] with k >= 1, got {x.shape}")
    s = softmax_forward(x)
    with np.errstate(under="ignore"):
        dot = np.sum(dy * s, axis=-1, keepdims=True)  # Σ_k dL/dy_k · s_k
        return s * (dy - dot)                         # dL/dx_i = s_i (dL/dy_i - Σ_k dL/dy_k s_k)


def elu_forward(x, *, alpha=1.0):
    """y = x if x > 0 else alpha·(exp(x) - 1).  x: [batch, ...] -> y: same shape."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, float(alpha) * np.expm1(np.minimum(x, 0.0)))


def elu_backward(x, dy, *, alpha=1.0):
    """elu'(x) = 1 if x > 0 else alpha·exp(x) (alpha at 0)."""
    x, dy = _as_x_dy("elu_backward", x, dy)
    return np.where(x > 0, dy, dy * float(alpha) * np.exp(np.minimum(x, 0.0)))


def silu_forward(x):
    """y = x·σ(x).  x: [batch, ...] -> y: same shape."""
    x = np.asarray(x, dtype=np.float64)
    return x * sigmoid_forward(x)


def silu_backward(x, dy):
    """silu'(x) = σ(x) + x·σ'(x), with σ'(x) = e/(1+e)² (e = exp(-|x|))."""
    x, dy = _as_x_dy("silu_backward", x, dy)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(x))
        return dy * (sigmoid_forward(x) + x * e / (1.0 + e) ** 2)


def softplus_forward(x):
    """y = log(1 + exp(x)) = logaddexp(0, x), stable.  x: [batch, ...] -> y: same shape."""
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def softplus_backward(x, dy):
    """softplus'(x) = σ(x): 0.5 at 0."""
    x, dy = _as_x_dy("softplus_backward", x, dy)
    return dy * sigmoid_forward(x)


def gelu_forward(x, *, approximate=True):
    """GELU.  approximate: ½x(1 + tanh(√(2/π)(x + 0.044715x³))); exact: ½x(1 + erf(x/√2)).

    x: [batch, ...] -> y: same shape.
    """
    x = np.asarray(x, dtype=np.float64)
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def gelu_backward(x, dy, *, approximate=True):
    """x, dy: [batch, ...] -> dx: same shape."""
    x, dy = _as_x_dy("gelu_backward", x, dy)
    if approximate:
        c = np.sqrt(2.0 / np.pi)
        t = np.tanh(c * (x + 0.044715 * x ** 3))
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x))
    return dy * (0.5 * (1.0 + _erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi))


def _erf(z):
    """erf elementwise via math.erf (NumPy has none; the standard library's is correctly rounded)."""
    import math
    return np.vectorize(math.erf, otypes=[np.float64])(z)
