"""Small, offline, deterministic datasets for the fnnet examples.

Every loader returns ``(x_train, y_train, x_test, y_test)`` as NumPy arrays
(never jax arrays: convert at the call site with ``jnp.asarray`` when needed).
Features are ``float32`` unless ``dtype=np.float64`` is asked for; class labels
are ``int32`` class indices of shape ``[n]`` (use :func:`one_hot` to get
``[n, k]`` targets).  Nothing is downloaded: the data is either generated from
a fixed seed or read from the copy of the 8x8 digits that ships inside
scikit-learn.

Loaders:

* :func:`xor`    - the four XOR points (seed 003, tanh + MSE regression).
* :func:`blobs`  - three 2-D gaussian clusters, drawn exactly as seed 002 drew
  them (legacy ``RandomState(12)``, the post's means and covariances, the
  post's ``train_test_split``).
* :func:`digits` - scikit-learn's 1797 8x8 handwritten digits, scaled to
  [0, 1] and split as seed 001's NumPy network split them.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from fnnet.validate import int_at_least

__all__ = ["xor", "blobs", "digits", "one_hot"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Seed 002's clusters, verbatim from the post: one (mean, covariance) per class.
_BLOB_MEANS = ((0.0, 0.0), (1.0, 4.0), (2.0, 8.0))
_BLOB_COVS = (
    ((2.0, 0.75), (0.75, 2.0)),
    ((1.0, 0.75), (0.75, 1.0)),
    # Not positive semi-definite (eigenvalues +0.75 and -0.75).  numpy warns and
    # samples through an SVD anyway, which turns it into 0.75 * I; see blobs().
    ((0.0, 0.75), (0.75, 0.0)),
)
_NON_PSD_COV = _BLOB_COVS[2]
# The exact warning text numpy emits for a non-PSD covariance.
_NON_PSD_MESSAGE = r"covariance is not symmetric positive-semidefinite"


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------


def _check_dtype(fn: str, dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"{fn}: dtype must be np.float32 or np.float64, got {dtype!r}") from e
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"{fn}: dtype must be np.float32 or np.float64, got {dtype!r}")
    return dt


def _check_fraction(fn: str, test_fraction) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real):
        raise ValueError(
            f"{fn}: test_fraction must be a number in the open interval (0, 1), "
            f"got {test_fraction!r}"
        )
    f = float(test_fraction)
    if not 0.0 < f < 1.0:  # also rejects NaN
        raise ValueError(
            f"{fn}: test_fraction must be in the open interval (0, 1), got {test_fraction!r}"
        )
    return f




def _split(fn: str, x, y, test_fraction: float, seed: int):
    """sklearn's train_test_split with the seeds' arguments, as plain arrays."""
    from sklearn.model_selection import train_test_split

    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=test_fraction, random_state=seed
        )
    except ValueError as e:  # e.g. a fraction that leaves one side empty
        raise ValueError(f"{fn}: cannot split {len(x)} rows with test_fraction={test_fraction!r}: {e}") from e
    return (
        np.ascontiguousarray(x_tr),
        np.ascontiguousarray(y_tr),
        np.ascontiguousarray(x_te),
        np.ascontiguousarray(y_te),
    )


# --------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------


def xor(dtype=np.float32):
    """The four XOR points, as a regression problem (seed 003).

    Returns ``(x_train, y_train, x_test, y_test)`` with

    * ``x_train``: ``[4, 2]`` of ``dtype``, the rows ``[0,0], [0,1], [1,0], [1,1]``
      (the order seed 003 lists them in);
    * ``y_train``: ``[4, 1]`` of ``dtype``, the float targets ``0, 1, 1, 0``.
      These are regression targets, not class indices: seed 003 fits them with
      a tanh network and mean squared error.

    XOR has no held-out data: the whole problem is these four points, so the
    "test set" is the same four points again.  ``x_test``/``y_test`` are
    separate copies, so writing into one pair does not change the other.

    Seed 003 reshapes the points to ``(4, 2, 1)`` column vectors because its
    layers work on one sample at a time; here samples are rows, like every
    other loader in this module.
    """
    dt = _check_dtype("xor", dtype)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dt)
    y = np.array([[0], [1], [1], [0]], dtype=dt)
    return x, y, x.copy(), y.copy()


def _draw_cluster(rs: np.random.RandomState, mean, cov, n: int) -> np.ndarray:
    """One multivariate-normal draw from ``rs``, as ``np.random.multivariate_normal``.

    Only for the post's own non-PSD covariance is numpy's warning silenced (we
    reproduce that cluster on purpose and document what it becomes); any other
    covariance warns as usual.
    """
    if tuple(map(tuple, cov)) == _NON_PSD_COV:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NON_PSD_MESSAGE, category=RuntimeWarning)
            return rs.multivariate_normal(mean, cov, n)
    return rs.multivariate_normal(mean, cov, n)


def blobs(n_per_class=5000, test_fraction=0.1, seed=12, dtype=np.float32):
    """Seed 002's three 2-D gaussian clusters, 3-class classification.

    Returns ``(x_train, y_train, x_test, y_test)``; for the defaults

    * ``x_train``: ``[13500, 2]``, ``y_train``: ``[13500]`` int32 in {0, 1, 2};
    * ``x_test``:  ``[1500, 2]``,  ``y_test``:  ``[1500]``  int32 in {0, 1, 2}.

    In general the 3 * ``n_per_class`` rows are split by scikit-learn, which puts
    ``ceil(test_fraction * 3 * n_per_class)`` rows in the test set.

    Where the numbers come from.  This replays the post's code exactly:
    ``np.random.seed(12)`` followed by three ``np.random.multivariate_normal``
    calls is the legacy Mersenne-Twister generator, so here
    ``np.random.RandomState(seed)`` draws, in this order, ``n_per_class`` points
    from each of

    ======  ==========  ==========================
    label   mean        covariance (as written)
    ======  ==========  ==========================
    0       [0, 0]      [[2, .75], [.75, 2]]
    1       [1, 4]      [[1, .75], [.75, 1]]
    2       [2, 8]      [[0, .75], [.75, 0]]
    ======  ==========  ==========================

    The three draws are stacked (labels 0, 1, 2 in blocks) and cast to float32
    as the post did, then split with
    ``sklearn.model_selection.train_test_split(x, y, test_size=test_fraction,
    random_state=seed)``, again as the post did (it used ``random_state=12``,
    the same number as the data seed).  The post passed one-hot labels; which
    rows land where depends only on the row count and ``random_state``, so
    integer labels give the identical split.  With the defaults the features
    are bit-for-bit the post's ``train_dataset``/``test_dataset``.

    With ``dtype=np.float64`` the float64 draws are returned without the
    float32 rounding (same points, more digits).

    The third cluster is not what the post wrote.  ``[[0, .75], [.75, 0]]`` has
    eigenvalues +0.75 and -0.75, so it is not a covariance matrix at all.
    numpy warns (that one warning is silenced here, for that matrix only) and
    samples through an SVD, ``x = z * sqrt(s) @ v``, whose covariance is
    ``v.T @ diag(s) @ v = sqrt(C.T @ C) = 0.75 * I``: an uncorrelated, round
    cluster with variance 0.75 on each axis, not the positively correlated
    one the numbers suggest.  Measured on the 5000 float32 points of the
    defaults (``np.cov``, ddof=1, train and test together)::

        mean = [2.0031, 7.9955]
        cov  = [[ 0.7454, -0.0168],
                [-0.0168,  0.7344]]      (correlation -0.023)

    i.e. 0.75 * I up to sampling noise (standard error of each variance is
    about 0.75 * sqrt(2 / 5000) = 0.015).  Because both singular values are
    equal, the SVD's ``v`` is not unique; numpy's LAPACK returns ``-I`` here,
    and another LAPACK could rotate cluster 2's points about its mean without
    changing its distribution.  The other two clusters are ordinary: their
    measured covariances are [[1.948, 0.737], [0.737, 2.003]] and
    [[1.011, 0.761], [0.761, 1.002]].
    """
    fn = "blobs"
    n = int_at_least(fn, "n_per_class", n_per_class, 1)
    f = _check_fraction(fn, test_fraction)
    seed = int_at_least(fn, "seed", seed, 0)
    dt = _check_dtype(fn, dtype)

    rs = np.random.RandomState(seed)
    draws = [_draw_cluster(rs, m, c, n) for m, c in zip(_BLOB_MEANS, _BLOB_COVS)]
    x = np.vstack(draws)  # float64, as multivariate_normal returns
    if dt == np.float32:
        x = x.astype(np.float32)  # the post's .astype(np.float32)
    y = np.repeat(np.arange(3, dtype=np.int32), n)
    return _split(fn, x, y, f, seed)


def digits(test_fraction=0.1, seed=20, dtype=np.float32):
    """scikit-learn's 8x8 handwritten digits, 10-class classification (seed 001).

    Returns ``(x_train, y_train, x_test, y_test)``; for the defaults

    * ``x_train``: ``[1617, 64]``, ``y_train``: ``[1617]`` int32 in 0..9;
    * ``x_test``:  ``[180, 64]``,  ``y_test``:  ``[180]``  int32 in 0..9.

    Where the numbers come from: ``sklearn.datasets.load_digits()``, the 1797
    8x8 images bundled inside scikit-learn (a copy of the test set of the UCI
    "Optical Recognition of Handwritten Digits" data), read from disk, no
    download.  Each pixel is an integer count 0..16; it is divided by 16 so
    features lie in [0, 1] (seed 001 feeds ``x_train/16.0`` to its network), and
    each image is flattened row by row into 64 features (``dig.data``).  The
    division is exact in float64 and then cast to ``dtype``.

    The split is ``train_test_split(data, target, test_size=test_fraction,
    random_state=seed)``: ``random_state=20`` is what seed 001's NumPy network
    used, and the default here; the post's Keras version of the same example
    used ``random_state=42`` (pass ``seed=42`` to get that split).  The post
    split one-hot labels from pandas; the row order depends only on the row
    count and ``random_state``, so the split is the same.
    """
    fn = "digits"
    f = _check_fraction(fn, test_fraction)
    seed = int_at_least(fn, "seed", seed, 0)
    dt = _check_dtype(fn, dtype)

    from sklearn.datasets import load_digits

    dig = load_digits()
    x = (np.asarray(dig.data, dtype=np.float64) / 16.0).astype(dt)
    y = np.asarray(dig.target).astype(np.int32)
    return _split(fn, x, y, f, seed)


def one_hot(labels, num_classes, dtype=np.float32):
    """Class indices ``[n]`` -> one-hot rows ``[n, num_classes]`` of ``dtype``.

    ``labels`` must be a 1-D array-like of integers in ``[0, num_classes)``
    (NumPy or jax arrays, lists).  Raises ``ValueError`` for non-integer input
    (floats, even whole-valued ones, and booleans), for a shape other than
    ``[n]``, and for any label outside the range.  The inverse is
    ``np.argmax(one_hot(y, k), axis=1)``.
    """
    fn = "one_hot"
    k = int_at_least(fn, "num_classes", num_classes, 1)
    dt = _check_dtype(fn, dtype)
    arr = np.asarray(labels)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{fn}: labels must be integer class indices, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{fn}: labels must have shape [n], got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        bad = arr[(arr < 0) | (arr >= k)]
        raise ValueError(
            f"{fn}: labels must lie in [0, {k}), got {bad.size} out of range "
            f"(e.g. {int(bad[0])})"
        )
    out = np.zeros((arr.shape[0], k), dtype=dt)
    out[np.arange(arr.shape[0]), arr] = 1
    return out


# Text (character-level GPT data) lives in its own module; exposed here by name.
from fnnet.text import pydoc_text  # noqa: E402,F401  (re-exported)
__all__.append("pydoc_text")
