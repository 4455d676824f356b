"""What the GRU's n-gram bag cannot see, measured on a linear model (issue #30): NB-LR (peers.py's
NB log-count ratios on binarized n-grams, logistic regression) fed the same reviews with the bag's
restrictions one at a time: the GRU's vocabulary (words seen more than 150 times; the rest <unk>),
its first 600 tokens, and n-grams hashed into a fixed number of rows (2^18 = imdb_bigram's
model.bigram_buckets). A probe, not a result: every row is scored on peers.py's 2,500-review hold-out
of train (fitted on the other 22,500), for C in 0.3, 1, 3; test is never read.

    pip install -e '.[peers]'
    python benchmarks/bag_information.py ../shared/data/aclImdb_v1.tar.gz      # about 15 minutes, one core
"""

from __future__ import annotations

import argparse
import collections
import time
import zlib
from typing import Callable

import numpy as np
from peers import HOLD_OUT, SEED, NBRatios, _lr, _vectorizer, read
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
from sklearn.model_selection import train_test_split

CUTOFF, SEQ_LEN, GRID = 150, 600, (0.3, 1.0, 3.0)


class Counted(NBRatios):
    """NB-LR's features over ``ngrams`` (a (min, max) range), every distinct n-gram its own column."""

    def __init__(self, ngrams: tuple[int, int]) -> None:
        self.vec = _vectorizer(CountVectorizer, ngram_range=ngrams, binary=True)


class Hashed(NBRatios):
    """NB-LR's features over ``ngrams`` hashed into ``rows`` columns (collisions share a column, as
    they share a row of the GRU's bag)."""

    def __init__(self, ngrams: tuple[int, int], rows: int) -> None:
        self.vec = HashingVectorizer(analyzer="word", tokenizer=lambda d: d, preprocessor=lambda d: d, lowercase=False,
                                     token_pattern=None, ngram_range=ngrams, n_features=rows, binary=True,
                                     alternate_sign=False, norm=None, dtype=np.float64)
        self.vec.fit_transform = self.vec.transform  # nothing to fit: NBRatios calls fit_transform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", help="aclImdb_v1.tar.gz")
    args = parser.parse_args()
    docs, y = read(args.archive)["train"]
    fit_i, held_i = train_test_split(np.arange(len(y)), test_size=HOLD_OUT, stratify=y, random_state=SEED)
    counts = collections.Counter(w for i in fit_i for w in docs[i])
    kept = {w for w, c in counts.items() if c > CUTOFF}
    vocab = lambda d: [w if w in kept else "<unk>" for w in d]  # noqa: E731
    rare_rows = lambda d: [w if w in kept else f"<unk{zlib.crc32(w.encode()) % 16384}>" for w in d]  # noqa: E731
    rows: list[tuple[str, Callable[[list], list], Callable[[], NBRatios]]] = [
        ("every word, uni+bi+trigrams (peers.py's NB-LR)", lambda d: d, lambda: Counted((1, 3))),
        (f"every word, first {SEQ_LEN} tokens", lambda d: d[:SEQ_LEN], lambda: Counted((1, 3))),
        (f"words seen > {CUTOFF} times, the rest <unk>", vocab, lambda: Counted((1, 3))),
        ("the same, rare words hashed into 16,384 <unk> rows", rare_rows, lambda: Counted((1, 3))),
        ("every word, uni+bi+trigrams hashed into 2^18 rows", lambda d: d, lambda: Hashed((1, 3), 2**18)),
        ("every word, uni+bi+trigrams hashed into 2^20 rows", lambda d: d, lambda: Hashed((1, 3), 2**20)),
        (f"the GRU's information: > {CUTOFF} times, first {SEQ_LEN}, uni+bigrams", lambda d: vocab(d[:SEQ_LEN]),
         lambda: Counted((1, 2))),
        ("the same, hashed into 2^18 rows (imdb_bigram's bag)", lambda d: vocab(d[:SEQ_LEN]), lambda: Hashed((1, 2), 2**18)),
    ]
    for name, view, features in rows:
        seen = [view(d) for d in docs]
        start = time.perf_counter()
        f = features()
        x_fit = f.fit_transform([seen[i] for i in fit_i], y[fit_i])
        x_held = f.transform([seen[i] for i in held_i])
        held = {c: float(_lr(c).fit(x_fit, y[fit_i]).score(x_held, y[held_i])) for c in GRID}
        print(f"{name}: {x_fit.shape[1]:,} features; hold-out accuracy by C "
              f"{', '.join(f'{c:g}: {100 * a:.2f}' for c, a in held.items())}; best {100 * max(held.values()):.2f}; "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
