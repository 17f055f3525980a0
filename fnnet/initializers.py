"""Weight initializers: `name -> f(key, shape, dtype)` with explicit jax.random keys.

For a dense weight of shape [fan_in, fan_out]:

    normal          N(0, 1)                              seeds 001, 002, 003 (np.random.randn)
    lecun_normal    N(0, 1) / sqrt(fan_in)               seed 000 (which calls it Xavier)
    glorot_normal   N(0, 2 / (fan_in + fan_out))
    glorot_uniform  U(±sqrt(6 / (fan_in + fan_out)))
    he_normal       N(0, 2 / fan_in)
    he_uniform      U(±sqrt(6 / fan_in))
    truncated_normal N(0, 1) cut at ±2             seed 002's TensorFlow twin
    zeros           0                              the seeds' biases
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _fans(shape):
    fan_in = shape[0] if len(shape) >= 1 else 1
    fan_out = shape[-1] if len(shape) >= 2 else shape[0]
    return fan_in, fan_out


def normal(key, shape, dtype):
    return jax.random.normal(key, shape, dtype)


def lecun_normal(key, shape, dtype):
    fan_in, _ = _fans(shape)
    return jax.random.normal(key, shape, dtype) / math.sqrt(fan_in)


def glorot_normal(key, shape, dtype):
    fan_in, fan_out = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / (fan_in + fan_out))


def glorot_uniform(key, shape, dtype):
    fan_in, fan_out = _fans(shape)
    lim = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, -lim, lim)


def he_normal(key, shape, dtype):
    fan_in, _ = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_in)


def he_uniform(key, shape, dtype):
    fan_in, _ = _fans(shape)
    lim = math.sqrt(6.0 / fan_in)
    return jax.random.uniform(key, shape, dtype, -lim, lim)


def truncated_normal(key, shape, dtype):
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


def zeros(key, shape, dtype):
    del key
    return jnp.zeros(shape, dtype)


INITIALIZERS = {f.__name__: f for f in (normal, lecun_normal, glorot_normal, glorot_uniform,
                                        he_normal, he_uniform, truncated_normal, zeros)}


def get(name: str):
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initializer {name!r}; known: {sorted(INITIALIZERS)}") from None
