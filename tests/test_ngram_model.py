"""Issue #30's linear n-gram model beside the GRU (model.nb_features, nb_order, nb_join, nb_weight) and
the GRU's own smaller vocabulary (model.gru_words): the rows a text reads are its distinct real
n-grams, the Naive Bayes ratios are counted on the training split, the two joins train and evaluate
as declared, and the GRU never sees a word beyond gru_words."""

from __future__ import annotations

import numpy as np
import pytest


PAD = 99  # vocab_size 100: words 0..97, <unk> 98, <pad> 99


def _texts(rng, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.integers(1, width + 1, n)
    ids = np.full((n, width), PAD, dtype=np.int64)
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(0, 12, k)  # few words: many repeated n-grams
    return ids, lengths


def _hash(words: list[int]) -> int:
    """The n-gram's identity as gru_exp.train.ngrams documents it (pinned: checkpoints hold these)."""
    from gru_exp.train.ngrams import NGRAM_MULTIPLIERS, NGRAM_PRIME

    a, b = NGRAM_MULTIPLIERS
    h = (words[0] * a + 1) % NGRAM_PRIME
    for n, w in enumerate(words[1:], start=2):
        h = ((h * b) % NGRAM_PRIME + w * a + n) % NGRAM_PRIME
    return h


def _expected(ids: np.ndarray, length: int, order: int) -> set[int]:
    words = [int(w) for w in ids[:length]]
    return {_hash(words[t : t + n]) for n in range(1, order + 1) for t in range(len(words) - n + 1)}


@pytest.mark.parametrize("order", [1, 2, 3])
def test_a_text_reads_each_of_its_known_ngrams_once_and_never_the_padding(order):
    import paddle

    from gru_exp.train.ngrams import NGRAM_PRIME, NgramModel

    model = NgramModel(50, order, 2)
    ids, lengths = _texts(np.random.default_rng(order), 6, 9)
    hashes = model.hashes(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    for i in range(len(ids)):
        got = hashes[i][hashes[i] != NGRAM_PRIME]
        assert len(got) == len(set(got.tolist()))  # binarized: a repeated n-gram is read once
        assert set(got.tolist()) == _expected(ids[i], lengths[i], order)
    longer = np.concatenate([ids, np.full((6, 5), PAD, dtype=np.int64)], axis=1)
    again = model.hashes(paddle.to_tensor(longer), paddle.to_tensor(lengths)).numpy()
    for a, b in zip(hashes, again):  # more padding: the same n-grams
        assert sorted(a[a != NGRAM_PRIME].tolist()) == sorted(b[b != NGRAM_PRIME].tolist())
    known = sorted(_expected(ids[0], lengths[0], order))[:7]  # a vocabulary of some of the first text's n-grams
    model.set_vocabulary(np.array(known, dtype=np.int64))
    rows = model.rows(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    for i in range(len(ids)):  # each known n-gram its place in the vocabulary, anything else the sentinel 50
        expected = sorted(known.index(h) for h in _expected(ids[i], lengths[i], order) if h in known)
        assert sorted(rows[i][rows[i] != 50].tolist()) == expected


def _split(docs: list[list[int]], labels: list[int]):
    from gru_exp.data.splits import Split

    tokens = np.concatenate([np.array(d, dtype=np.int32) for d in docs])
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64)
    return Split(tokens, starts, np.array([len(d) for d in docs], dtype=np.int64), np.array(labels), PAD, None)


def test_the_vocabulary_keeps_the_ngrams_of_the_most_texts_and_the_ratios_count_them_one_class_against_the_rest():
    from gru_exp.train.ngrams import NgramModel, fit_ratios, fit_vocabulary, training_ngrams

    # class 0 texts hold word 3 (twice in one: counted once), class 1 texts word 5; word 7 in six texts
    docs = [[3, 3, 7], [3, 7, 7], [3, 7], [5, 7], [5, 5, 7], [5, 7, 7], [9, 9, 9]]
    train = _split(docs, [0, 0, 0, 1, 1, 1, 2])
    model = NgramModel(3, 1, 3)  # room for 3 of the 4 words: 9 (one text) is left out
    fit_vocabulary(model, train)
    kept = sorted(_hash([w]) for w in (3, 5, 7))
    assert model.keys.numpy().tolist() == kept
    place = {w: kept.index(_hash([w])) for w in (3, 5, 7)}
    ratio = fit_ratios(model, training_ngrams(model, train), 3)
    assert ratio.shape == (4, 3) and not ratio[-1].any()
    texts = np.zeros((3, 3))  # texts of each class holding each kept word
    for c, word, n in ((0, 3, 3), (1, 5, 3), (0, 7, 3), (1, 7, 3)):
        texts[c, place[word]] += n
    p, q = texts + 1.0, texts.sum(axis=0, keepdims=True) - texts + 1.0  # alpha 1: this class, the others
    expected = (np.log(p / p.sum(axis=1, keepdims=True)) - np.log(q / q.sum(axis=1, keepdims=True))).T
    np.testing.assert_allclose(ratio[:-1], expected, rtol=1e-5, atol=1e-6)
    assert ratio[place[3], 0] > 0 > ratio[place[3], 1] and ratio[place[5], 1] > 0 > ratio[place[5], 0]


def _classifier(**kw):
    import paddle

    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    paddle.seed(0)
    model = GRUClassifier(100, ModelConfig(embedding_size=8, hidden_size=6, num_layers=1, dropout=0.0, **kw))
    if model.ngrams is not None:  # every n-gram of words 0..11 known (as _texts writes them), random weights
        rng = np.random.default_rng(1)
        known = {_hash([a]) for a in range(100)} | {_hash([a, b]) for a in range(12) for b in range(12)}
        model.ngrams.set_vocabulary(np.array(sorted(known)[: model.ngrams.features], dtype=np.int64))
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
    model = _classifier(nb_features=2000, nb_order=2, nb_join=join, **extra)
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


def test_the_model_in_words_says_when_gru_words_is_the_whole_vocabulary():
    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import describe

    assert "(30 most frequent words)" in describe(ModelConfig(gru_words=30), vocab_size=100)
    assert "(the whole vocabulary)" in describe(ModelConfig(gru_words=100000), vocab_size=41)


def test_the_gru_reads_only_its_words_while_the_ngram_model_reads_every_word():
    import paddle

    model = _classifier(gru_words=10, nb_features=200, nb_order=1)
    model.eval()
    assert model.embedding.weight.shape[0] == 12  # 10 words, <unk>, <pad>
    ids = np.array([[1, 2, 40, 3, PAD, PAD], [4, 60, 61, 5, 6, PAD]], dtype=np.int64)
    rare = ids.copy()
    rare[rare == 40], rare[rare == 60] = 97, 98  # other words beyond gru_words, and <unk> itself
    n = paddle.to_tensor(np.array([4, 5]))
    a, b = model(paddle.to_tensor(ids), n), model(paddle.to_tensor(rare), n)
    own = np.array([[1, 2, 10, 3, 11, 11], [4, 10, 10, 5, 6, 11]], dtype=np.int64)  # the GRU's ids: <unk> 10, <pad> 11
    np.testing.assert_allclose((a - model.ngrams(paddle.to_tensor(ids), n)).numpy(),
                               model._gru_logits(paddle.to_tensor(own), n).numpy(), rtol=1e-5, atol=1e-6)
    # the GRU's share (all but the n-gram model's logits) is the same: every rare word is its <unk>
    np.testing.assert_allclose((a - model.ngrams(paddle.to_tensor(ids), n)).numpy(),
                               (b - model.ngrams(paddle.to_tensor(rare), n)).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.numpy(), b.numpy(), atol=1e-4)  # the n-gram model told them apart


@pytest.mark.parametrize("bad, message", [
    (["model.nb_order=2"], "model.nb_order=2 has no effect with model.nb_features=0"),
    (["model.nb_features=64", "model.nb_weight=0.3"], "model.nb_weight=0.3 has no effect with model.nb_join=sum"),
    (["model.nb_features=64", "model.use_lengths=false", "data.bucket_size=0"], "needs model.use_lengths=true"),
    (["model.nb_features=64", "model.nb_join=prefit", "model.nb_c=1e-45"], "model.nb_c=1e-45"),  # a NaN fit once
    (["model.nb_features=64", "model.nb_join=prefit", "model.nb_c=inf"], "model.nb_c=inf"),
])
def test_ngram_model_knobs_that_cannot_work_are_refused(tiny_cfg, bad, message):
    from gru_exp.config.validation import validate
    from gru_exp.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate(tiny_cfg(*bad))


def test_prefit_is_the_regularised_logistic_regression_and_stays_fixed_while_the_gru_trains(tiny_cfg):
    import paddle
    import paddle.nn.functional as F

    from gru_exp.config.values import run_config
    from gru_exp.data.splits import Split
    from gru_exp.train.model import GRUClassifier
    from gru_exp.train.ngrams import fit_ratios, fit_vocabulary, fit_weights, training_ngrams
    from gru_exp.train.optim import make_optimizer

    rng = np.random.default_rng(3)
    ids, lengths = _texts(rng, 40, 7)
    labels = (ids[:, 0] % 2).astype(np.int64)  # learnable from the first word
    tokens = np.concatenate([row[:n] for row, n in zip(ids, lengths)]).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    train = Split(tokens, starts, lengths.astype(np.int64), labels, PAD, None)
    rc = run_config(tiny_cfg("model.nb_features=1009", "model.nb_join=prefit", "model.nb_c=0.5"))
    model = GRUClassifier(100, rc.model, num_classes=2)
    fit_vocabulary(model.ngrams, train)
    read = training_ngrams(model.ngrams, train)
    model.ngrams.set_ratios(fit_ratios(model.ngrams, read, 2))
    fit_weights(model.ngrams, read, 0.5)
    w, b = model.ngrams.weight, model.ngrams.bias
    w.stop_gradient = b.stop_gradient = False  # the objective's gradient at the fit: zero
    scaled = paddle.gather(w, paddle.to_tensor(read.rows)) * paddle.gather(model.ngrams.ratio, paddle.to_tensor(read.rows))
    logits = paddle.geometric.segment_sum(scaled, paddle.to_tensor(read.texts)) + b
    loss = F.cross_entropy(logits, paddle.to_tensor(read.labels)) + (w * w).sum() / (0.5 * 40)
    loss.backward()
    assert float(w.grad.abs().max()) < 1e-4 and float(b.grad.abs().max()) < 1e-4
    assert float(w.abs().max()) > 0.05  # and it learned something
    w.stop_gradient = b.stop_gradient = True
    optimizer = make_optimizer(rc, model)
    assert not any(p is w or p is b for p in optimizer._parameter_list)  # the GRU's optimizer never moves them


def test_a_resumed_prefit_run_keeps_its_fitted_ngram_model_and_fits_nothing_again(learnable_archive, tmp_path):
    import subprocess
    import sys

    import paddle

    from conftest import tiny_overrides

    args = tiny_overrides(learnable_archive, tmp_path, "data.cutoff=0", "model.gru_words=10", "model.nb_features=40",
                          "model.nb_join=prefit", "logger.visualdl=false")
    first = subprocess.run([sys.executable, "-m", "gru_exp.train", *args, "trainer.epochs=1"], capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "N-gram model fitted" in first.stderr
    run = first.stdout.split()[-1]
    again = subprocess.run([sys.executable, "-m", "gru_exp.train", *args, "trainer.epochs=2", f"trainer.resume={run}"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "N-gram model" not in again.stderr  # neither the vocabulary nor the fit again: the checkpoint holds them
    before = paddle.load(f"{run}/checkpoints/last.pdparams")["model"]
    after = paddle.load(f"{again.stdout.split()[-1]}/checkpoints/last.pdparams")["model"]
    for key in ("ngrams.weight", "ngrams.bias", "ngrams.ratio", "ngrams.keys"):
        np.testing.assert_array_equal(np.asarray(before[key]), np.asarray(after[key]))  # fixed while the GRU trained
    assert np.abs(np.asarray(after["ngrams.weight"])).max() > 0
    assert not np.array_equal(np.asarray(before["classifier.weight"]), np.asarray(after["classifier.weight"]))


def test_prefit_gives_a_text_that_reads_no_known_ngram_its_bias():
    from gru_exp.train.ngrams import NgramModel, TrainingNgrams, fit_weights

    model = NgramModel(4, 1, 2)
    model.set_ratios(np.array([[1.0, -1.0], [-1.0, 1.0], [0.5, -0.5], [0, 0], [0, 0]], dtype=np.float32))
    # texts 0 and 1 read features; text 2, the last, reads none (it crashed the fit once: no logit row)
    read = TrainingNgrams(np.array([0, 2, 1]), np.array([0, 0, 1]), np.array([0, 1, 1]))
    fit_weights(model, read, 1.0)
    assert np.isfinite(model.weight.numpy()).all() and abs(model.weight.numpy()).max() > 0
