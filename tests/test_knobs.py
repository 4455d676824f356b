"""The model and training knobs of the 'beyond 90%' search: pooling, word dropout, weight decay,
learning-rate schedules, whole reviews (seq_len=null), small vocabulary cutoffs, the bag of hashed
bigrams and its trigrams (model.ngram_order). Each test fails without its knob."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gru_exp.data.imdb import parse_archive
from gru_exp.data.splits import make_splits
from gru_exp.train.loop import lr_at
from gru_exp.train.run import run_training


def _model(pooling: str, direction: str = "bidirectional", **kw):
    import paddle

    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    paddle.seed(0)
    model = GRUClassifier(50, ModelConfig(embedding_size=8, hidden_size=6, num_layers=1, direction=direction,
                                          dropout=0.0, pooling=pooling, **kw))
    model.eval()
    return model


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_pooling_ignores_padding(pooling, direction):
    """Appending padding (with true lengths) does not change any review's output."""
    import paddle

    model = _model(pooling, direction)
    rng = np.random.default_rng(0)
    lengths = np.array([5, 2, 7])
    ids = np.full((3, 7), 49, dtype=np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(0, 48, n)
    longer = np.concatenate([ids, np.full((3, 9), 49, dtype=np.int64)], axis=1)  # 9 more padding steps
    a = model(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    b = model(paddle.to_tensor(longer), paddle.to_tensor(lengths)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the pooling is real: without lengths the padding is read and the output moves
    c = model(paddle.to_tensor(longer), None).numpy()
    assert not np.allclose(a, c, atol=1e-4)


def test_poolings_differ():
    import paddle

    ids = paddle.to_tensor(np.arange(12, dtype=np.int64).reshape(2, 6))
    lengths = paddle.to_tensor(np.array([6, 4]))
    outs = {p: _model(p)(ids, lengths).numpy() for p in ("last", "mean", "max", "attention")}
    assert len({o.round(5).tobytes() for o in outs.values()}) == 4


def test_max_pooling_is_the_max_over_real_steps():
    import paddle

    model = _model("max", "forward")
    ids = paddle.to_tensor(np.array([[1, 2, 3, 49, 49]], dtype=np.int64))
    outputs, _ = model.gru(model.embedding(ids), sequence_length=paddle.to_tensor(np.array([3])))
    expected = outputs.numpy()[0, :3].max(axis=0)
    pooled = model._pool(outputs, paddle.to_tensor(np.array([3]))).numpy()[0]
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)


def test_word_dropout_drops_whole_tokens_in_training_only():
    import paddle

    model = _model("mean", "forward", word_dropout=0.5)
    ids = paddle.to_tensor(np.arange(40, dtype=np.int64).reshape(2, 20))
    lengths = paddle.to_tensor(np.array([20, 20]))
    assert np.allclose(model(ids, lengths).numpy(), model(ids, lengths).numpy())  # eval: deterministic
    model.train()
    paddle.seed(1)
    a = model(ids, lengths).numpy()
    paddle.seed(2)
    b = model(ids, lengths).numpy()
    assert not np.allclose(a, b)


def test_the_bigram_bag_averages_the_hashed_rows_of_real_pairs_only():
    """model.bigram_buckets: each review's feature is the mean of the table rows of its real
    neighbouring pairs, hashed as documented; padding pairs never count, so appending padding
    changes nothing, and the bag reaches the classifier (other bigrams, other logits)."""
    import paddle

    from gru_exp.train.model import BIGRAM_HASH

    model = _model("attention", bigram_buckets=37, bigram_size=5)
    assert model.classifier.weight.shape[0] == 2 * 6 + 5  # the bag joins the pooled GRU features
    table = model.bigrams.weight.numpy()
    ids = np.array([[3, 9, 4, 9, 49, 49], [7, 49, 49, 49, 49, 49], [1, 2, 3, 4, 5, 6]], dtype=np.int64)
    lengths = np.array([4, 1, 6])
    bag = model._bigram_bag(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    for row, n in zip(range(3), lengths):
        hashed = [(a * BIGRAM_HASH + b) % 37 for a, b in zip(ids[row, : n - 1], ids[row, 1:n])]
        expected = table[hashed].mean(axis=0) if hashed else np.zeros(5)
        np.testing.assert_allclose(bag[row], expected, rtol=1e-5, atol=1e-7)
    longer = np.concatenate([ids, np.full((3, 4), 49, dtype=np.int64)], axis=1)
    a = model(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    np.testing.assert_allclose(model(paddle.to_tensor(longer), paddle.to_tensor(lengths)).numpy(), a, rtol=1e-5,
                               atol=1e-6)
    swapped = ids.copy()
    swapped[0, :4] = [9, 3, 9, 4]  # the same words in another order: other bigrams
    with paddle.no_grad():
        model.embedding.weight.set_value(paddle.zeros_like(model.embedding.weight))  # the GRU cannot see the words
    b = model(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    c = model(paddle.to_tensor(swapped), paddle.to_tensor(lengths)).numpy()
    assert not np.allclose(b[0], c[0], atol=1e-5) and np.allclose(b[1:], c[1:])
    one_token = model._bigram_bag(paddle.to_tensor(ids[:, :1]), paddle.to_tensor(np.ones(3, dtype=np.int64)))
    np.testing.assert_array_equal(one_token.numpy(), np.zeros((3, 5)))  # a batch of one-token reviews: no pair
    assert not hasattr(_model("attention"), "bigrams")  # 0 buckets (the default): no table, as before the knob


def test_ngram_order_3_adds_the_hashed_rows_of_real_triples_to_the_bag():
    """model.ngram_order=3: the bag is the mean of the rows of a review's real pairs and real
    triples (triple (a, b, c) -> ((a, b)'s row * BIGRAM_HASH + c) mod buckets); padding triples never
    count; order 2 (the default) keeps the pairs-only bag of the same weights."""
    import paddle

    from gru_exp.train.model import BIGRAM_HASH

    model = _model("attention", bigram_buckets=37, bigram_size=5, ngram_order=3)
    pairs_only = _model("attention", bigram_buckets=37, bigram_size=5)  # paddle.seed(0): the same table
    table = model.bigrams.weight.numpy()
    np.testing.assert_array_equal(pairs_only.bigrams.weight.numpy(), table)
    ids = np.array([[3, 9, 4, 9, 49, 49], [7, 8, 49, 49, 49, 49], [1, 2, 3, 4, 5, 6], [5, 49, 49, 49, 49, 49]])
    lengths = np.array([4, 2, 6, 1])
    bag = model._bigram_bag(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    for row, n in enumerate(lengths):
        pair = [(a * BIGRAM_HASH + b) % 37 for a, b in zip(ids[row, : n - 1], ids[row, 1:n])]
        triple = [(p * BIGRAM_HASH + c) % 37 for p, c in zip(pair[:-1], ids[row, 2:n])]
        expected = table[pair + triple].mean(axis=0) if pair else np.zeros(5)
        np.testing.assert_allclose(bag[row], expected, rtol=1e-5, atol=1e-7)
    two = pairs_only._bigram_bag(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    assert not np.allclose(bag[[0, 2]], two[[0, 2]])  # reviews with a triple: another bag than pairs only
    np.testing.assert_allclose(bag[[1, 3]], two[[1, 3]], rtol=1e-6)  # no triple: the pairs' bag
    longer = np.concatenate([ids, np.full((4, 3), 49)], axis=1)
    a = model(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()
    np.testing.assert_allclose(model(paddle.to_tensor(longer), paddle.to_tensor(lengths)).numpy(), a, rtol=1e-5,
                               atol=1e-6)  # padding appended changes nothing
    short = model._bigram_bag(paddle.to_tensor(ids[:, :2]), paddle.to_tensor(np.minimum(lengths, 2)))
    np.testing.assert_allclose(short.numpy(), pairs_only._bigram_bag(paddle.to_tensor(ids[:, :2]),
                               paddle.to_tensor(np.minimum(lengths, 2))).numpy())  # a 2-token batch: pairs only


def test_lr_schedules():
    assert lr_at(0, 100, 1.0, "constant", 0.0) == 1.0 and lr_at(99, 100, 1.0, "constant", 0.0) == 1.0
    assert lr_at(0, 100, 1.0, "cosine", 0.0) == 1.0
    assert lr_at(50, 100, 1.0, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, "cosine", 0.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(75, 100, 1.0, "linear", 0.0) == pytest.approx(0.25)
    # 10 warm-up steps from lr/10 to lr, then the decay over the remaining 90
    assert [lr_at(s, 100, 1.0, "linear", 0.1) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_at(10, 100, 1.0, "linear", 0.1) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, "linear", 0.1) == pytest.approx(0.5)


def _lr_log(tiny_cfg, tmp_path, *extra):
    from gru_exp.train.loop import Callback

    seen = []

    class Spy(Callback):
        def on_step_end(self, state, loss):
            seen.append(state.optimizer.get_lr())

    run_training(tiny_cfg("logger.visualdl=false", "logger.baseline=false", *extra), tmp_path / "r", callbacks=[Spy()])
    return seen


def test_schedule_reaches_the_optimizer(tiny_cfg, tmp_path):
    constant = _lr_log(tiny_cfg, tmp_path / "a", "trainer.lr=0.01")
    cosine = _lr_log(tiny_cfg, tmp_path / "b", "trainer.lr=0.01", "trainer.lr_schedule=cosine", "trainer.warmup=0.25")
    assert set(constant) == {0.01}
    assert len(cosine) == len(constant) and cosine[0] < 0.01 and max(cosine) == pytest.approx(0.01)
    assert cosine[-1] < 0.002 and cosine == sorted(cosine[:cosine.index(max(cosine)) + 1]) + cosine[cosine.index(max(cosine)) + 1:]


def test_weight_decay_uses_adamw_and_changes_the_weights(tiny_cfg, tmp_path):
    import paddle

    base = run_training(tiny_cfg("logger.visualdl=false", "logger.baseline=false"), tmp_path / "a")
    decayed = run_training(tiny_cfg("logger.visualdl=false", "logger.baseline=false", "trainer.weight_decay=0.5"),
                           tmp_path / "b")
    w0 = paddle.load(str(base.run_dir / "checkpoints/last.pdparams"))["model"]["embedding.weight"].numpy()
    w1 = paddle.load(str(decayed.run_dir / "checkpoints/last.pdparams"))["model"]["embedding.weight"].numpy()
    assert np.linalg.norm(w1) < np.linalg.norm(w0)  # decay pulls the weights toward 0
    record = json.loads((decayed.run_dir / "metrics.json").read_text())
    assert record["config"]["trainer"]["weight_decay"] == 0.5


def test_whole_reviews_and_small_cutoff(tiny_archive):
    from gru_exp.config.compose import compose_config
    from gru_exp.config.validation import validate

    validate(compose_config(["data.cutoff=0", "data.seq_len=null"]))  # both were refused before
    arrays = parse_archive(tiny_archive, 0)  # every word that occurs at all
    whole = make_splits(arrays, seq_len=None, val_size=0, train_limit=None, test_limit=None, seed=0)
    cut = make_splits(arrays, seq_len=5, val_size=0, train_limit=None, test_limit=None, seed=0)
    full_lengths = np.diff(arrays.offsets["train"])
    np.testing.assert_array_equal(whole.train.lengths, np.maximum(full_lengths, 1))
    assert cut.train.lengths.max() == 5 and whole.train.lengths.max() == full_lengths.max() > 5
    # every token of every review is kept, in order
    assert arrays.docs("train")[3] == whole.train.dense(np.array([3]))[0, : full_lengths[3]].tolist()


def test_memory_follows_the_reviews_used(tiny_archive):
    """A subset never builds padded arrays for all reviews: the splits share the token array."""
    arrays = parse_archive(tiny_archive, 0)
    splits = make_splits(arrays, seq_len=4000, val_size=4, train_limit=8, test_limit=8, seed=0)
    assert splits.train.tokens is arrays.ids["train"]
    assert splits.train.starts.nbytes + splits.train.kept.nbytes <= 8 * 16


def test_whole_reviews_train(tiny_cfg, tmp_path):
    result = run_training(tiny_cfg("data.seq_len=null", "model.pooling=max", "model.word_dropout=0.1",
                                   "model.bigram_buckets=64", "model.bigram_size=3", "logger.visualdl=false", "logger.baseline=false"), tmp_path / "r")
    assert result.status == "completed" and math.isfinite(result.test["acc"])


def test_test_epoch_scores_the_best_or_the_last_epochs_weights(tiny_cfg, tmp_path):
    """trainer.test_epoch=last scores the last epoch's weights on test (a refit on every training
    review, no epoch chosen by any score); best (the default) the best eval epoch's. Each case uses
    the first seed whose best epoch is not its last (they differ by machine)."""
    from gru_exp.train.run import run_training

    def pair(*extra: str) -> dict:
        for seed in range(12):
            runs = {which: run_training(tiny_cfg("logger.visualdl=false", "logger.baseline=false", "trainer.epochs=4",
                                                 f"trainer.seed={seed}", f"trainer.test_epoch={which}", *extra),
                                        tmp_path / f"{seed}{which}{len(extra)}") for which in ("best", "last")}
            accs = runs["best"].series["eval_acc"]
            if max(accs) > accs[-1]:
                return runs
        pytest.fail("every seed's last epoch was its best")

    refit = run_training(tiny_cfg("logger.visualdl=false", "logger.baseline=false", "trainer.epochs=4",
                                  "trainer.test_epoch=last", "data.val_size=0"), tmp_path / "refit")
    assert refit.test_epoch == 4 and refit.test["acc"] == refit.series["eval_acc"][-1]  # no epoch chosen by test
    held = pair()
    assert held["best"].test_epoch == held["best"].best_epoch < 4 and held["last"].test_epoch == 4
    assert held["best"].test["acc"] != held["last"].test["acc"] or held["best"].test["loss"] != held["last"].test["loss"]


def test_the_amp_path_gives_the_callbacks_unscaled_gradients(tiny_cfg, tmp_path, monkeypatch):
    """trainer.amp: the loss-scaling path calls on_backward too (the gradient-norm histograms used to
    be dropped silently), after unscale_. paddle 3.3.1 runs AMP on GPUs only (its autocast says it
    "makes no effect" on a CPU, where its GradScaler does not scale either, and a run refuses
    trainer.amp=true there), so the device check is lifted here and the loop's AMP path runs on the
    CPU: the callbacks' wiring is tested, the unscaling itself needs a GPU."""
    from gru_exp.train import device
    from gru_exp.train.loop import Callback

    monkeypatch.setattr(device, "select_device", lambda requested: "cpu")  # the only stand-in: no GPU here
    calls, grads = [], []

    class Spy(Callback):
        def on_backward(self, state):
            calls.append(state.step)
            grads.append(max(float(p.grad.abs().max()) for p in state.model.parameters() if p.grad is not None))

    prepare = device.prepare
    monkeypatch.setattr(device, "prepare", lambda trainer: (setattr(trainer, "amp", False), prepare(trainer),
                                                            setattr(trainer, "amp", True))[1])
    record = run_training(tiny_cfg("logger.visualdl=false", "logger.baseline=false", "trainer.amp=true"),
                          tmp_path / "amp", callbacks=[Spy()])
    assert record.status == "completed" and len(calls) == record.series["epoch"][-1] * (64 // 16)
    assert all(g > 0 for g in grads), grads  # gradients present when the callbacks read them
