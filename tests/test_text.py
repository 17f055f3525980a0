"""pydoc_text: a deterministic character split of Python's docs; windows; the exact bigram."""
import numpy as np
import pytest

import fnnet
from fnnet import text


def test_pydoc_text_split_is_deterministic_and_covers_the_corpus():
    a, b = fnnet.datasets.pydoc_text(), fnnet.datasets.pydoc_text()
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    corpus = text.corpus()
    assert a.decode(np.concatenate([a.train, a.val])) == corpus
    assert abs(len(a.val) / len(corpus) - 0.1) < 1e-3
    assert a.chars == "".join(sorted(set(corpus))) and 60 < a.vocab < 200
    assert a.train.dtype == np.int32


def test_encode_decode_and_windows():
    d = fnnet.datasets.pydoc_text(max_chars=500)
    assert d.chars == fnnet.datasets.pydoc_text().chars and len(d.train) + len(d.val) == 500
    ids = d.encode("def ")
    assert d.decode(ids) == "def "
    x, y = text.windows(d.train, 8)
    assert x.shape == y.shape == ((len(d.train) - 8 - 1) // 8 + 1, 8)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])               # y is x shifted by one
    np.testing.assert_array_equal(x[1], d.train[8:16])
    x2, _ = text.windows(d.train, 8, stride=3)
    np.testing.assert_array_equal(x2[1], d.train[3:11])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        d.encode("\x00")
    with pytest.raises(ValueError, match=r"at least context \+ 1 = 9"):
        text.windows(d.train[:8], 8)


def test_bigram_is_exact():
    d = text.TextData(np.array([0, 1, 0, 1, 1, 2], np.int32), np.array([1, 0, 1, 2], np.int32), "abc")
    nats, alpha = text.bigram_loss(d, alpha=0.5)
    counts = {(0, 1): 2, (1, 0): 1, (1, 1): 1, (1, 2): 1}
    row = {0: 2, 1: 3, 2: 0}

    def p(a, b):
        return (counts.get((a, b), 0) + 0.5) / (row[a] + 0.5 * 3)
    want = -np.mean([np.log(p(1, 0)), np.log(p(0, 1)), np.log(p(1, 2))])
    assert alpha == 0.5 and abs(nats - want) < 1e-12
    best, a_best = text.bigram_loss(d)
    assert best <= nats + 1e-12 and 1e-4 <= a_best <= 10


def test_pydoc_text_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction must be a float in"):
        fnnet.datasets.pydoc_text(val_fraction=1.5)
    with pytest.raises(ValueError, match=r"max_chars \(or None\) must be an int >= 4"):
        fnnet.datasets.pydoc_text(max_chars=2)
