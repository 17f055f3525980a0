"""Reading .npy entries of a zip safely: header first (no huge allocations, no pickle)."""
from __future__ import annotations

import math

import numpy as np


class BadFile(Exception):
    """What is wrong with the file; read.read_checkpoint turns it into ValueError(path: ...)."""


def _read_header(zf, member):
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
        raise BadFile(f"entry {member!r} uses .npy format version {version}, expected 1.0 or 2.0")


def read_array(zf, member, name, shape, dtype, max_bytes=None):
    """Check the .npy header first (no huge allocations, no object arrays), then read."""
    got_shape, fortran, got_dtype = _read_header(zf, member)
    if got_dtype.hasobject:
        raise BadFile(f"array {name!r} has dtype {got_dtype} (Python objects, which would need pickle); "
                   f"fnnet checkpoints hold only numbers")
    if dtype is not None and got_dtype != dtype:
        raise BadFile(f"array {name!r} has dtype {got_dtype}, expected {dtype}")
    if shape is not None and tuple(got_shape) != tuple(shape):
        raise BadFile(f"array {name!r} has shape {tuple(got_shape)}, the net needs {tuple(shape)}")
    if len(got_shape) != 1 and shape is None and dtype is not None:
        raise BadFile(f"array {name!r} must be 1-D, got shape {tuple(got_shape)}")
    if max_bytes is not None and math.prod(got_shape) * got_dtype.itemsize > max_bytes:
        raise BadFile(f"array {name!r} is larger than {max_bytes} bytes")
    with zf.open(member) as f:
        a = np.lib.format.read_array(f, allow_pickle=False)
        if f.read(1):
            raise BadFile(f"entry {member!r} has bytes after its array data")
    return a
