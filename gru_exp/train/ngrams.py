"""The linear n-gram model beside the GRU (``model.nb_features``): Wang & Manning's NBSVM features
inside the network. Each text's distinct word n-grams (1 to ``model.nb_order`` words, over the full
vocabulary ids) are looked up in the model's n-gram vocabulary: the ``nb_features`` n-grams held by
the most training texts (:func:`fit_vocabulary`), as scikit-learn's CountVectorizer(binary=True,
max_features=...) keeps them; an n-gram outside it reads nothing. Feature f carries a fixed Naive
Bayes log-count ratio r[f, c] per class c, counted once on the training split (:func:`fit_ratios`),
and a weight w[f, c], learned with the GRU or fitted first (:func:`fit_weights`); the model's logit of
class c is b[c] + sum over the text's distinct features f of w[f, c] r[f, c] (logistic regression on
the binarized, NB-scaled n-grams). N-grams are identified by a 31-bit hash (``NGRAM_PRIME``), so
the vocabulary is a sorted array of hashes and no n-gram's text is kept."""

from __future__ import annotations

import logging
import time
import warnings
from typing import NamedTuple, Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from gru_exp.config.knobs import NB_ALPHA
from gru_exp.data.batches import iter_batches
from gru_exp.data.splits import Split

log = logging.getLogger(__name__)
READ_BATCH = 256  # texts per batch while reading the training split's n-grams
# An n-gram's identity: universal hashing modulo the prime 2^31 - 1, each n-gram's hash from its first
# n - 1 words' hash and its last word (multipliers: two fixed random 31-bit numbers). About 4.7 million
# distinct IMDB training n-grams among 2^31 values; a test n-gram outside experiment=imdb_ngrams's
# 1,048,576-n-gram vocabulary takes a vocabulary n-gram's hash with probability about 0.05%.
NGRAM_PRIME = 2**31 - 1
NGRAM_MULTIPLIERS = (1_103_515_245 % NGRAM_PRIME, 1_664_525_013 % NGRAM_PRIME)
UNUSED_KEY = NGRAM_PRIME + 1  # a vocabulary's unused places: above every hash and the "nothing here" mark NGRAM_PRIME
PREFIT_ITERATIONS = 200  # model.nb_join=prefit: L-BFGS iterations at most (scikit-learn's lbfgs: 100)
PREFIT_HISTORY = 10  # L-BFGS's remembered steps (scipy's default); each holds two copies of the weights


