"""The kernel-floor knobs (issue #28): ``model.fast_ops`` computes the same model through cheaper CPU
ops, ``trainer.bag_update=rows`` updates only the bag rows a batch read (lazy Adam/AdamW). Each
test fails when its knob's arithmetic is wrong, not only when it is missing."""

from __future__ import annotations

import numpy as np
import pytest

from gru_exp.train.run import run_training


def _pair(buckets: int, weight_decay: float, **model):
    """Two identically initialised models with an n-gram bag and their optimizers: bag_update dense and rows
    (mean pooling: attention's last bias has a zero gradient up to rounding, which Adam scales up to steps)."""
    import paddle

    from gru_exp.config.compose import compose_config
    from gru_exp.config.values import run_config
    from gru_exp.train.model import GRUClassifier
    from gru_exp.train.optim import make_optimizer

    made = []
    for update in ("dense", "rows"):
        rc = run_config(compose_config([
            "model.embedding_size=8", "model.hidden_size=6", "model.num_layers=1", "model.dropout=0.0",
            "model.pooling=mean", f"model.bigram_buckets={buckets}", "model.bigram_size=4",
            f"trainer.weight_decay={weight_decay}", "trainer.lr=0.01", f"trainer.bag_update={update}",
            *(f"model.{k}={v}" for k, v in model.items())]))
        paddle.seed(3)
        model_ = GRUClassifier(30, rc.model, num_classes=2, read_rows=update == "rows")
        model_.train()
        made.append((model_, make_optimizer(rc, model_)))
    return made


def _steps(model, optimizer, batches) -> None:
    import paddle
    import paddle.nn.functional as F

    for ids, lengths, labels in batches:
        logits = model(paddle.to_tensor(ids), paddle.to_tensor(lengths))
        F.cross_entropy(logits, paddle.to_tensor(labels)).backward()
        optimizer.step()
        optimizer.clear_grad()


def _batches(n: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 29, (8, width)), np.full(8, width), rng.integers(0, 2, 8)) for _ in range(n)]


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("order", [2, 3])
def test_rows_update_is_adams_arithmetic_when_every_row_is_read(weight_decay, order):
    """With 3 buckets every batch reads every row, so the lazy update must equal paddle's dense
    Adam/AdamW on the whole model: a wrong moment, bias correction or decay shows up here."""
    (dense, dense_opt), (rows, rows_opt) = _pair(3, weight_decay, ngram_order=order)
    batches = _batches(6, 12)
    _steps(dense, dense_opt, batches)
    _steps(rows, rows_opt, batches)
    for (name, a), b in zip(dense.state_dict().items(), rows.state_dict().values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-6, err_msg=name)
    assert not np.allclose(dense.bigrams.weight.numpy(), _pair(3, weight_decay)[0][0].bigrams.weight.numpy())  # it trained


def test_rows_update_leaves_the_rows_a_batch_did_not_read():
    """Lazy: a row no batch read keeps its weights (no momentum, no decay); the rows read move."""
    import paddle

    (_, _), (model, optimizer) = _pair(1000, 0.05)
    before = model.bigrams.weight.numpy().copy()
    batches = _batches(3, 6)
    read = set()
    for ids, _, _ in batches:
        hashed = (ids[:, :-1].astype(np.int64) * 1_000_003 + ids[:, 1:]) % 1000
        read |= set(hashed.ravel().tolist())
    _steps(model, optimizer, batches)
    after = model.bigrams.weight.numpy()
    unread = np.array(sorted(set(range(1000)) - read))
    moved = np.array(sorted(read))
    np.testing.assert_array_equal(after[unread], before[unread])
    assert (np.abs(after[moved] - before[moved]).max(axis=1) > 0).all()
    assert model.bigrams.weight.grad is None  # no dense gradient of the table was built
    assert isinstance(optimizer.state_dict()["bag_rows.step"], int) and paddle.is_tensor(
        optimizer.state_dict()["bag_rows.moment1"])


@pytest.mark.parametrize("settings", [dict(pooling="attention"), dict(pooling="mean"), dict(gru=False),
                                      dict(pooling="last", bigram_buckets=64, ngram_order=3)])
def test_fast_ops_compute_the_same_model(settings):
    """Out of training (no dropout) fast_ops is the same function: the same logits from the same weights."""
    import paddle

    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    settings = {"bigram_buckets": 64, **settings}
    models = []
    for fast in (False, True):
        paddle.seed(0)
        model = GRUClassifier(50, ModelConfig(embedding_size=8, hidden_size=6, num_layers=1, dropout=0.3,
                                              fast_ops=fast, **settings))
        model.eval()
        models.append(model)
    rng = np.random.default_rng(0)
    ids, lengths = paddle.to_tensor(rng.integers(0, 49, (5, 9))), paddle.to_tensor(np.array([9, 3, 5, 1, 7]))
    slow, fast = (m(ids, lengths).numpy() for m in models)
    np.testing.assert_allclose(slow, fast, rtol=1e-5, atol=1e-6)


