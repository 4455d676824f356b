"""The notebook's GRU sentiment classifier, with true lengths, word dropout, pooling over time, an
optional bag of hashed bigrams beside the GRU (fastText's bigram features) and an optional linear
n-gram model over every word beside it (NBSVM's features, :mod:`gru_exp.train.ngrams`); without the
GRU (``model.gru=false``) a linear bag-of-words/bigrams baseline for any data."""

from __future__ import annotations

from typing import Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from gru_exp.config.knobs import BIGRAM_HASH, Direction, ModelConfig, NgramJoin, Pooling
from gru_exp.config.values import attention_units
from gru_exp.train.ngrams import NgramModel


def weighted_sum(values: paddle.Tensor, weights: paddle.Tensor, bmm: bool = False) -> paddle.Tensor:
    """[B, D] sum over time of ``values`` [B, T, D] times ``weights`` [B, T, 1]; ``bmm``: as a batched
    matmul (``model.fast_ops``: paddle's CPU backward of a broadcast multiply is slow)."""
    return paddle.matmul(weights, values, transpose_x=True).squeeze(1) if bmm else (values * weights).sum(axis=1)


def masked_mean(values: paddle.Tensor, mask: paddle.Tensor, bmm: bool = False) -> paddle.Tensor:
    """[B, D] mean of ``values`` [B, T, D] over the steps where ``mask`` [B, T, 1] is 1 (0 when none)."""
    return weighted_sum(values, mask, bmm) / mask.sum(axis=1).clip(min=1.0)


