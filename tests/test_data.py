"""IMDB data: paddle-identical tokens and vocabulary, the cache, errors, splits and batches."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from gru_exp.data.batches import batch_order, iter_batches
from gru_exp.data.imdb import load_imdb, parse_archive, resolve_archive
from gru_exp.data.splits import make_splits, padded, stratified_split
from gru_exp.errors import DataError


@pytest.mark.parametrize("cutoff", [0, 3])
def test_tokens_and_vocabulary_equal_paddles_imdb(tiny_archive, cutoff):
    from paddle.text.datasets import Imdb

    arrays = parse_archive(tiny_archive, cutoff)
    for mode in ("train", "test"):
        ref = Imdb(data_file=str(tiny_archive), mode=mode, cutoff=cutoff, download=False)
        assert arrays.docs(mode) == ref.docs
        assert arrays.labels[mode].tolist() == ref.labels
    word_idx = {w: i for i, w in enumerate(arrays.words)}
    word_idx["<unk>"] = arrays.unk_id  # paddle keys words as bytes, but <unk> as str
    assert word_idx == ref.word_idx
    assert arrays.pad_id == len(ref.word_idx)  # the notebook's <pad> = len(word_dict)


def test_cache_miss_then_hit(tiny_archive, tmp_path, caplog):
    caplog.set_level("INFO", logger="gru_exp.data.imdb")
    first = load_imdb(tiny_archive, 2, tmp_path)
    assert "Parsing" in caplog.text
    caplog.clear()
    second = load_imdb(tiny_archive, 2, tmp_path)
    assert "loaded from cache" in caplog.text and "Parsing" not in caplog.text
    assert second.words == first.words
    for split in ("train", "test"):
        np.testing.assert_array_equal(second.ids[split], first.ids[split])
        np.testing.assert_array_equal(second.labels[split], first.labels[split])
    assert len(list(tmp_path.glob("*.npz"))) == 1
    load_imdb(tiny_archive, 3, tmp_path)  # another cutoff is another entry
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_the_imdb_cache_is_keyed_by_the_tokenizer_knobs(tiny_cfg, tiny_archive):
    """Runs sharing one cache folder with other tokenizer knobs (data.lowercase, data.tokenizer) each
    get the token ids of their own tokenizer, never another's cached entry (issue #29's mutation
    check: the entry's name once left the knobs out, and a cased run trained on lower-cased ids)."""
    from gru_exp.config.values import run_config
    from gru_exp.data.tokenize import chars, tokenize_cased
    from gru_exp.train.run import load_data

    lower = load_data(run_config(tiny_cfg("data.cutoff=0")), tiny_archive)  # cached first, as the default
    cased = load_data(run_config(tiny_cfg("data.cutoff=0", "data.lowercase=false")), tiny_archive)
    by_chars = load_data(run_config(tiny_cfg("data.cutoff=0", "data.tokenizer=chars")), tiny_archive)
    assert all(w == w.lower() for w in lower.words)
    assert cased.words == parse_archive(tiny_archive, 0, tokenize_cased).words  # capitals kept ("It's" -> b"Its")
    assert any(w != w.lower() for w in cased.words)
    assert by_chars.words == parse_archive(tiny_archive, 0, chars).words
    entries = sorted(p.name for p in Path(tiny_cfg().data.cache_dir).glob("*.npz"))  # the runs' one cache folder
    assert len(entries) == 3, entries


def test_corrupt_cache_entry_is_rebuilt_not_used(tiny_archive, tmp_path, caplog):
    good = load_imdb(tiny_archive, 2, tmp_path)
    npz = next(tmp_path.glob("*.npz"))
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the arrays
    npz.write_bytes(bytes(data))
    caplog.set_level("INFO", logger="gru_exp.data.imdb")
    again = load_imdb(tiny_archive, 2, tmp_path)
    assert "damaged" in caplog.text and "Parsing" in caplog.text
    np.testing.assert_array_equal(again.ids["train"], good.ids["train"])
    caplog.clear()
    load_imdb(tiny_archive, 2, tmp_path)
    assert "loaded from cache" in caplog.text  # the rebuilt entry is valid