def test_fast_dropout_masks_keep_the_distribution_and_follow_paddles_seed():
    import paddle

    from gru_exp.train.model import dropout_mask

    paddle.seed(5)
    a = dropout_mask([64, 50, 32], 0.3)
    np.testing.assert_allclose(np.unique(a), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((a > 0).mean() - 0.7) < 0.01
    words = dropout_mask([64, 50, 32], 0.3, word_p=0.5)
    dropped_tokens = (words == 0).all(axis=-1).mean()  # 0.5 of tokens, plus the few whose 32 elements all fell
    assert abs(dropped_tokens - 0.5) < 0.03
    assert abs((words > 0).mean() - 0.35) < 0.01
    np.testing.assert_allclose(np.unique(words), [0.0, 1 / 0.35], rtol=1e-6)
    paddle.seed(5)
    np.testing.assert_array_equal(dropout_mask([64, 50, 32], 0.3), a)  # the seed fixes the masks
    assert not np.array_equal(dropout_mask([64, 50, 32], 0.3), a)  # and the generator moves on


@pytest.mark.parametrize("p, word_p", [(0.4, 0.0), (0.3, 0.5), (0.0, 0.5)])
def test_fast_ops_dropout_in_training_drops_elements_and_whole_tokens(p, word_p):
    """What reaches the GRU in training: about p of the elements zero, about word_p of the tokens
    wholly zero, the rest scaled; without fast_ops the same rates from paddle's dropout."""
    import paddle

    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    seen = {}
    for fast in (True, False):
        paddle.seed(0)
        model = GRUClassifier(50, ModelConfig(embedding_size=32, hidden_size=4, num_layers=1, dropout=p,
                                              word_dropout=word_p, fast_ops=fast))
        model.train()
        model.gru.register_forward_pre_hook(lambda layer, inputs, fast=fast: seen.__setitem__(fast, inputs[0].numpy()))
        ids = paddle.to_tensor(np.random.default_rng(0).integers(0, 49, (64, 40)))
        model(ids, paddle.to_tensor(np.full(64, 40)))
        embedded = model.embedding(ids).numpy()
        x = seen[fast]
        kept = x != 0
        assert abs(kept.mean() - (1 - p) * (1 - word_p)) < 0.02, fast
        tokens_dropped = (~kept).all(axis=-1).mean()
        assert abs(tokens_dropped - (word_p + (1 - word_p) * p ** 32)) < 0.03, fast
        np.testing.assert_allclose(x[kept], embedded[kept] / ((1 - p) * (1 - word_p)), rtol=1e-5)


FAST = ("model.fast_ops=true", "trainer.bag_update=rows", "model.bigram_buckets=512", "model.pooling=attention",
        "model.word_dropout=0.2", "trainer.weight_decay=0.01")


def test_fast_knobs_resume_to_the_uninterrupted_result_and_train(tiny_cfg, tmp_path):
    """The masks' seed comes from paddle's generator and the row moments are in last.pdparams, so a
    resumed run repeats the uninterrupted one; the same seed twice gives the same metrics."""
    full = run_training(tiny_cfg("trainer.epochs=3", *FAST), tmp_path / "full")
    run_training(tiny_cfg("trainer.epochs=2", *FAST), tmp_path / "part")
    resumed = run_training(tiny_cfg("trainer.epochs=3", *FAST, f"trainer.resume={tmp_path / 'part'}"),
                           tmp_path / "resumed")
    for key in ("train_loss", "train_acc", "eval_loss", "eval_acc"):
        assert resumed.series[key] == full.series[key], key
    assert resumed.test == full.test
    again = run_training(tiny_cfg("trainer.epochs=3", *FAST), tmp_path / "again")
    assert again.series["train_loss"] == full.series["train_loss"]
    for off, name in ((("model.fast_ops=false",), "dense"), (("trainer.bag_update=dense",), "no_fast")):
        other = run_training(tiny_cfg("trainer.epochs=3", *FAST, *off), tmp_path / name)
        assert other.series["train_loss"] != full.series["train_loss"], off  # each knob is in effect


@pytest.mark.parametrize("extra, says", [
    ((), "there is no n-gram bag (model.bigram_buckets=0)"),
    (("model.bigram_buckets=64", "trainer.grad_clip=1.0"), "trainer.grad_clip=1.0 clips by the global norm"),
    (("model.bigram_buckets=64", "trainer.amp=true"), "trainer.amp=true scales the loss for the dense optimizer only"),
])
def test_rows_update_without_a_bag_or_with_clipping_is_refused_before_anything_is_written(tiny_cfg, tmp_path, extra,
                                                                                          says):
    from gru_exp.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.bag_update=rows cannot be used here") as info:
        run_training(tiny_cfg("trainer.bag_update=rows", *extra), tmp_path / "run")
    assert says in str(info.value)
    assert not (tmp_path / "run").exists()


def test_the_bags_gradient_norm_is_recorded_with_rows_updates_too():
    """VisualDL's grad_norm/bigrams: the rows read carry the whole gradient, so the norm is the dense one."""
    import paddle
    import paddle.nn.functional as F

    from gru_exp.train.visualdl_extras import gradient_norms

    norms = []
    for model, _ in _pair(1000, 0.0):
        ids, lengths, labels = _batches(1, 10)[0]
        F.cross_entropy(model(paddle.to_tensor(ids), paddle.to_tensor(lengths)), paddle.to_tensor(labels)).backward()
        norms.append(gradient_norms(model))
    assert norms[0].keys() == norms[1].keys() and "bigrams" in norms[1]
    for group in norms[0]:
        assert norms[1][group] == pytest.approx(norms[0][group], rel=1e-5), group
