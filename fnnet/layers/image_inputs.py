"""Input checks shared by the image layers (conv, pool, batchnorm): sizes, padding, image rank.

Every check runs on static Python data or shapes, so under jit it fires at trace time,
before any number is computed. Errors name the layer and say expected vs received.
"""
from __future__ import annotations

from fnnet.validate import check_floating, int_at_least


def pair(where: str, name: str, v, lo: int = 1) -> tuple:
    """3 -> (3, 3); (2, 3) -> (2, 3); every entry an int >= lo."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{where}: {name} must be an int or a pair (height, width), got {v!r}")
        return tuple(int_at_least(where, f"{name}[{i}]", e, lo) for i, e in enumerate(v))
    n = int_at_least(where, name, v, lo)
    return (n, n)


def padding_pairs(where: str, padding, kernel, stride, hw) -> tuple:
    """'valid' | 'same' (any case) | int | (int, int) -> ((top, bottom), (left, right)) for input hw.

    'same' follows XLA/TensorFlow: out = ceil(in / stride), the odd pixel at the bottom/right.
    Explicit padding must be < the kernel size, so every output sees at least one input pixel.
    """
    if isinstance(padding, str):
        padding = padding_name(where, padding)
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            pads = []
            for n, k, s in zip(hw, kernel, stride):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
    p = pair(where, "padding", padding, lo=0)
    for d, (pd, k) in enumerate(zip(p, kernel)):
        if pd >= k:
            raise ValueError(f"{where}: padding {pd} must be smaller than the kernel size {k} "
                             f"(axis {'hw'[d]}), else some outputs see only padding")
    return ((p[0], p[0]), (p[1], p[1]))


def padding_name(where: str, padding: str) -> str:
    """'same' / 'SAME' / 'Same' -> 'same' (lax and flax spell them in capitals), likewise 'valid'."""
    name = padding.lower()
    if name not in ("valid", "same"):
        raise ValueError(f"{where}: padding must be 'valid', 'same' or an int (either name in any "
                         f"case, e.g. lax's 'SAME'), got {padding!r}")
    return name


def check_padding_arg(where: str, padding):
    """Validate the padding argument at construction time (before any input shape is known)
    -> the padding, with a name in lower case."""
    if isinstance(padding, str):
        return padding_name(where, padding)
    pair(where, "padding", padding, lo=0)
    return padding


def out_size(where: str, hw, kernel, stride, pads) -> tuple:
    """Output height/width; a window larger than the padded input is an error."""
    out = []
    for d, (n, k, s, (lo, hi)) in enumerate(zip(hw, kernel, stride, pads)):
        if n + lo + hi < k:
            raise ValueError(f"{where}: kernel {k} is larger than the padded input "
                             f"({n} + {lo + hi} padding = {n + lo + hi}) along {('height', 'width')[d]}")
        out.append((n + lo + hi - k) // s + 1)
    return tuple(out)


def image_shape(where: str, in_shape) -> tuple:
    """Feature shape (height, width, channels) of an NHWC image batch."""
    in_shape = tuple(in_shape)
    if len(in_shape) != 3:
        raise ValueError(f"{where}: input must be images [batch, height, width, channels] (NHWC), "
                         f"got feature shape {in_shape}; reshape rows first, e.g. fnnet.Reshape((8, 8, 1))")
    return in_shape


def check_image(where: str, x, channels=None) -> None:
    """x: [batch, height, width, channels] floating, with the expected channel count."""
    check_floating(where, "x", x)
    if x.ndim != 4:
        raise ValueError(f"{where}: x must be images [batch, height, width, channels] (rank 4), "
                         f"got rank {x.ndim} with shape {tuple(x.shape)}")
    if channels is not None and x.shape[3] != channels:
        raise ValueError(f"{where}: x must have {channels} channels (last axis), got {x.shape[3]} "
                         f"(shape {tuple(x.shape)})")
    if x.shape[0] < 1:
        raise ValueError(f"{where}: x must hold at least one image, got shape {tuple(x.shape)}")


def check_no_params(where: str, params) -> None:
    if params != ():
        raise ValueError(f"{where}: takes no parameters (params must be ()), got {type(params).__name__}")