class NgramModel(nn.Layer):
    """b + sum over a text's distinct known n-grams of w * r, ``num_classes`` wide. Feature
    ``features`` is the sentinel every padding, repeated or unknown n-gram reads (its r is 0)."""

    def __init__(self, features: int, order: int, num_classes: int) -> None:
        super().__init__()
        self.features, self.order = features, order
        zeros = nn.initializer.Constant(0.0)
        self.weight = self.create_parameter([features + 1, num_classes], default_initializer=zeros)
        self.bias = self.create_parameter([num_classes], is_bias=True, default_initializer=zeros)
        self.register_buffer("ratio", paddle.zeros([features + 1, num_classes]), persistable=True)
        # the vocabulary's hashes, ascending; unused places hold UNUSED_KEY, which nothing read equals
        self.register_buffer("keys", paddle.full([features], UNUSED_KEY, dtype="int64"), persistable=True)

    def forward(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        # ids: [B, T] int64 full vocabulary ids, lengths: [B] int64 or None (every step real)
        rows = self.rows(ids, lengths)  # [B, N]
        scaled = F.embedding(rows, self.weight) * F.embedding(rows, self.ratio)  # [B, N, C]
        return scaled.sum(axis=1) + self.bias  # [B, C] logits

    def hashes(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        """[B, N] each text's distinct real n-grams' hashes, ascending, then NGRAM_PRIME (padding and
        repeats): 1 to ``order`` words, N = order * T."""
        # every constant an int64 tensor: paddle.jit's static graph computes a tensor-and-Python-number op
        # through a float scale, which rounds these products (the export's self-check caught it)
        prime, a, b, one, two, three = (paddle.full([1], v, dtype="int64") for v in (NGRAM_PRIME, *NGRAM_MULTIPLIERS, 1, 2, 3))
        ids = paddle.remainder(ids.astype("int64"), prime)  # [B, T]: below 2^31, so every product below fits in int64
        zero = paddle.zeros_like(ids[:, :1])  # [B, 1]
        after = paddle.concat([ids, zero, zero], axis=1)  # [B, T + 2]: every pair and triple exists (one traced graph)
        words = paddle.remainder(ids * a + one, prime)  # [B, T]: word t's hash
        pairs = paddle.remainder(paddle.remainder(words * b, prime) + after[:, 1:-1] * a + two, prime)  # [B, T]: (t, t+1)
        triples = paddle.remainder(paddle.remainder(pairs * b, prime) + after[:, 2:] * a + three, prime)  # (t, t+1, t+2)
        step = paddle.cumsum(paddle.ones_like(ids), axis=1) - 1  # [B, T]: 0, 1, ..., T - 1
        length = step[:, -1:] + 1 if lengths is None else lengths.astype("int64").unsqueeze(1)  # [B, 1]
        none = paddle.full_like(ids, NGRAM_PRIME)  # [B, T]
        real = [paddle.where(step < length - n, grams, none)  # [B, T]: an n+1-gram needs n more words
                for n, grams in enumerate((words, pairs, triples)[: self.order])]
        ordered = paddle.sort(paddle.concat(real, axis=1), axis=1)  # [B, N]
        repeat = paddle.concat([paddle.zeros_like(ordered[:, :1], dtype="bool"), ordered[:, 1:] == ordered[:, :-1]],
                               axis=1)  # [B, N]: the same n-gram as the one before it
        return paddle.where(repeat, paddle.full_like(ordered, NGRAM_PRIME), ordered)  # [B, N]

    def rows(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        """[B, N] the feature of each text's distinct real n-grams in the vocabulary, the sentinel
        ``features`` elsewhere (each feature at most once per text)."""
        hashes = self.hashes(ids, lengths)  # [B, N]
        place = paddle.searchsorted(self.keys, hashes).clip(max=self.features - 1)  # [B, N]
        known = paddle.gather(self.keys, place.flatten()).reshape(place.shape) == hashes  # [B, N]
        return paddle.where(known, place, paddle.full_like(place, self.features))  # [B, N]

    def set_vocabulary(self, keys: np.ndarray) -> None:
        """int64 [<= features] the vocabulary's hashes, ascending (:func:`fit_vocabulary`)."""
        full = np.full(self.features, UNUSED_KEY, dtype=np.int64)
        full[: len(keys)] = keys
        self.keys.set_value(paddle.to_tensor(full))

    def set_ratios(self, ratio: np.ndarray) -> None:
        """float32 [features + 1, C] log-count ratios (the sentinel's row 0), from :func:`fit_ratios`."""
        self.ratio.set_value(paddle.to_tensor(ratio.astype(np.float32)))


def _read(ngrams: NgramModel, train: Split, what) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, texts, labels): ``what(ids, lengths)`` ([B, N], ``missing`` where nothing) over the
    training texts in batches, as coordinates (texts numbered in reading order, ascending) of the
    places that are not ``missing``, and each text's class."""
    values, texts = [], []
    order = np.argsort(train.lengths, kind="stable")
    batches = [order[i : i + READ_BATCH] for i in range(0, len(train), READ_BATCH)]
    with paddle.no_grad():
        for first, batch in zip(range(0, len(train), READ_BATCH), iter_batches(train, batches, trim=True)):
            read, missing = what(paddle.to_tensor(batch.ids), paddle.to_tensor(batch.lengths))
            read = read.numpy()  # [B, N]
            text, column = np.nonzero(read != missing)  # row-major: texts ascending
            values.append(read[text, column])
            texts.append(text + first)
    return np.concatenate(values), np.concatenate(texts), train.labels[order]


def fit_vocabulary(ngrams: NgramModel, train: Split) -> None:
    """The ``features`` n-grams held by the most training texts (ties: the smaller hash first)."""
    start = time.perf_counter()
    hashes, _, _ = _read(ngrams, train, lambda ids, n: (ngrams.hashes(ids, n), NGRAM_PRIME))
    keys, held = np.unique(hashes, return_counts=True)  # each text's n-grams are distinct: texts per n-gram
    most = np.lexsort((keys, -held))[: ngrams.features]  # the most held first
    kept, least = np.sort(keys[most]), int(held[most].min()) if len(most) else 0
    ngrams.set_vocabulary(kept)
    log.info("N-gram model: %d distinct n-grams in %d training texts, %d kept (each in %d or more texts); %.1f s",
             len(keys), len(train), len(kept), least, time.perf_counter() - start)


class TrainingNgrams(NamedTuple):
    """Every training text's distinct real n-gram rows, as a sparse matrix by coordinates."""

    rows: np.ndarray  # int64 [nnz]: the feature of each (text, known n-gram) pair
    texts: np.ndarray  # int64 [nnz]: its text, ascending (texts numbered as ``labels`` holds them)
    labels: np.ndarray  # int64 [N]: each text's class


def training_ngrams(ngrams: NgramModel, train: Split) -> TrainingNgrams:
    """What the n-gram model reads of each training text (after :func:`fit_vocabulary`), read
    through :meth:`NgramModel.rows`, so the counts and the fit see what training and prediction read."""
    return TrainingNgrams(*_read(ngrams, train, lambda ids, n: (ngrams.rows(ids, n), ngrams.features)))


def fit_ratios(ngrams: NgramModel, read: TrainingNgrams, num_classes: int) -> np.ndarray:
    """float32 [features + 1, C]: r[f, c] = log((p / |p|_1) / (q / |q|_1)) with p = alpha + the number of
    training texts of class c holding feature f, q = alpha + the number of the other classes' texts
    holding it (one-vs-rest; for two classes r[:, 1] = -r[:, 0]); 0 in the sentinel row."""
    start = time.perf_counter()
    used = int((ngrams.keys.numpy() != UNUSED_KEY).sum())  # the vocabulary's n-grams (fewer when the data has fewer)
    counts = np.zeros((num_classes, used), dtype=np.int64)
    for c in range(num_classes):
        counts[c] = np.bincount(read.rows[read.labels[read.texts] == c], minlength=used)
    p = counts + NB_ALPHA  # [C, used]
    q = counts.sum(axis=0, keepdims=True) - counts + NB_ALPHA  # [C, used]: every other class
    ratio = np.log(p / p.sum(axis=1, keepdims=True)) - np.log(q / q.sum(axis=1, keepdims=True))  # [C, used]
    out = np.zeros((ngrams.features + 1, num_classes), dtype=np.float32)
    out[:used] = ratio.T
    log.info("N-gram model: log-count ratios of %d n-grams in [%.2f, %.2f]; %.1f s", used, float(ratio.min(initial=0)),
             float(ratio.max(initial=0)), time.perf_counter() - start)
    return out


def fit_weights(ngrams: NgramModel, read: TrainingNgrams, c: float, max_iter: int = PREFIT_ITERATIONS) -> None:
    """``model.nb_join=prefit``: the weights and bias that minimise the mean cross-entropy over the
    training texts plus |W|^2 / (c N) (for two classes scikit-learn's binary LogisticRegression(C=c)
    objective on the NB-scaled features; for more, its multinomial one with C = c / 2), by L-BFGS from
    zero; then frozen for the GRU's training."""
    start = time.perf_counter()
    n = len(read.labels)
    # and one coordinate per text on the sentinel (ratio 0), so every text has a logit row, even one that
    # reads no known n-gram (segment_sum makes rows up to the last text it is given)
    every = np.concatenate([read.texts, np.arange(n)])
    order = np.argsort(every, kind="stable")
    rows = paddle.to_tensor(np.concatenate([read.rows, np.full(n, ngrams.features)])[order])
    texts = paddle.to_tensor(every[order])
    labels = paddle.to_tensor(read.labels)
    scale = paddle.gather(ngrams.ratio, rows)  # [nnz, C]
    ngrams.weight.stop_gradient = ngrams.bias.stop_gradient = False
    opt = paddle.optimizer.LBFGS(learning_rate=1.0, max_iter=max_iter, history_size=PREFIT_HISTORY,
                                 line_search_fn="strong_wolfe", parameters=[ngrams.weight, ngrams.bias])
    losses = []

    def closure() -> paddle.Tensor:
        opt.clear_grad()
        logits = paddle.geometric.segment_sum(paddle.gather(ngrams.weight, rows) * scale, texts) + ngrams.bias  # [N, C]
        loss = F.cross_entropy(logits, labels) + (ngrams.weight * ngrams.weight).sum() / (c * n)  # []
        loss.backward()
        losses.append(float(loss))
        return loss

    with warnings.catch_warnings():  # paddle 3.3.1's LBFGS copies a tensor with paddle.to_tensor, and says so
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")
        opt.step(closure)
    ngrams.weight.stop_gradient = ngrams.bias.stop_gradient = True  # fixed again, as GRUClassifier made them
    log.info("N-gram model fitted (logistic regression, C=%g): objective %.4f -> %.4f in %d evaluations; %.1f s",
             c, losses[0], losses[-1], len(losses), time.perf_counter() - start)
