"""check_complex_vjp: a hand-written VJP of a function of complex arrays, in JAX's convention.

    report = check_complex_vjp(fun, vjp, *primals)   # complex (and real) primals and outputs

JAX's convention (the one jax.vjp and jax.grad follow): a cotangent c pairs with a tangent
t by the bilinear Re(c·t), not Re(conj(c)·t). So for a holomorphic f the VJP is c·f'(z)
with no conjugate (jax.vjp(jnp.sin, z)[1](c) = c·cos z), a conjugate appears only where f
itself conjugates (jax.grad of |z|² is 2·conj(z)), and a rule written in PyTorch's
convention (c·conj(f'(z))) is wrong here.

Every complex leaf z = x + iy is checked as the real pair (x, y) (leaf paths z.re, z.im),
every complex output as (Re f, Im f), so all of check_vjp's witnesses apply to the real
function: jax.vjp, a NumPy reference, float64 finite differences, the kink rules. Under
the pairing Re(c·t) = Re(c)·dx - Im(c)·dy, a complex cotangent c is the real cotangent
(Re c, -Im c): that is how the rule's cotangents are compared and how real output
cotangents are handed to it (c = a - ib for the pair (a, b)). A rule missing a conj, or
with one too many, fails on the .re or .im leaf where it differs.
"""
from __future__ import annotations

import typing

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.check.core import run_check
from fnnet.check.inputs import primal_names, x64_context
from fnnet.check.report import Report


class ReIm(typing.NamedTuple):
    """A complex leaf as its real pair (a pytree node: paths end in .re / .im)."""
    re: typing.Any
    im: typing.Any


def is_complex(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        return isinstance(leaf, complex)
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def split(tree, conj=False):
    """Each complex leaf c -> ReIm(Re c, Im c) (conj: ReIm(Re c, -Im c), a cotangent's real form)."""
    def one(a):
        if not is_complex(a):
            return a
        if isinstance(a, jax.ShapeDtypeStruct):      # a shape (eval_shape's output): its parts' shapes
            part = jax.ShapeDtypeStruct(a.shape, np.finfo(a.dtype).dtype)
            return ReIm(part, part)
        re, im = (np.real(a), np.imag(a)) if isinstance(a, np.ndarray) else (jnp.real(a), jnp.imag(a))
        return ReIm(re, -im if conj else im)
    return jax.tree.map(one, tree)


def merge(real, template, conj=False):
    """The inverse of split: where template has a complex leaf, real has ReIm(a, b) -> a + ib
    (conj: a - ib), complex64 from float32 parts and complex128 from float64 ones (so the
    float64 finite differences and replay see fun in complex128); other leaves unchanged."""
    def one(t, r):
        if not is_complex(t):
            return r
        im = -r.im if conj else r.im
        if isinstance(r.re, np.ndarray):
            return np.asarray(r.re) + 1j * np.asarray(im)
        return jax.lax.complex(r.re, im)
    return jax.tree.map(one, template, real, is_leaf=lambda x: x is None)


def real_view(a):
    """float64 values of an array; a complex one as [..., 2] (last index 0: real part, 1: imaginary),
    for comparisons that read complex values (fnnet.check.compare takes real arrays)."""
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return np.stack([a.real, a.imag], -1).astype(np.float64)
    return a.astype(np.float64)


def wide(a):
    """A NumPy copy in the widest dtype of its kind: complex128 for complex, else float64."""
    a = np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def widened_like(got, like, label, owner, what, where):
    """got's leaves as wide() copies, once its tree and every leaf's shape are like's; else a
    ValueError: "<where>: <what> returned <label> of tree/shape ..., expected <owner> ..."."""
    if jax.tree.structure(got) != jax.tree.structure(like):
        raise ValueError(f"{where}: {what} returned {label} of tree {jax.tree.structure(got)}, "
                         f"expected {owner} {jax.tree.structure(like)}")
    leaves = []
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(like)):
        if tuple(np.shape(a)) != tuple(b.shape):
            raise ValueError(f"{where}: {what} returned {label} of shape {tuple(np.shape(a))}, "
                             f"expected {owner} {tuple(b.shape)}")
        leaves.append(wide(a))
    return leaves


def normal_like(rng, a):
    """Standard normal draws of a's shape (float64), complex (re and im each normal) where a is."""
    shape = np.shape(a)
    if is_complex(a):
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return rng.standard_normal(shape)


def has_complex(*trees) -> bool:
    return any(is_complex(l) for l in jax.tree.leaves(trees))


def complex_output(fun, primals) -> bool:
    """Whether fun(*primals) has a complex output leaf, read from an abstract trace (nothing is
    computed). Leaves that are not arrays (static config, strings) are closed over; a fun that
    cannot be traced at all answers False, and the check itself then says why it cannot run."""
    leaves, treedef = jax.tree.flatten(primals)
    arrays = [i for i, leaf in enumerate(leaves) if hasattr(leaf, "shape") and hasattr(leaf, "dtype")]

    def traced(*values):
        full = list(leaves)
        for i, v in zip(arrays, values):
            full[i] = v
        return fun(*jax.tree.unflatten(treedef, full))
    try:
        out = jax.eval_shape(traced, *[leaves[i] for i in arrays])
    except Exception:
        return False
    return has_complex(out)


def check_complex_vjp(fun, vjp, *primals, cotangent=None, reference=None, names=None, title=None, **options):
    """check_vjp for complex primals and outputs, in JAX's conjugation convention (module doc).

    fun(*primals) -> y: complex64/complex128 leaves allowed anywhere (real ones too).
    vjp(*primals, ct) -> one cotangent per primal, complex where the primal is, with ct
        complex where y is: JAX's convention, as jax.vjp(fun, *primals)[1](ct).
    cotangent: a tree of y (complex where y is), or None (random). reference: like vjp, on
        NumPy arrays (complex128 / float64). options: as check_vjp (mode, rtol, jit, nondiff...).
    Rows name the real parts as <leaf>.re and <leaf>.im.
    """
    names = primal_names(fun, len(primals), names)
    primal_templates = tuple(primals)
    with x64_context(split(primal_templates)):       # complex128 needs x64 on
        out_template = jax.eval_shape(fun, *primals)

    def real_fun(*rp):
        return split(fun(*merge(rp, primal_templates)))

    def real_vjp(*args):
        *rp, rct = args
        got = vjp(*merge(tuple(rp), primal_templates), merge(rct, out_template, conj=True))
        return type(got)(split(g, conj=True) for g in got) if isinstance(got, (tuple, list)) else got

    real_reference = None
    if reference is not None:
        def real_reference(*args):
            *rp, rct = args
            got = reference(*merge(tuple(rp), _numpy_templates(primal_templates)),
                            merge(rct, _numpy_templates(out_template), conj=True))
            return type(got)(split(g, conj=True) for g in got) if isinstance(got, (tuple, list)) else got
    real_ct = None if cotangent is None else split(cotangent, conj=True)
    report = run_check(real_fun, real_vjp, *split(primal_templates), cotangent=real_ct, reference=real_reference,
                       names=names, title=title or f"complex vjp of {getattr(fun, '__name__', 'fun')}", **options)
    header = ("complex leaves as (re, im); JAX's convention: a cotangent c pairs with a tangent by Re(c·t), "
              "so c is compared as (Re c, -Im c); " + report.header)
    return Report(report.title, report.rows, header, report.seconds)


def _numpy_templates(tree):
    """Templates for merging NumPy arrays: complex128 where the leaf is complex."""
    return jax.tree.map(lambda a: np.zeros((), np.complex128) if is_complex(a) else a, tree)
