"""The linear n-gram model beside the GRU (``model.nb_buckets``): Wang & Manning's NBSVM features
inside the network. Each text's distinct word n-grams (1 to ``model.nb_order`` words, over the full
vocabulary ids) are hashed into ``nb_buckets`` rows; row f carries a fixed Naive Bayes log-count
ratio r[f, c] per class c, counted once on the training split (:func:`fit_ratios`), and a learned
weight w[f, c]; the model's logit of class c is b[c] + sum over the text's distinct rows f of
w[f, c] r[f, c] (logistic regression on the binarized, NB-scaled n-grams)."""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np
import paddle
from paddle import nn

from gru_exp.config.knobs import BIGRAM_HASH, NB_ALPHA
from gru_exp.data.batches import iter_batches
from gru_exp.data.splits import Split

log = logging.getLogger(__name__)
RATIO_BATCH = 256  # texts per batch while counting the training split's n-grams


class NgramModel(nn.Layer):
    """b + sum over a text's distinct hashed n-grams of w * r, ``num_classes`` wide. Row
    ``buckets`` is the sentinel every padding, repeated or missing n-gram reads (its r is 0)."""

    def __init__(self, buckets: int, order: int, num_classes: int) -> None:
        super().__init__()
        self.buckets, self.order = buckets, order
        zeros = nn.initializer.Constant(0.0)
        self.weight = self.create_parameter([buckets + 1, num_classes], default_initializer=zeros)
        self.bias = self.create_parameter([num_classes], is_bias=True, default_initializer=zeros)
        self.register_buffer("ratio", paddle.zeros([buckets + 1, num_classes]), persistable=True)

    def forward(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        # ids: [B, T] int64 full vocabulary ids, lengths: [B] int64 or None (every step real)
        rows = self.rows(ids, lengths)  # [B, N]
        scaled = nn.functional.embedding(rows, self.weight) * nn.functional.embedding(rows, self.ratio)  # [B, N, C]
        return scaled.sum(axis=1) + self.bias  # [B, C] logits

    def rows(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        """[B, N] the rows of each text's distinct real n-grams (in row order), the sentinel elsewhere:
        word t's row is id % buckets, pair (a, b)'s (a * BIGRAM_HASH + b) % buckets, triple (a, b, c)'s
        (pair row * BIGRAM_HASH + c) % buckets (the bigram bag's hash)."""
        ids = ids.astype("int64")  # [B, T]
        zero = paddle.zeros_like(ids[:, :1])  # [B, 1]
        after = paddle.concat([ids, zero, zero], axis=1)  # [B, T + 2]: every pair and triple exists (one traced graph)
        words = ids % self.buckets  # [B, T]
        pairs = (ids * BIGRAM_HASH + after[:, 1:-1]) % self.buckets  # [B, T]: (t, t + 1)
        triples = (pairs * BIGRAM_HASH + after[:, 2:]) % self.buckets  # [B, T]: (t, t + 1, t + 2)
        step = paddle.cumsum(paddle.ones_like(ids), axis=1) - 1  # [B, T]: 0, 1, ..., T - 1
        length = step[:, -1:] + 1 if lengths is None else lengths.astype("int64").unsqueeze(1)  # [B, 1]
        sentinel = paddle.full_like(ids, self.buckets)  # [B, T]
        real = [paddle.where(step < length - n, rows, sentinel)  # [B, T]: an n+1-gram needs n more words
                for n, rows in enumerate((words, pairs, triples)[: self.order])]
        ordered = paddle.sort(paddle.concat(real, axis=1), axis=1)  # [B, N = order * T]
        repeat = paddle.concat([paddle.zeros_like(ordered[:, :1], dtype="bool"), ordered[:, 1:] == ordered[:, :-1]],
                               axis=1)  # [B, N]: the same row as the one before it
        return paddle.where(repeat, paddle.full_like(ordered, self.buckets), ordered)  # [B, N]

    def set_ratios(self, ratio: np.ndarray) -> None:
        """float32 [buckets + 1, C] log-count ratios (the sentinel's row 0), from :func:`fit_ratios`."""
        self.ratio.set_value(paddle.to_tensor(ratio.astype(np.float32)))


def fit_ratios(ngrams: NgramModel, train: Split, num_classes: int) -> np.ndarray:
    """float32 [buckets + 1, C]: r[f, c] = log((p / |p|_1) / (q / |q|_1)) with p = alpha + the number of
    training texts of class c holding row f, q = alpha + the number of the other classes' texts
    holding it (one-vs-rest; for two classes r[:, 1] = -r[:, 0]); 0 in the sentinel row."""
    start = time.perf_counter()
    counts = np.zeros((num_classes, ngrams.buckets + 1), dtype=np.int64)
    order = np.argsort(train.lengths, kind="stable")
    batches = [order[i : i + RATIO_BATCH] for i in range(0, len(train), RATIO_BATCH)]
    with paddle.no_grad():
        for batch in iter_batches(train, batches, trim=True):
            rows = ngrams.rows(paddle.to_tensor(batch.ids), paddle.to_tensor(batch.lengths)).numpy()  # [B, N]
            for c in range(num_classes):
                counts[c] += np.bincount(rows[batch.labels == c].ravel(), minlength=ngrams.buckets + 1)
    counts = counts[:, : ngrams.buckets]  # the sentinel's count is padding and repeats
    p = counts + NB_ALPHA  # [C, buckets]
    q = counts.sum(axis=0, keepdims=True) - counts + NB_ALPHA  # [C, buckets]: every other class
    ratio = np.log(p / p.sum(axis=1, keepdims=True)) - np.log(q / q.sum(axis=1, keepdims=True))  # [C, buckets]
    out = np.zeros((ngrams.buckets + 1, num_classes), dtype=np.float32)
    out[:-1] = ratio.T
    log.info("N-gram model: %d of %d rows seen in %d training texts, log-count ratios in [%.2f, %.2f]; %.1f s",
             int((counts.sum(axis=0) > 0).sum()), ngrams.buckets, len(train), float(ratio.min()), float(ratio.max()),
             time.perf_counter() - start)
    return out
