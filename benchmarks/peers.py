"""The linear peers a user would try instead of a GRU sweep (issue #30), on IMDB's own 25k/25k split.

(a) TF-IDF unigrams + bigrams, logistic regression;
(b) NB log-count ratios on binarized uni+bi+trigrams, logistic regression (Wang & Manning's NBSVM idea:
    each binary feature scaled by r = log((p / |p|_1) / (q / |q|_1)), p and q the smoothed feature
    counts of the positive and negative training reviews).

Both read the reviews with gru-exp's own IMDB tokenizer (gru_exp.data.tokenize.tokenize: paddle's:
ASCII punctuation dropped, lower-cased, split on whitespace), so they see the GRU's tokens; unlike the
GRU they keep every word (no data.cutoff vocabulary, no <unk>). The regularisation C is chosen on a
2,500-review hold-out of train (stratified, seed 0); the model is then refit on all 25,000 training
reviews (vectoriser and NB ratios included) and scored once on test. Times are wall clock, one
process (scikit-learn's liblinear is single-threaded); the tokenizing pass is timed separately.

    pip install -e '.[peers]'
    python benchmarks/peers.py ../shared/data/aclImdb_v1.tar.gz [--only tfidf|nbsvm]
"""

from __future__ import annotations

import argparse
import re
import tarfile
import time
from typing import Any, Callable

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from gru_exp.data.tokenize import tokenize

_DOC = re.compile(r"aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")
HOLD_OUT, SEED = 2500, 0  # the hold-out (a tenth of train when that is smaller: test archives) and its seed
GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def read(archive: str) -> dict[str, tuple[list[list[str]], np.ndarray]]:
    """{"train"|"test": (token lists, labels 1 = pos)} from the archive, tokenized as gru-exp does."""
    out: dict[str, tuple[list[list[str]], list[int]]] = {"train": ([], []), "test": ([], [])}
    with tarfile.open(archive) as tar:
        for member in tar:
            match = _DOC.match(member.name)
            fh = tar.extractfile(member) if match else None
            if match and fh is not None:
                out[match.group(1)][0].append([t.decode("latin-1") for t in tokenize(fh.read())])
                out[match.group(1)][1].append(int(match.group(2) == "pos"))
    return {split: (docs, np.array(labels)) for split, (docs, labels) in out.items()}


def _vectorizer(kind: type, **kw: Any) -> Any:
    """A vectoriser over pre-tokenized reviews (lists of tokens)."""
    return kind(analyzer="word", tokenizer=lambda d: d, preprocessor=lambda d: d, lowercase=False,
                token_pattern=None, dtype=np.float64, **kw)


class Tfidf:
    """(a) features: TF-IDF (sublinear tf, l2) of unigrams + bigrams."""

    def __init__(self) -> None:
        self.vec = _vectorizer(TfidfVectorizer, ngram_range=(1, 2), sublinear_tf=True)

    def fit_transform(self, docs: list, y: np.ndarray) -> sparse.csr_matrix:
        return self.vec.fit_transform(docs)

    def transform(self, docs: list) -> sparse.csr_matrix:
        return self.vec.transform(docs)


class NBRatios:
    """(b) features: binarized uni+bi+trigrams scaled by NB log-count ratios (alpha = 1)."""

    def __init__(self) -> None:
        self.vec = _vectorizer(CountVectorizer, ngram_range=(1, 3), binary=True)

    def fit_transform(self, docs: list, y: np.ndarray) -> sparse.csr_matrix:
        x = self.vec.fit_transform(docs)
        p = np.asarray(x[y == 1].sum(axis=0)).ravel() + 1.0
        q = np.asarray(x[y == 0].sum(axis=0)).ravel() + 1.0
        self.r = sparse.diags(np.log((p / p.sum()) / (q / q.sum())))
        return (x @ self.r).tocsr()

    def transform(self, docs: list) -> sparse.csr_matrix:
        return (self.vec.transform(docs) @ self.r).tocsr()


def _lr(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, solver="liblinear", max_iter=1000)


def run(name: str, features: Callable[[], Any], data: dict) -> None:
    """Choose C on the hold-out (features fitted on the other 22,500 reviews only), refit features
    and model on all train, score once on test; print it with the times."""
    docs, y = data["train"]
    fit_i, held_i = train_test_split(np.arange(len(y)), test_size=min(HOLD_OUT, len(y) // 10), stratify=y, random_state=SEED)
    start = time.perf_counter()
    f = features()
    x_fit = f.fit_transform([docs[i] for i in fit_i], y[fit_i])
    x_held = f.transform([docs[i] for i in held_i])
    held = {c: float(_lr(c).fit(x_fit, y[fit_i]).score(x_held, y[held_i])) for c in GRID}
    chosen = max(GRID, key=lambda c: (held[c], -c))  # ties: the stronger regularisation
    search = time.perf_counter() - start
    start = time.perf_counter()
    f = features()
    model = _lr(chosen).fit(f.fit_transform(docs, y), y)
    test = float(model.score(f.transform(data["test"][0]), data["test"][1]))
    final = time.perf_counter() - start
    print(f"{name}: {x_fit.shape[1]:,} features; hold-out accuracy by C "
          f"{', '.join(f'{c:g}: {a:.4f}' for c, a in held.items())}; C={chosen:g}; test accuracy {100 * test:.2f}%; "
          f"refit on {len(y):,} + test scoring {final:.0f} s (C search {search:.0f} s over {len(GRID)} values)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", help="aclImdb_v1.tar.gz")
    parser.add_argument("--only", choices=("tfidf", "nbsvm"), help="one peer only")
    args = parser.parse_args()
    start = time.perf_counter()
    data = read(args.archive)
    print(f"read and tokenized {len(data['train'][1])} + {len(data['test'][1])} reviews in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    if args.only in (None, "tfidf"):
        run("TF-IDF uni+bigrams + logistic regression", Tfidf, data)
    if args.only in (None, "nbsvm"):
        run("NB log-count ratios, binarized uni+bi+trigrams + logistic regression", NBRatios, data)


if __name__ == "__main__":
    main()
