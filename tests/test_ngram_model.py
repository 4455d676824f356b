"""Issue #30's linear n-gram model beside the GRU (model.nb_buckets, nb_order, nb_join, nb_weight) and
the GRU's own smaller vocabulary (model.gru_words): the rows a text reads are its distinct real
n-grams, the Naive Bayes ratios are counted on the training split, the two joins train and evaluate
as declared, and the GRU never sees a word beyond gru_words."""

from __future__ import annotations

import numpy as np
import pytest

from gru_exp.config.knobs import BIGRAM_HASH

PAD = 99  # vocab_size 100: words 0..97, <unk> 98, <pad> 99


def _texts(rng, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.integers(1, width + 1, n)
    ids = np.full((n, width), PAD, dtype=np.int64)
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(0, 12, k)  # few words: many repeated n-grams
    return ids, lengths


def _expected_rows(ids: np.ndarray, length: int, buckets: int, order: int) -> set[int]:
    words = [int(w) for w in ids[:length]]
    rows = {w % buckets for w in words}
    for a, b in zip(words, words[1:]):
        rows.add((a * BIGRAM_HASH + b) % buckets)
    if order == 3:
        for a, b, c in zip(words, words[1:], words[2:]):
            rows.add((((a * BIGRAM_HASH + b) % buckets) * BIGRAM_HASH + c) % buckets)
    return rows if order > 1 else {w % buckets for w in words}


@pytest.mark.parametrize("order", [1, 2, 3])
def test_a_text_reads_each_of_its_real_ngrams_once_and_never_the_padding(order):
    import paddle

    from gru_exp.train.ngrams import NgramModel

    buckets = 1009
    model = NgramModel(buckets, order, 2)
    ids, lengths = _texts(np.random.default_rng(order), 6, 9)
    rows = model.rows(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    for i in range(len(ids)):
        got = rows[i][rows[i] != buckets]
        assert len(got) == len(set(got.tolist()))  # binarized: a repeated n-gram is read once
        assert set(got.tolist()) == _expected_rows(ids[i], lengths[i], buckets, order)
    longer = np.concatenate([ids, np.full((6, 5), PAD, dtype=np.int64)], axis=1)
    again = model.rows(paddle.to_tensor(longer), paddle.to_tensor(lengths)).numpy()
    for a, b in zip(rows, again):  # more padding: the same rows
        assert sorted(a[a != buckets].tolist()) == sorted(b[b != buckets].tolist())


def test_the_ratios_are_counted_on_the_training_texts_one_class_against_the_rest():
    from gru_exp.data.splits import Split
    from gru_exp.train.ngrams import NgramModel, fit_ratios

    # class 0 texts hold word 3 twice (counted once each), class 1 texts word 5; word 7 in all
    docs = [[3, 3, 7], [3, 7, 7], [3, 7], [5, 7], [5, 5, 7], [5, 7, 7], [9, 9, 9]]
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    tokens = np.concatenate([np.array(d, dtype=np.int32) for d in docs])
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64)
    train = Split(tokens, starts, np.array([len(d) for d in docs], dtype=np.int64), labels, PAD, None)
    model = NgramModel(1009, 1, 3)
    ratio = fit_ratios(model, train, 3)
    assert ratio.shape == (1010, 3) and not ratio[-1].any()
    texts = np.zeros((3, 1009))  # texts of each class holding each word
    for c, word, n in ((0, 3, 3), (1, 5, 3), (2, 9, 1), (0, 7, 3), (1, 7, 3)):
        texts[c, word] += n
    p, q = texts + 1.0, texts.sum(axis=0, keepdims=True) - texts + 1.0  # alpha 1: this class, the others
    expected = (np.log(p / p.sum(axis=1, keepdims=True)) - np.log(q / q.sum(axis=1, keepdims=True))).T
    np.testing.assert_allclose(ratio[:-1], expected, rtol=1e-5, atol=1e-6)
    assert ratio[3, 0] > 0 > ratio[3, 1] and ratio[5, 1] > 0 > ratio[5, 0] and ratio[9, 2] > ratio[7, 2]


def _classifier(**kw):
    import paddle

    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    paddle.seed(0)
    model = GRUClassifier(100, ModelConfig(embedding_size=8, hidden_size=6, num_layers=1, dropout=0.0, **kw))
    if model.ngrams is not None:
        rng = np.random.default_rng(1)
        model.ngrams.set_ratios(rng.normal(size=model.ngrams.ratio.shape).astype(np.float32))
        model.ngrams.weight.set_value(rng.normal(size=model.ngrams.weight.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("join", ["sum", "separate"])
def test_the_joins_train_and_evaluate_as_declared(join):
    import paddle
    import paddle.nn.functional as F

    ids, lengths = _texts(np.random.default_rng(2), 5, 8)
    x, n, labels = paddle.to_tensor(ids), paddle.to_tensor(lengths), paddle.to_tensor(np.array([0, 1, 1, 0, 1]))
    extra = {"nb_weight": 0.3} if join == "separate" else {}
    model = _classifier(nb_buckets=1009, nb_join=join, **extra)
    model.eval()
    gru, linear = model._gru_logits(x, n).numpy(), model.ngrams(x, n).numpy()
    mixed = model(x, n).numpy()
    expected = gru + linear if join == "sum" else 0.7 * gru + 0.3 * linear
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-5)
    assert float(model.aux_loss(labels)) == 0.0  # evaluation: no loss of its own
    model.train()
    out = model(x, n)
    aux = float(model.aux_loss(labels))
    if join == "sum":
        np.testing.assert_allclose(out.numpy(), gru + linear, rtol=1e-5, atol=1e-5)  # dropout 0
        assert aux == 0.0
    else:  # the GRU's logits returned, the n-gram model's loss on its own
        np.testing.assert_allclose(out.numpy(), gru, rtol=1e-5, atol=1e-5)
        assert aux == pytest.approx(float(F.cross_entropy(paddle.to_tensor(linear), labels)), rel=1e-5)
        loss = F.cross_entropy(out, labels) + model.aux_loss(labels)  # the second call: 0, read once
        assert float(loss) == pytest.approx(float(F.cross_entropy(out, labels)), rel=1e-6)


def test_the_gru_reads_only_its_words_while_the_ngram_model_reads_every_word():
    import paddle

    model = _classifier(gru_words=10, nb_buckets=1009, nb_order=1)
    model.eval()
    assert model.embedding.weight.shape[0] == 12  # 10 words, <unk>, <pad>
    ids = np.array([[1, 2, 40, 3, PAD, PAD], [4, 60, 61, 5, 6, PAD]], dtype=np.int64)
    rare = ids.copy()
    rare[rare == 40], rare[rare == 60] = 97, 98  # other words beyond gru_words, and <unk> itself
    n = paddle.to_tensor(np.array([4, 5]))
    a, b = model(paddle.to_tensor(ids), n), model(paddle.to_tensor(rare), n)
    # the GRU's share (all but the n-gram model's logits) is the same: every rare word is its <unk>
    np.testing.assert_allclose((a - model.ngrams(paddle.to_tensor(ids), n)).numpy(),
                               (b - model.ngrams(paddle.to_tensor(rare), n)).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.numpy(), b.numpy(), atol=1e-4)  # the n-gram model told them apart


@pytest.mark.parametrize("bad, message", [
    (["model.nb_order=2"], "model.nb_order=2 has no effect with model.nb_buckets=0"),
    (["model.nb_buckets=64", "model.nb_weight=0.3"], "model.nb_weight=0.3 has no effect with model.nb_join=sum"),
    (["model.nb_buckets=64", "model.use_lengths=false", "data.bucket_size=0"], "needs model.use_lengths=true"),
])
def test_ngram_model_knobs_that_cannot_work_are_refused(tiny_cfg, bad, message):
    from gru_exp.config.validation import validate
    from gru_exp.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate(tiny_cfg(*bad))