def real_steps(steps: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
    """[B, T, 1] mask of ``steps`` ([B, T, ...]): 1 on the first ``lengths`` steps of each row (every
    step without lengths), 0 on padding."""
    batch, width = steps.shape[0], steps.shape[1]
    if lengths is None:
        return paddle.ones([batch, width, 1], dtype=steps.dtype)
    return (paddle.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).astype(steps.dtype).unsqueeze(-1)


def dropout_mask(shape: list[int], p: float, word_p: float = 0.0) -> np.ndarray:
    """float32 ``shape`` ([B, T, E] or [B, F]) mask for ``model.fast_ops``: each element kept
    with probability 1 - ``p`` and scaled by 1 / (1 - p), as paddle's dropout (upscale in train);
    ``word_p`` > 0 also drops whole rows of the last axis (tokens) with that probability, scaled
    alike. Drawn by numpy's PCG64 from a seed drawn from paddle's generator: ``paddle.seed``
    fixes it and a checkpoint's RNG state continues it, as for paddle's own dropout."""
    rng = np.random.default_rng(paddle.randint(0, 2**31 - 1, [2]).numpy().tolist())  # a 62-bit seed
    mask = np.empty(shape, dtype=np.float32)
    np.multiply(rng.random(shape, dtype=np.float32) >= p, np.float32(1.0 / (1.0 - p)), out=mask)
    if word_p > 0:
        mask *= (rng.random(shape[:-1] + [1], dtype=np.float32) >= word_p) * np.float32(1.0 / (1.0 - word_p))
    return mask


def describe(m: ModelConfig, vocab_size: Optional[int] = None) -> str:
    """The model in words, for logs and an export's README (``vocab_size``: the data's, words + 2)."""
    attention = "" if m.attention_size is None else f" (score {m.attention_size or 'linear'})"
    core = (f"{m.direction} GRU, {m.num_layers} layer(s), hidden {m.hidden_size}, {m.pooling} pooling{attention}" if m.gru
            else "no GRU (linear: the tokens' mean embedding)")
    join = f"{m.nb_join}" + (f", weight {m.nb_weight:g}" if m.nb_join != NgramJoin.sum else "") + (
        f", C {m.nb_c:g}" if m.nb_join == NgramJoin.prefit else "")
    return (f"{core}, embedding {m.embedding_size}"
            + ("" if not m.gru_words else " (the whole vocabulary)" if vocab_size and m.gru_words >= vocab_size - 2
               else f" ({m.gru_words} most frequent words)")
            + f", dropout {m.dropout:.2f}, lengths {m.use_lengths}"
            + (f", bigram bag {m.bigram_buckets} x {m.bigram_size}{' + trigrams' if m.ngram_order == 3 else ''}"
               if m.bigram_buckets else "")
            + (f", n-gram model over every word: {m.nb_features} 1..{m.nb_order}-grams ({join})"
               if m.nb_features else ""))


class GRUClassifier(nn.Layer):
    """Embedding -> word dropout -> Dropout -> GRU -> pooling [+ bigram bag] -> Dropout -> Linear,
    as the model knobs (:class:`~gru_exp.config.knobs.ModelConfig`) say, ``num_classes`` wide.

    ``pooling``: ``last`` keeps the last layer's final state(s) (the notebook; bidirectional
    concatenates forward and backward); ``mean`` / ``max`` pool the last layer's outputs over
    time; ``attention`` weighs them by a small learned score. With ``lengths`` the padding is
    never pooled (masked out), so appending padding does not change the output.
    ``dropout`` is used after the embedding, between GRU layers (only when num_layers > 1) and
    before the classifier, as in the notebook; ``layer_dropout`` overrides it between layers.
    ``word_dropout`` zeroes whole tokens' embeddings (training only), scaled like dropout.
    ``gru`` false leaves the GRU out: the mean of the real tokens' embeddings (a bag of words) [+ the
    bigram bag] -> Dropout -> Linear, a linear model of the text's word and bigram counts (fastText's
    classifier) that trains in seconds; the GRU knobs (hidden size, layers, direction) then do nothing.
    ``bigram_buckets`` > 0 adds fastText's bigram features: each pair of neighbouring tokens is
    hashed into one of ``bigram_buckets`` rows of a ``bigram_size``-wide table, the rows of a
    review's real pairs (never one that reads padding: it needs ``lengths``) are averaged, and the
    average joins the pooled GRU features before the classifier. ``ngram_order`` 3 also hashes each
    triple of neighbouring tokens into the same table (its pair's row, times the multiplier, plus the
    third id) and averages pairs and triples together (n-1 + n-2 rows for n tokens); 2 is the
    bigram bag alone, the same operations as before the knob. The table's rows start near zero
    (paddle's Xavier default, std sqrt(2 / (buckets + size))) and get dense gradients; with
    ``read_rows`` (``trainer.bag_update=rows``) a training forward instead reads the batch's distinct
    rows into a leaf tensor, left in :attr:`rows_read` as (row ids, rows) for
    :class:`~gru_exp.train.optim.RowAdam`, so backward never builds the table's dense gradient.
    ``fast_ops`` computes the same model through cheaper ops: on a CPU the dropout masks are drawn
    with numpy (:func:`dropout_mask`; word and embedding dropout become one mask and one multiply;
    elsewhere paddle's dropout runs), and attention pooling and the averages are batched matmuls.
    ``gru_words`` > 0 keeps only the vocabulary's ``gru_words`` most frequent words (ids below it:
    the vocabulary is in frequency order) for the embedding and the bigram bag, the rest read as
    ``<unk>``; ``nb_features`` > 0 adds :class:`~gru_exp.train.ngrams.NgramModel` over the full ids,
    its logits summed with the classifier's (``nb_join=sum``), or trained on a loss of their own
    (:meth:`aux_loss`, ``separate``) or fitted before training and fixed (``prefit``), and then
    averaged with them at evaluation (share ``nb_weight``).
    """

    def __init__(self, vocab_size: int, m: ModelConfig, num_classes: int = 2, read_rows: bool = False) -> None:
        super().__init__()
        self.fast_ops, self.p = m.fast_ops, m.dropout
        self.num_directions = 2 if m.direction == Direction.bidirectional else 1
        self.pooling, self.word_dropout = Pooling(m.pooling), m.word_dropout
        self.vocab_size = vocab_size  # full ids: words, <unk> = vocab_size - 2, <pad> = vocab_size - 1
        self.gru_words = min(m.gru_words, vocab_size - 2)  # 0: the GRU reads the full ids
        self.ngrams = NgramModel(m.nb_features, m.nb_order, num_classes) if m.nb_features > 0 else None
        self.join, self.nb_weight = NgramJoin(m.nb_join), m.nb_weight
        if self.ngrams is not None and self.join == NgramJoin.prefit:  # fitted before training (train.ngrams.fit_weights)
            self.ngrams.weight.stop_gradient = self.ngrams.bias.stop_gradient = True  # and no optimizer moves them
        self.aux_logits: Optional[paddle.Tensor] = None  # nb_join=separate, training: the n-gram model's logits
        self.embedding = nn.Embedding(self.gru_words + 2 if self.gru_words else vocab_size, m.embedding_size)
        self.dropout = nn.Dropout(m.dropout)
        between = m.dropout if m.layer_dropout is None else m.layer_dropout  # null: model.dropout
        self.use_gru = m.gru
        if m.gru:
            self.gru = nn.GRU(m.embedding_size, m.hidden_size, num_layers=m.num_layers, direction=str(m.direction),
                              dropout=between if m.num_layers > 1 else 0.0)
        features = m.hidden_size * self.num_directions if m.gru else m.embedding_size
        if m.gru and self.pooling == Pooling.attention:  # score_t = v . tanh(W h_t + b), or v . h_t + c (size 0)
            size = attention_units(m)
            self.attention = (nn.Sequential(nn.Linear(features, size), nn.Tanh(), nn.Linear(size, 1)) if size
                              else nn.Linear(features, 1))
        self.bigram_buckets, self.ngram_order = m.bigram_buckets, m.ngram_order
        if m.bigram_buckets > 0:
            self.bigrams = nn.Embedding(m.bigram_buckets, m.bigram_size)
            features += m.bigram_size
        self.read_rows = read_rows and m.bigram_buckets > 0
        if self.read_rows:
            self.bigrams.weight.stop_gradient = True  # RowAdam updates the rows read; no dense gradient
        self.rows_read: Optional[tuple[paddle.Tensor, paddle.Tensor]] = None
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        # ids: [B, T] int64, lengths: [B] int64 or None (the GRU then also reads the padding)
        full = ids
        if self.gru_words:  # the GRU's ids: words below gru_words, then its <unk> and <pad>
            ids = paddle.where(full < self.gru_words, full, paddle.full_like(full, self.gru_words))  # [B, T]
            ids = paddle.where(full == self.vocab_size - 1, paddle.full_like(full, self.gru_words + 1), ids)  # [B, T]
        logits = self._gru_logits(ids, lengths)  # [B, C]
        if self.ngrams is None or (self.training and self.join == NgramJoin.prefit):  # prefit: fixed, the GRU trains
            return logits
        linear = self.ngrams(full, lengths)  # [B, C]
        if self.join == NgramJoin.sum:
            return logits + linear  # [B, C]: one model
        if self.training:  # separate: each on its own loss, the GRU's here, the n-gram model's in aux_loss
            self.aux_logits = linear
            return logits
        return (1.0 - self.nb_weight) * logits + self.nb_weight * linear  # [B, C]

    def aux_loss(self, labels: paddle.Tensor) -> paddle.Tensor:
        """[] the loss the training adds to the returned logits' own: the n-gram model's cross-entropy
        with ``nb_join=separate`` (its logits from the last training forward), else 0."""
        if self.aux_logits is None:
            return paddle.zeros([], dtype="float32")
        linear, self.aux_logits = self.aux_logits, None
        return F.cross_entropy(linear.astype("float32"), labels)

    def _gru_logits(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        # ids: [B, T] int64 (the GRU's), lengths: [B] int64 or None
        x = self.embedding(ids)  # [B, T, E]
        if self._host_dropout(x, max(self.p, self.word_dropout)):  # one mask: whole tokens (word dropout) and elements
            x = x * paddle.to_tensor(dropout_mask(x.shape, self.p, self.word_dropout))  # [B, T, E]
        else:
            if self.training and self.word_dropout > 0:
                keep = F.dropout(paddle.ones([x.shape[0], x.shape[1], 1], dtype=x.dtype), p=self.word_dropout)
                x = x * keep  # [B, T, E]: whole tokens dropped
            x = self.dropout(x)  # [B, T, E]
        if not self.use_gru:  # the bag of words: the real tokens' mean embedding
            features = masked_mean(x, real_steps(x, lengths), self.fast_ops)  # [B, E]
        else:
            features = self._gru_features(x, lengths)  # [B, dirs * H]
        if self.bigram_buckets > 0:
            features = paddle.concat([features, self._bigram_bag(ids, lengths)], axis=-1)  # [B, F + S]
        if self._host_dropout(features, self.p):
            return self.classifier(features * paddle.to_tensor(dropout_mask(features.shape, self.p)))  # [B, C] logits
        return self.classifier(self.dropout(features))  # [B, num_classes] logits

    def _host_dropout(self, x: paddle.Tensor, p: float) -> bool:
        """Whether a dropout of ``p`` draws its mask with numpy: ``fast_ops``, training, p > 0, on a CPU."""
        return self.fast_ops and self.training and p > 0 and x.place.is_cpu_place()

    def _gru_features(self, x: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        outputs, final = self.gru(x, sequence_length=lengths)  # outputs: [B, T, dirs * H]; final: [layers * dirs, B, H]
        if self.pooling == Pooling.last:
            last = final[-self.num_directions :]  # [dirs, B, H]: the last layer's fwd (and bwd) states
            return paddle.concat(list(last), axis=-1)  # [B, dirs * H]
        return self._pool(outputs, lengths)  # [B, dirs * H]

    def _bigram_bag(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        # ids: [B, T]; pair t = (ids[t], ids[t + 1]) is real when t + 1 < length (all pairs without lengths)
        if ids.shape[1] < 2:  # one-token batch: no pair anywhere
            return paddle.zeros([ids.shape[0], self.bigrams.weight.shape[1]], dtype=self.bigrams.weight.dtype)
        ids = ids.astype("int64")  # a * BIGRAM_HASH + b < 2**63 for any vocabulary below 9e12 words
        hashed = (ids[:, :-1] * BIGRAM_HASH + ids[:, 1:]) % self.bigram_buckets  # [B, T-1]
        if self.read_rows and self.training:  # trainer.bag_update=rows: the distinct rows read, in a leaf
            return self._bag_of_rows_read(ids, hashed, lengths)  # [B, S]
        rows = self.bigrams(hashed)  # [B, T-1, S]
        mask = real_steps(rows, None if lengths is None else lengths - 1)  # [B, T-1, 1]: n tokens, n-1 pairs
        if self.ngram_order == 2 or ids.shape[1] < 3:  # bigrams only (the order-2 path is unchanged)
            return masked_mean(rows, mask, self.fast_ops)  # [B, S]
        rows3 = self.bigrams(self._triples(ids, hashed))  # [B, T-2, S]
        mask3 = real_steps(rows3, None if lengths is None else lengths - 2)  # [B, T-2, 1]: n-2 triples
        return masked_mean(paddle.concat([rows, rows3], axis=1), paddle.concat([mask, mask3], axis=1),
                           self.fast_ops)  # [B, S]

    def _triples(self, ids: paddle.Tensor, hashed: paddle.Tensor) -> paddle.Tensor:
        # ids: [B, T] int64, hashed: [B, T-1] pair rows -> [B, T-2]: triple (a, b, c) hashed from (a, b)'s row
        return (hashed[:, :-1] * BIGRAM_HASH + ids[:, 2:]) % self.bigram_buckets

    def _bag_of_rows_read(self, ids: paddle.Tensor, hashed: paddle.Tensor,
                          lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        # ids: [B, T] int64, hashed: [B, T-1] pair rows; training only (never exported: no paddle.jit here)
        index = hashed
        if self.ngram_order == 3 and ids.shape[1] >= 3:  # and the triples' rows: [B, T-1 + T-2]
            index = paddle.concat([hashed, self._triples(ids, hashed)], axis=1)
        rows = self._read_rows(index)  # [B, N, S]: pairs, then triples
        mask = real_steps(rows[:, : hashed.shape[1]], None if lengths is None else lengths - 1)  # [B, T-1, 1]
        if index.shape[1] > hashed.shape[1]:
            mask = paddle.concat([mask, real_steps(rows[:, hashed.shape[1]:],
                                                   None if lengths is None else lengths - 2)], axis=1)  # [B, N, 1]
        return masked_mean(rows, mask, self.fast_ops)  # [B, S]

    def _read_rows(self, index: paddle.Tensor) -> paddle.Tensor:
        # index: [B, N] row ids -> [B, N, S] rows, through a leaf holding each distinct row once
        distinct, inverse = np.unique(index.numpy().ravel(), return_inverse=True)  # numpy: paddle.unique takes 0.3 s
        ids = paddle.to_tensor(distinct)  # [U]
        read = paddle.gather(self.bigrams.weight, ids).detach()  # [U, S]
        read.stop_gradient = False
        self.rows_read = (ids, read)
        return F.embedding(paddle.to_tensor(inverse.reshape(index.shape)), read)  # [B, N, S]

    def _pool(self, outputs: paddle.Tensor, lengths: Optional[paddle.Tensor]) -> paddle.Tensor:
        # outputs: [B, T, D]; mask: [B, T, 1], 1 on real tokens (all ones without lengths)
        mask = real_steps(outputs, lengths)  # [B, T, 1]
        if self.pooling == Pooling.mean:
            return masked_mean(outputs, mask, self.fast_ops)  # [B, D]
        if self.pooling == Pooling.max:
            masked = outputs + (mask - 1.0) * 1e9  # [B, T, D]: padding can never be the max
            # max_pool1d, not .max(axis=1): paddle 3.3.1's reduce-max backward takes 20 s on CPU for a
            # [64, 400, 128] batch, the pooling op 0.11 s, same values (measured here).
            return F.adaptive_max_pool1d(masked.transpose([0, 2, 1]), 1).squeeze(-1)  # [B, D]
        scores = self.attention(outputs) + (mask - 1.0) * 1e9  # [B, T, 1]
        weights = F.softmax(scores, axis=1)  # [B, T, 1], zero on padding
        return weighted_sum(outputs, weights, self.fast_ops)  # [B, D]