def test_truncated_archive_is_a_clear_error(tiny_archive, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(tiny_archive.read_bytes()[: tiny_archive.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_archive(broken, 2)


def test_archive_without_imdb_layout_is_a_clear_error(tmp_path):
    other = tmp_path / "other.tar.gz"
    with gzip.open(other, "wb") as fh:
        fh.write(b"")  # a valid, empty gzip: not a tar
    with pytest.raises(DataError, match="data.path"):
        parse_archive(other, 2)


def test_missing_path_names_the_value_and_how_to_set_it(tmp_path):
    with pytest.raises(DataError, match=r"data.path='.*nope.tar.gz': no such file.*GRU_EXP_IMDB"):
        resolve_archive(str(tmp_path / "nope.tar.gz"))


def test_unreadable_path_is_rejected(tiny_archive, tmp_path, monkeypatch):
    import os

    locked = tmp_path / "locked.tar.gz"
    shutil.copy(tiny_archive, locked)
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the permission check see what a user would
        monkeypatch.setattr("gru_exp.data.imdb.os.access", lambda path, mode: False)
    with pytest.raises(DataError, match=r"data.path='.*locked.tar.gz' exists but is not readable"):
        resolve_archive(str(locked))


def test_no_path_and_no_network_says_how_to_set_it(monkeypatch):
    import paddle.dataset.common as common

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(common, "download", offline)
    with pytest.raises(DataError, match="GRU_EXP_IMDB"):
        resolve_archive(None)


def test_padding_truncates_and_pads_at_the_end(tiny_archive):
    arrays = parse_archive(tiny_archive, 0)
    split = padded(arrays, "train", 12)
    for row, doc, length in zip(split.ids, arrays.docs("train"), split.lengths):
        assert row[: len(doc[:12])].tolist() == doc[:12]
        assert (row[len(doc[:12]):] == arrays.pad_id).all()
        assert length == max(1, min(len(doc), 12))


def test_stratified_split_keeps_proportions_and_is_seeded():
    labels = np.array([0] * 300 + [1] * 100)
    picked, rest = stratified_split(labels, 40, np.random.default_rng(1))
    assert len(picked) == 40 and (labels[picked] == 1).sum() == 10
    assert len(np.intersect1d(picked, rest)) == 0 and len(picked) + len(rest) == 400
    again, _ = stratified_split(labels, 40, np.random.default_rng(1))
    np.testing.assert_array_equal(picked, again)


def test_splits_hold_out_validation_from_train(tiny_archive):
    arrays = parse_archive(tiny_archive, 0)
    splits = make_splits(arrays, seq_len=20, val_size=16, train_limit=30, test_limit=20, seed=3)
    assert (len(splits.train), len(splits.eval), len(splits.test), splits.eval_name) == (30, 16, 20, "val")
    assert (splits.eval.labels == 0).sum() == 8
    train_rows = {r.tobytes() for r in splits.train.ids}
    assert not any(r.tobytes() in train_rows for r in splits.eval.ids if (r != arrays.pad_id).sum() > 5)
    on_test = make_splits(arrays, seq_len=20, val_size=0, train_limit=None, test_limit=None, seed=3)
    assert on_test.eval_name == "test" and on_test.eval is on_test.test and len(on_test.train) == 80


def test_each_seed_draws_its_own_validation_split_and_the_same_seed_the_same(tiny_cfg, tiny_archive):
    """trainer.seed fixes the split (docs/results.md: "each seed also draws its own validation
    split"): the reviews a run holds out are the same for the same seed and others for another seed,
    stratified either way, and never in training."""
    from gru_exp.config.values import run_config
    from gru_exp.train.run import load_data

    def held_out(seed: int) -> tuple[list[int], list[int], int]:
        splits = load_data(run_config(tiny_cfg(f"trainer.seed={seed}")), tiny_archive)
        return sorted(splits.eval.starts.tolist()), sorted(splits.train.starts.tolist()), int(splits.eval.labels.sum())

    one, one_train, one_neg = held_out(1)
    assert held_out(1) == (one, one_train, one_neg)
    for seed in (2, 3):
        other, other_train, other_neg = held_out(seed)
        assert other != one and len(other) == len(one) == 16 and other_neg == one_neg == 8
        assert not set(other) & set(other_train)


def test_split_seed_keeps_the_texts_while_trainer_seed_changes_init_and_order(tiny_cfg, tiny_archive, tmp_path):
    """data.split_seed: the runs of an ensemble (several trainer.seed values) hold out the same
    reviews; unset, each trainer.seed draws its own split as before; the weights still differ."""
    from gru_exp.config.values import run_config
    from gru_exp.train.run import load_data, run_training

    def texts(*overrides: str):
        splits = load_data(run_config(tiny_cfg(*overrides)), tiny_archive)
        return [sorted(s.starts.tolist()) for s in (splits.train, splits.eval, splits.test)], splits

    one, _ = texts("trainer.seed=1", "data.split_seed=7")
    assert texts("trainer.seed=2", "data.split_seed=7")[0] == one
    assert texts("trainer.seed=7")[0] == one  # null: the trainer's seed, as before the knob
    assert texts("trainer.seed=1")[0] != one
    losses = [run_training(tiny_cfg(f"trainer.seed={seed}", "data.split_seed=7", "trainer.epochs=1"),
                           tmp_path / str(seed)).series["train_loss"] for seed in (1, 2)]
    assert losses[0] != losses[1]  # another init and order on the same texts


def test_bucketed_batches_cover_the_split_with_little_padding(tiny_archive):
    split = padded(parse_archive(tiny_archive, 0), "train", 60)
    rng = np.random.default_rng(0)
    batches = batch_order(split, 8, rng=rng, drop_last=False, bucket_size=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(split)))
    for batch in iter_batches(split, batches, trim=True):
        assert batch.ids.shape[1] == batch.lengths.max()
    plain = batch_order(split, 8, rng=np.random.default_rng(0), drop_last=True, bucket_size=0)
    assert all(len(b) == 8 for b in plain) and len(plain) == len(split) // 8


def test_id_block_hold_out_keeps_blocks_of_consecutive_review_ids_together():
    """data.val_split=id_blocks: IMDB numbers one movie's reviews consecutively, so the hold-out is
    whole blocks of 100 ids per class (only the last block drawn is cut): apart from that one block
    per class, no block has reviews on both sides. Stratified and seeded like the random split."""
    from gru_exp.data.splits import ID_BLOCK, id_block_split, stratified_split

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [1200, 800])
    review_ids = np.concatenate([rng.permutation(1200), rng.permutation(800)])  # file order is not id order
    val, train = id_block_split(labels, review_ids, 500, np.random.default_rng([7, 0]))
    assert len(val) == 500 and sorted(np.concatenate([val, train]).tolist()) == list(range(2000))
    assert np.bincount(labels[val]).tolist() == [300, 200]
    for c in (0, 1):
        val_blocks = {int(i) // ID_BLOCK for i in review_ids[val][labels[val] == c]}
        train_blocks = {int(i) // ID_BLOCK for i in review_ids[train][labels[train] == c]}
        assert len(val_blocks & train_blocks) <= 1  # the last block drawn, cut in id order
    again, _ = id_block_split(labels, review_ids, 500, np.random.default_rng([7, 0]))
    assert again.tolist() == val.tolist()
    scattered, _ = stratified_split(labels, 500, np.random.default_rng([7, 0]))
    shared = {int(i) // ID_BLOCK for i in review_ids[scattered]} & {int(i) // ID_BLOCK for i in review_ids[train]}
    assert len(shared) > 2  # the random split scatters over the blocks: what id_blocks avoids


def test_the_archive_keeps_review_ids_and_id_blocks_reach_the_run(tiny_cfg, tmp_path):
    from gru_exp.data.imdb import load_imdb
    from gru_exp.data.imdb import resolve_archive
    from gru_exp.train.run import load_data

    cfg = tiny_cfg("data.val_split=id_blocks")
    arrays = load_imdb(resolve_archive(cfg.data.path), cfg.data.cutoff, tmp_path / "cache")
    assert sorted(arrays.review_ids["train"].tolist()) == sorted(list(range(40)) * 2)  # <id>_<rating>.txt
    assert load_imdb(resolve_archive(cfg.data.path), cfg.data.cutoff, tmp_path / "cache").review_ids["test"].tolist() \
        == arrays.review_ids["test"].tolist()  # the same from the cache
    blocks = load_data(cfg, resolve_archive(cfg.data.path))
    plain = load_data(tiny_cfg(), resolve_archive(cfg.data.path))
    assert len(blocks.eval) == len(plain.eval) == 16 and blocks.eval_name == "val"
    # tiny archives number 40 reviews a class, one block: the hold-out is each class's 8 lowest ids
    def held_ids(split):
        return arrays.review_ids["train"][np.searchsorted(arrays.offsets["train"], split.starts)]

    assert sorted(held_ids(blocks.eval).tolist()) == sorted(list(range(8)) * 2)
    assert sorted(held_ids(plain.eval).tolist()) != sorted(list(range(8)) * 2)
    assert blocks.eval.labels.sum() == plain.eval.labels.sum() == 8


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_ragged_take_gathers_the_texts_asked_in_order_whatever_the_chunk(chunk):
    from gru_exp.data.splits import ragged_take

    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(0, 6, size=int(rng.integers(1, 40)))  # empty texts included
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = rng.integers(0, 100, size=int(offsets[-1])).astype(np.int32)
        index = rng.permutation(len(lengths))[: int(rng.integers(0, len(lengths) + 1))]
        taken, out = ragged_take(ids, offsets, index, chunk=chunk)
        texts = [ids[offsets[i]:offsets[i + 1]] for i in index]
        assert taken.dtype == np.int32 and out.dtype == np.int64
        assert [taken[out[k]:out[k + 1]].tolist() for k in range(len(index))] == [t.tolist() for t in texts]
        assert out[0] == 0 and out[-1] == len(taken) == sum(len(t) for t in texts)


def test_id_blocks_over_several_blocks_end_to_end(tmp_path):
    """A training from the command line with data.val_split=id_blocks on an archive of 350 reviews
    per class (ids 0-349: blocks 0-3 of 100): the run's validation set, rebuilt from its own recorded
    config, holds whole blocks of each class but the last one drawn, more than one block per class,
    and as many reviews as the run says it evaluated."""
    import json
    import subprocess
    import sys

    from conftest import REPO, tiny_overrides
    from synthetic_imdb import make_imdb_archive

    from gru_exp.config.compose import compose_config
    from gru_exp.data.splits import ID_BLOCK
    from gru_exp.train.run import load_data

    archive = make_imdb_archive(tmp_path / "imdb.tar.gz", n_per_class=350, mean_len=8)
    overrides = tiny_overrides(archive, tmp_path / "out", "data.val_split=id_blocks", "data.val_size=420",
                               "trainer.epochs=1", "model.embedding_size=8", "model.hidden_size=8")
    proc = subprocess.run([sys.executable, "-m", "gru_exp.train", *overrides], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((Path(proc.stdout.strip()) / "metrics.json").read_text())
    assert record["config"]["data"]["val_split"] == "id_blocks" and record["n_eval"] == 420

    cfg = compose_config(overrides)
    arrays = load_imdb(resolve_archive(cfg.data.path), cfg.data.cutoff, tmp_path / "cache")
    splits = load_data(cfg, resolve_archive(cfg.data.path))
    assert len(splits.eval) == record["n_eval"] and len(splits.train) == record["n_train"] == 700 - 420

    def held(split):  # the archive's review ids and labels of a split's texts
        rows = np.searchsorted(arrays.offsets["train"], split.starts)
        return arrays.review_ids["train"][rows], arrays.labels["train"][rows]

    (val_ids, val_labels), (train_ids, train_labels) = held(splits.eval), held(splits.train)
    for c in (0, 1):
        val_blocks = {int(i) // ID_BLOCK for i in val_ids[val_labels == c]}
        train_blocks = {int(i) // ID_BLOCK for i in train_ids[train_labels == c]}
        assert len(val_blocks) >= 3 and len(val_blocks & train_blocks) <= 1, (c, val_blocks, train_blocks)
        assert (val_labels == c).sum() == 210  # stratified: half of the 420 per class
