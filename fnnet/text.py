"""Character-level text that ships with Python: the reference documentation in pydoc_data.

    data = fnnet.datasets.pydoc_text()                 # TextData: train/val ids, vocabulary
    x, y = windows(data.train, context=64)             # [n, 64] int32 inputs, next-char targets
    data.decode(data.encode("def f():"))               # 'def f():'
    bigram_loss(data)                                  # the bigram baseline, nats per char

`pydoc_data.topics.topics` is a dict {topic: text} (~465k characters in CPython 3.12).
The corpus is its texts in sorted topic order joined by blank lines, so it does not depend
on dict order; the split is contiguous: the first (1 - val_fraction) of the characters
train, the rest validate. The vocabulary is every distinct character of the whole corpus,
sorted by code point, so every val character has an id.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fnnet.validate import int_at_least


class TextData(NamedTuple):
    train: np.ndarray   # [n_train] int32 character ids
    val: np.ndarray     # [n_val] int32 character ids
    chars: str          # the vocabulary: id i is chars[i]

    @property
    def vocab(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """str -> [len] int32 ids; a character outside the vocabulary raises ValueError."""
        index = {c: i for i, c in enumerate(self.chars)}
        missing = sorted(set(text) - set(index))
        if missing:
            raise ValueError(f"pydoc_text: characters not in the vocabulary: {missing[:10]!r}")
        return np.array([index[c] for c in text], np.int32)

    def decode(self, ids) -> str:
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
            raise ValueError(f"pydoc_text: ids must be in [0, {len(self.chars)}), got {ids.min()} to {ids.max()}")
        return "".join(self.chars[i] for i in ids.reshape(-1))


def corpus() -> str:
    """The whole text: pydoc_data.topics' entries in sorted topic order, joined by blank lines."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def pydoc_text(val_fraction: float = 0.1, max_chars: int | None = None) -> TextData:
    """Deterministic character-level train/val split of Python's pydoc topics.

    val_fraction in (0, 1): the last fraction of the corpus is the validation text.
    max_chars: keep only the first max_chars characters (small tests); None keeps all.
      The vocabulary is the whole corpus's either way, so a net trained on a prefix samples
      with the same ids.
    """
    if not (isinstance(val_fraction, float) and 0 < val_fraction < 1):
        raise ValueError(f"pydoc_text: val_fraction must be a float in (0, 1), got {val_fraction!r}")
    text = corpus()
    chars = "".join(sorted(set(text)))      # always the whole corpus's: ids mean the same at any size
    if max_chars is not None:
        int_at_least("pydoc_text", "max_chars (or None)", max_chars, 4)
        text = text[:max_chars]
    index = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((index[c] for c in text), np.int32, len(text))
    cut = len(ids) - max(2, int(round(len(ids) * val_fraction)))
    return TextData(ids[:cut], ids[cut:], chars)


def windows(ids, context: int, stride: int | None = None):
    """ids [n] -> (x [m, context], y [m, context]) int32; y[i, t] is the id after x[i, t]:
    window i starts at i·stride (default stride = context: non-overlapping windows)."""
    ids = np.asarray(ids)
    stride = context if stride is None else stride
    for name, v in (("context", context), ("stride", stride)):
        int_at_least("windows", name, v)
    if ids.ndim != 1 or ids.size < context + 1:
        raise ValueError(f"windows: ids must be 1-D with at least context + 1 = {context + 1} ids, "
                         f"got shape {ids.shape}")
    starts = np.arange(0, ids.size - context, stride)
    offsets = starts[:, None] + np.arange(context)[None, :]
    return ids[offsets].astype(np.int32), ids[offsets + 1].astype(np.int32)


def bigram_counts(ids, vocab: int) -> np.ndarray:
    """[vocab, vocab] float64: counts[a, b] = number of times id b follows id a."""
    ids = np.asarray(ids, np.int64)
    counts = np.zeros((vocab, vocab), np.float64)
    np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
    return counts


def bigram_loss(data: TextData, alpha: float | None = None) -> tuple[float, float]:
    """(val nats/char, alpha) of the add-alpha bigram model counted on data.train.

    P(b | a) = (count(a, b) + α) / (count(a) + α·V), scored on every transition of data.val.
    alpha None: the α of a grid 10^-4 .. 10^1 with the lowest val loss, i.e. the baseline at
    its best (an optimistic baseline: α is chosen on the data it is scored on).
    """
    counts = bigram_counts(data.train, data.vocab)
    val = np.asarray(data.val, np.int64)
    pairs = bigram_counts(val, data.vocab)                  # how often each transition is scored

    def nats(a):
        logp = np.log(counts + a) - np.log(counts.sum(axis=1, keepdims=True) + a * data.vocab)
        return float(-(pairs * logp).sum() / pairs.sum())
    if alpha is not None:
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"bigram_loss: alpha must be a finite number > 0, got {alpha!r}")
        return nats(float(alpha)), float(alpha)
    best = min((nats(a), a) for a in np.logspace(-4, 1, 51))
    return best[0], float(best[1])
