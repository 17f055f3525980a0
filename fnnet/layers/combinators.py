"""Layers made of layers: Sequential, Residual and Positionwise.

Each is itself a layer (init / forward / backward), so it nests anywhere a layer goes:

    block = Residual(Sequential((LayerNorm(), Positionwise(Dense(256)), GELU(), Positionwise(Dense(64)))))

Params mirror the structure: Sequential -> a tuple with one entry per inner layer,
Residual and Positionwise -> the inner layer's params unchanged.
"""
from __future__ import annotations

import dataclasses

import jax


def _check_layer(where, layer):
    missing = [m for m in ("init", "forward", "backward") if not callable(getattr(layer, m, None))]
    if missing:
        raise TypeError(f"{where}: {layer!r} lacks method(s) {missing}")
    try:
        hash(layer)
    except TypeError:
        raise TypeError(f"{where}: {layer!r} must be hashable (e.g. a frozen dataclass)") from None


def l2_mask_of(where, layer, params):
    """An inner layer's L2 mask: its l2_mask, all False when it has no params, else an error
    (the same rule the network applies to its own layers)."""
    if hasattr(layer, "l2_mask"):
        return layer.l2_mask(params)
    if jax.tree.leaves(params):
        raise ValueError(f"{where}: inner layer {layer} has params but no l2_mask(params), so an "
                         f"L2 penalty cannot know which of them to penalize")
    return jax.tree.map(lambda _: False, params)


@dataclasses.dataclass(frozen=True)
class Sequential:
    """Layers applied one after another: y = f_n(... f_2(f_1(x))).

    Params: a tuple, one entry per inner layer. Shapes: whatever the chain maps.
    """
    layers: tuple

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        for i, layer in enumerate(layers):
            _check_layer(f"Sequential: layer {i}", layer)
        object.__setattr__(self, "layers", layers)

    def __str__(self):
        return "Sequential(" + ", ".join(str(l) for l in self.layers) + ")"

    def init(self, key, in_shape):
        params, shape = [], tuple(in_shape)
        for layer, k in zip(self.layers, jax.random.split(key, len(self.layers))):
            p, shape = layer.init(k, shape)
            params.append(p)
        return tuple(params), tuple(shape)

    def _check(self, params):
        if not isinstance(params, tuple) or len(params) != len(self.layers):
            raise ValueError(f"{self}: params must be a tuple with one entry per layer "
                             f"({len(self.layers)}), got {type(params).__name__} of length "
                             f"{len(params) if hasattr(params, '__len__') else '?'}")

    def forward(self, params, x):
        """x -> (y, cache = one cache per inner layer)."""
        self._check(params)
        caches = []
        for layer, p in zip(self.layers, params):
            x, c = layer.forward(p, x)
            caches.append(c)
        return x, tuple(caches)

    def backward(self, params, cache, dy):
        """dy -> (one dparams per inner layer, dx): the chain rule, last layer first."""
        self._check(params)
        grads = [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            grads[i], dy = self.layers[i].backward(params[i], cache[i], dy)   # dL/dp_i, dL/dx_i
        return tuple(grads), dy

    def l2_mask(self, params):
        return tuple(l2_mask_of(str(self), l, p) for l, p in zip(self.layers, params))


@dataclasses.dataclass(frozen=True)
class Residual:
    """y = x + block(x); block must keep x's shape. Params: the block's.

    Backward: x feeds two branches (the skip and the block), so its gradient is the sum
    of both: dL/dx = dy + block.backward(dy). Forgetting the `dy +` is the classic bug.
    """
    block: object

    def __post_init__(self):
        _check_layer("Residual", self.block)

    def __str__(self):
        return f"Residual({self.block})"

    def init(self, key, in_shape):
        params, out_shape = self.block.init(key, tuple(in_shape))
        if tuple(out_shape) != tuple(in_shape):
            raise ValueError(f"{self}: the block must keep the shape {tuple(in_shape)} for x + block(x), "
                             f"but maps it to {tuple(out_shape)}")
        return params, tuple(in_shape)

    def forward(self, params, x):
        """x [batch, ...] -> (y = x + block(x) [batch, ...], cache = the block's cache)."""
        h, cache = self.block.forward(params, x)
        if h.shape != x.shape:
            raise ValueError(f"{self}: block output must have x's shape {tuple(x.shape)}, got {tuple(h.shape)}")
        return x + h, cache                                    # y = x + f(x)

    def backward(self, params, cache, dy):
        """dy [batch, ...] -> (block's dparams, dx [batch, ...])."""
        dparams, dh = self.block.backward(params, cache, dy)   # through f: dL/dx via the block
        return dparams, dy + dh                                # dL/dx = dy (skip) + f'(x)ᵀ dy (block)

    def l2_mask(self, params):
        return l2_mask_of(str(self), self.block, params)


@dataclasses.dataclass(frozen=True)
class Positionwise:
    """Apply a layer made for [batch, d] to every position of [batch, ..., d] independently
    (the Transformer's "position-wise feed-forward"; Keras calls it TimeDistributed).

    x [batch, T, d_in] is viewed as [batch·T, d_in], passed through `layer`, and the
    result [batch·T, d_out] is viewed as [batch, T, d_out]; the backward reverses the views.
    Params: the inner layer's, e.g. Positionwise(Dense(64)) has DenseParams(w [d_in, 64], b [64]).
    """
    layer: object

    def __post_init__(self):
        _check_layer("Positionwise", self.layer)

    def __str__(self):
        return f"Positionwise({self.layer})"

    def init(self, key, in_shape):
        """in_shape: (..., d_in) -> (inner params, (..., d_out))."""
        in_shape = tuple(in_shape)
        if len(in_shape) < 1:
            raise ValueError(f"{self}: input must have a feature axis, got feature shape {in_shape}")
        params, out = self.layer.init(key, in_shape[-1:])
        if len(tuple(out)) != 1:
            raise ValueError(f"{self}: the inner layer must map [batch, d_in] to [batch, d_out], got {tuple(out)}")
        return params, in_shape[:-1] + tuple(out)

    def forward(self, params, x):
        """x [batch, ..., d_in] -> (y [batch, ..., d_out], cache)."""
        if getattr(x, "ndim", 0) < 2:
            raise ValueError(f"{self}: x must be [batch, ..., d_in], got shape {tuple(getattr(x, 'shape', ()))}")
        y2, cache = self.layer.forward(params, x.reshape(-1, x.shape[-1]))   # [batch·T, d_in] view
        return y2.reshape(x.shape[:-1] + y2.shape[-1:]), (cache, x.shape)

    def backward(self, params, cache, dy):
        """dy [batch, ..., d_out] -> (inner dparams, dx [batch, ..., d_in])."""
        inner, x_shape = cache
        if dy.shape[:-1] != x_shape[:-1]:
            raise ValueError(f"{self}: dy must be [{', '.join(map(str, x_shape[:-1]))}, d_out], got {tuple(dy.shape)}")
        dparams, dx2 = self.layer.backward(params, inner, dy.reshape(-1, dy.shape[-1]))
        return dparams, dx2.reshape(x_shape)                   # a view: dL/dx is dL/dx2 reshaped

    def l2_mask(self, params):
        return l2_mask_of(str(self), self.layer, params)
