"""Data sources other than IMDB's archive (issue #25): CSV/TSV/JSONL tables and aclImdb-like folders
of any labels, written tiny by each test; class order, held-out test parts, group-aware
validation, the tokenizers, the cache, the scores of several classes, bad data (one paragraph
naming the file and line, exit 2, nothing written), and real command lines end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO

from gru_exp.config.choices import DataFormat, DataSource, Tokenizer, ValSplit
from gru_exp.data import folder, sources, table
from gru_exp.data.splits import make_splits
from gru_exp.data.texts import class_order
from gru_exp.data.tokenize import tokenize, tokenizer
from gru_exp.errors import DataError
from gru_exp.train.scores import macro_f1, per_class, positive_class

CUES = {"good": "great fine love", "bad": "awful poor hate", "meh": "ok average so"}
ZH = {"好": "好 喜 爱 棒", "差": "差 坏 烂 糟"}


def data_cfg(tmp_path: Path, **kw) -> SimpleNamespace:
    base = dict(source=DataSource.table, path=None, train_file=None, test_file=None, format=DataFormat.auto,
                text_column="text", label_column="label", group_column=None, test_share=0.2,
                tokenizer=Tokenizer.words, lowercase=True, cache_dir=str(tmp_path / "cache"), cutoff=0)
    return SimpleNamespace(**{**base, **kw})


def rows(n: int, labels=("good", "bad", "meh"), seed: int = 0, cues=CUES) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = cues[label].split()
        out.append((" ".join(rng.choice(words, 6)) + " the, film!", label, f"user{i % 10}"))
    return out


def write_csv(path: Path, data, header="text,label,user", sep=",") -> Path:
    lines = [header] + [sep.join([f'"{t}"' if sep == "," else t, str(lab), g]) for t, lab, g in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, data, **extra) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": lab, "user": g, **extra}, ensure_ascii=False) + "\n"
                            for t, lab, g in data), encoding="utf-8")
    return path


def load(cfg) -> object:
    return sources.load(cfg, sources.find(cfg))


# -- classes -------------------------------------------------------------------------------------------------

def test_class_order_is_numeric_for_numbers_and_by_text_otherwise():
    assert class_order(["10", "2", "1.5", "-1"]) == ["-1", "1.5", "2", "10"]
    assert class_order(["pos", "neg", "Neutral"]) == ["Neutral", "neg", "pos"]
    assert class_order(["2", "ten"]) == ["2", "ten"]


def test_a_csv_of_three_string_labels_becomes_three_classes_with_a_seeded_stratified_test_part(tmp_path):
    cfg = data_cfg(tmp_path, train_file=str(write_csv(tmp_path / "t.csv", rows(100))))
    arrays = load(cfg)
    assert arrays.class_names == ["bad", "good", "meh"]
    assert len(arrays.labels["test"]) == 20 and np.bincount(arrays.labels["test"]).tolist() in ([7, 7, 6], [7, 6, 7],
                                                                                                 [6, 7, 7])
    assert "20 of the 100 texts" in arrays.test_from and "seed 0" in arrays.test_from
    again = table.parse(cfg, sources.find(cfg))  # parsed afresh: the same held-out texts
    assert again.docs("test") == arrays.docs("test") and again.words == arrays.words
    good = arrays.class_names.index("good")
    word_ids = {w: i for i, w in enumerate(arrays.words)}
    doc = arrays.docs("train")[int(np.flatnonzero(arrays.labels["train"] == good)[0])]
    assert set(doc) <= {word_ids[w] for w in (b"great", b"fine", b"love", b"the", b"film")}


def test_jsonl_numeric_labels_with_a_test_file(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [(t, {"good": 5, "bad": 1, "meh": 10}[lab], g) for t, lab, g in rows(60)])
    test = write_jsonl(tmp_path / "test.jsonl", [(t, {"good": 5, "bad": 1, "meh": 10}[lab], g) for t, lab, g in rows(9, seed=1)])
    arrays = load(data_cfg(tmp_path, train_file=str(train), test_file=str(test)))
    assert arrays.class_names == ["1", "5", "10"]  # numerically, not "1", "10", "5"
    assert len(arrays.labels["test"]) == 9 and arrays.test_from == ""


def test_a_tsv_with_groups_keeps_each_group_on_one_side_of_validation(tmp_path):
    path = write_csv(tmp_path / "t.tsv", rows(200), header="text\tlabel\tuser", sep="\t")
    cfg = data_cfg(tmp_path, train_file=str(path), group_column="user", test_file=None)
    arrays = load(cfg)
    groups = arrays.groups["train"]
    assert not set(groups.tolist()) & set(arrays.groups["test"].tolist())  # the held-out test part: whole groups too
    splits = make_splits(arrays, seq_len=None, val_size=30, train_limit=None, test_limit=None, seed=3,
                         val_split=ValSplit.groups)
    val_rows = {int(s) for s in splits.eval.starts}
    val_groups = {int(g) for g, s in zip(groups, arrays.offsets["train"][:-1]) if int(s) in val_rows}
    train_groups = {int(g) for g, s in zip(groups, arrays.offsets["train"][:-1]) if int(s) in set(splits.train.starts.tolist())}
    assert len(splits.eval) >= 30 and val_groups and not val_groups & train_groups


# -- tokenizers ----------------------------------------------------------------------------------------------

def test_the_tokenizer_knobs_choose_in_one_place():
    assert tokenizer(SimpleNamespace(tokenizer=Tokenizer.words, lowercase=True)) is tokenize  # IMDB's, unchanged
    assert tokenizer(SimpleNamespace()) is tokenize  # a config from before the knobs
    assert tokenizer(SimpleNamespace(tokenizer=Tokenizer.words, lowercase=False))(b"The Film!") == [b"The", b"Film"]
    chars = tokenizer(SimpleNamespace(tokenizer=Tokenizer.chars, lowercase=True))
    assert chars("这部 电影A".encode()) == [c.encode() for c in "这部电影a"]


def test_chinese_texts_with_the_character_tokenizer(tmp_path):
    data = [(t.replace(" ", ""), lab, g) for t, lab, g in rows(40, labels=("好", "差"), cues=ZH)]
    cfg = data_cfg(tmp_path, train_file=str(write_jsonl(tmp_path / "zh.jsonl", data)), tokenizer=Tokenizer.chars)
    arrays = load(cfg)
    assert {"好".encode(), "差".encode(), "棒".encode()} <= set(arrays.words)
    words = load(data_cfg(tmp_path, train_file=cfg.train_file))  # the words tokenizer: a whole text is one token
    assert len(words.words) > len(arrays.words)


# -- folder --------------------------------------------------------------------------------------------------

def make_folder(root: Path, splits=("train", "test"), n: int = 12) -> Path:
    for split in splits:
        for i, (text, label, _) in enumerate(rows(n, seed=len(split))):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            (root / split / label / f"{i}_3.txt").write_text(text, encoding="utf-8")
    return root


def test_a_label_folder_only_under_train_is_refused_naming_it(tmp_path):
    """An extracted aclImdb gave three classes, its 50,000 unlabelled train/unsup reviews the largest,
    never scored and never said (adversarial pass 5)."""
    root = make_folder(tmp_path / "aclImdb")
    (root / "train" / "unsup").mkdir()
    for i in range(3):
        (root / "train" / "unsup" / f"{i}_0.txt").write_text("no label here", encoding="utf-8")
    with pytest.raises(DataError, match=r"'unsup' \(3 texts\) that test/ does not have.*train/unsup holds unlabelled"):
        load(data_cfg(tmp_path, source=DataSource.folder, path=str(root)))
    assert not (tmp_path / "cache").exists()
    numbers = tmp_path / "numbers"  # train/1 and test/1.0 are one class (1 and 1.0 are one label): scored
    for split, name in (("train", "1"), ("test", "1.0"), ("train", "2"), ("test", "2")):
        (numbers / split / name).mkdir(parents=True)
        for i in range(3):
            (numbers / split / name / f"{i}_0.txt").write_text(f"text {name} {i}", encoding="utf-8")
    assert load(data_cfg(tmp_path, source=DataSource.folder, path=str(numbers))).class_names == ["1", "2"]


def test_a_folder_of_any_labels(tmp_path):
    root = make_folder(tmp_path / "data")
    arrays = load(data_cfg(tmp_path, source=DataSource.folder, path=str(root)))
    assert arrays.class_names == ["bad", "good", "meh"] and len(arrays.labels["test"]) == 12
    held = load(data_cfg(tmp_path, source=DataSource.folder, path=str(make_folder(tmp_path / "d2", ("train",), 30))))
    assert len(held.labels["test"]) == 6 and "held out" in held.test_from


def test_a_folder_ignores_hidden_entries_and_counts_every_other_file_it_skips(tmp_path, caplog):
    root = make_folder(tmp_path / "data", ("train",), n=30)
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / ".ipynb_checkpoints" / "0_3-checkpoint.txt").write_text("a notebook's copy")
    (root / "train" / "good" / ".hidden.txt").write_text("hidden")
    (root / "train" / "good" / "LOUD.TXT").write_text("skipped")
    (root / "train" / "good" / "more").mkdir()
    (root / "train" / "good" / "more" / "1.txt").write_text("in a sub-folder: skipped")
    (root / "train" / "notes.md").write_text("beside the label folders")
    with caplog.at_level("WARNING"):
        arrays = load(data_cfg(tmp_path, source=DataSource.folder, path=str(root)))
    assert arrays.class_names == ["bad", "good", "meh"]
    assert len(arrays.labels["train"]) + len(arrays.labels["test"]) == 30
    assert "Skipped 3 files under" in caplog.text and "'train/good/LOUD.TXT'" in caplog.text
    assert "'train/good/more/1.txt'" in caplog.text and "'train/notes.md'" in caplog.text
    assert "hidden" not in caplog.text.split("(e.g.")[1].split(")")[0]


# -- cache ---------------------------------------------------------------------------------------------------

def test_the_cache_is_keyed_by_content_and_every_option(tmp_path, caplog):
    path = write_csv(tmp_path / "t.csv", rows(30))
    cfg = data_cfg(tmp_path, train_file=str(path))
    with caplog.at_level("INFO"):
        first = load(cfg)
        second = load(cfg)
    assert "loaded from cache" in caplog.text and second.docs("train") == first.docs("train")
    assert second.class_names == first.class_names and second.test_from == first.test_from
    load(data_cfg(tmp_path, train_file=str(path), lowercase=False))
    load(data_cfg(tmp_path, train_file=str(path), test_share=0.3))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    write_csv(path, rows(30, seed=5))  # new content under the same name: another entry, never the old ids
    caplog.clear()
    with caplog.at_level("INFO"):
        load(cfg)
    assert "Parsing" in caplog.text and len(list((tmp_path / "cache").glob("*.npz"))) == 4



def test_a_file_replaced_while_it_is_read_is_never_cached_under_its_old_content(tmp_path, monkeypatch):
    """The cache entry is named by the SHA-256 read before parsing; a file saved anew (mv, an editor)
    while it was parsed left the new texts and labels under the old content's name, and every later
    run on the old bytes read them (adversarial pass 5). Now refused, nothing cached."""
    path = write_csv(tmp_path / "t.csv", rows(30))
    original = path.read_bytes()
    newer = write_csv(tmp_path / "newer.csv", rows(45, labels=("good", "bad"), seed=3))
    reader = table._delimited

    def saved_meanwhile(*args, **kwargs):
        os.replace(newer, path)  # the user saves another version while gru-exp reads the first
        return reader(*args, **kwargs)

    monkeypatch.setattr(table, "_delimited", saved_meanwhile)
    cfg = data_cfg(tmp_path, train_file=str(path))
    with pytest.raises(DataError, match="changed while it was being read"):
        load(cfg)
    assert not list((tmp_path / "cache").glob("*.npz"))
    monkeypatch.setattr(table, "_delimited", reader)
    path.write_bytes(original)
    assert load(cfg).class_names == ["bad", "good", "meh"]



def test_a_folder_file_removed_while_the_folder_is_read_is_a_refusal_not_a_traceback(tmp_path):
    """A text removed between the listing and its reading gave FileNotFoundError, exit 1, and an empty
    run folder (adversarial pass 6)."""
    root = make_folder(tmp_path / "texts")
    cfg = data_cfg(tmp_path, source=DataSource.folder, path=str(root))
    found = sources.find(cfg)
    next(iter(found.files.values())).unlink()  # another process tidies the folder meanwhile
    with pytest.raises(DataError, match="changed while it was being read"):
        sources.load(cfg, found)
    assert not list((tmp_path / "cache").glob("*.npz"))


# -- scores --------------------------------------------------------------------------------------------------

def test_macro_f1_and_per_class_scores():
    confusion = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 0]])  # c: never true, predicted twice (F1 0, counted)
    scores = per_class(confusion, ["a", "b", "c"])
    assert scores["a"] == {"precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4.0}
    assert scores["b"]["precision"] == pytest.approx(2 / 3) and scores["b"]["recall"] == 0.5
    f1_b = 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert macro_f1(confusion) == pytest.approx((6 / 7 + f1_b + 0) / 3)
    confusion[1] = [0, 4, 0]  # c neither true nor predicted: left out of the mean (as scikit-learn's)
    assert macro_f1(confusion) == pytest.approx((6 / 7 + 2 * 0.8 / 1.8) / 2)
    assert positive_class(["pos", "neg"]) == 0 and positive_class(["neg", "pos"]) == 1
    assert positive_class(["0", "1"]) == 1 and positive_class(["a", "b", "c"]) is None


# -- labels equal as numbers; whole-group hold-outs far larger than asked ----------------------------------------

def test_numeric_labels_equal_as_numbers_are_one_class_named_by_their_first_spelling(tmp_path):
    data = [(t, [1, 1.0, 2, "2.00"][i % 4], g) for i, (t, _, g) in enumerate(rows(40))]
    arrays = load(data_cfg(tmp_path, train_file=str(write_jsonl(tmp_path / "n.jsonl", data))))
    assert arrays.class_names == ["1", "2"]
    assert len(arrays.labels["train"]) + len(arrays.labels["test"]) == 40


def test_a_whole_group_test_part_far_larger_than_asked_is_a_warning(tmp_path, caplog):
    data = [(t, lab, "big" if i < 14 else "small") for i, (t, lab, _) in enumerate(rows(20))]
    cfg = data_cfg(tmp_path, train_file=str(write_jsonl(tmp_path / "g.jsonl", data)), group_column="user",
                   test_share=0.1)
    with caplog.at_level("WARNING"):
        arrays = load(cfg)
    n_test = len(arrays.labels["test"])
    assert n_test in (6, 14) and f"The held-out test part has {n_test} texts, 2 asked" in caplog.text
    assert "the largest group, 'big', holds 14" in caplog.text


def test_a_whole_group_validation_far_larger_than_asked_is_a_warning(tmp_path, caplog):
    data = [(t, lab, "a" if i < 40 else "b") for i, (t, lab, _) in enumerate(rows(60))]
    cfg = data_cfg(tmp_path, train_file=str(write_jsonl(tmp_path / "g.jsonl", data)),
                   test_file=str(write_jsonl(tmp_path / "gt.jsonl", rows(6))), group_column="user")
    with caplog.at_level("WARNING"):
        splits = make_splits(load(cfg), seq_len=None, val_size=3, train_limit=None, test_limit=None, seed=0,
                             val_split=ValSplit.groups)
    assert len(splits.eval) in (20, 40)  # one whole group, for 3 asked
    assert f"Validation has {len(splits.eval)} texts, 3 asked" in caplog.text and "largest holds 40" in caplog.text


def test_a_tsv_is_read_without_quote_processing_one_line_a_row(tmp_path):
    data = rows(30)
    data[2] = ('"Great great fine love', "good", "user2")  # a stray quote: csv quoting would merge lines 4..21
    data[19] = ('so ok" average so', "meh", "user9")
    path = write_csv(tmp_path / "q.tsv", data, header="text\tlabel\tuser", sep="\t")
    arrays = load(data_cfg(tmp_path, train_file=str(path)))
    assert len(arrays.labels["train"]) + len(arrays.labels["test"]) == 30
    assert b'"great' not in arrays.words and b"great" in arrays.words  # the quote is text (dropped as punctuation)


def test_the_recorded_config_names_the_data_by_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "f", ("train",))
    write_csv(tmp_path / "t.csv", rows(10))
    cfg = data_cfg(tmp_path, source=DataSource.folder, path="f")
    assert sources.recorded_paths(cfg, sources.find(cfg)) == {"path": str(tmp_path / "f")}
    cfg = data_cfg(tmp_path, train_file="t.csv")
    assert sources.recorded_paths(cfg, sources.find(cfg)) == {"train_file": str(tmp_path / "t.csv")}
    assert sources.recorded_paths(data_cfg(tmp_path, source=DataSource.imdb), None) == {}


def test_a_csv_text_over_several_lines_is_read_and_a_huge_one_reported(tmp_path, caplog, monkeypatch):
    body = "".join(f'"{t}",{lab},{g}\n' for t, lab, g in rows(20))
    path = tmp_path / "m.csv"
    path.write_text('text,label,user\n"first line, with commas, many\nsecond, line, here\nthird, and last",good,u1\n'
                    + body)
    arrays = load(data_cfg(tmp_path, train_file=str(path)))  # two inner lines that read as rows: not a stray quote
    assert len(arrays.labels["train"]) + len(arrays.labels["test"]) == 21
    monkeypatch.setattr(table, "BIG_FIELD", 40)
    with caplog.at_level("WARNING"):
        table.parse(data_cfg(tmp_path, train_file=str(path)), sources.find(data_cfg(tmp_path, train_file=str(path))))
    assert "m.csv', lines 2-4: one quoted field of 64 characters spans 3 lines" in caplog.text


def test_the_reading_rules_are_in_the_cache_key(tmp_path, monkeypatch):
    cfg = data_cfg(tmp_path, train_file=str(write_csv(tmp_path / "t.tsv", rows(20), header="text\tlabel\tuser", sep="\t")))
    load(cfg)
    assert [json.loads(p.read_text()).get("reader") for p in (tmp_path / "cache").glob("*.json")] == [table.READER]
    monkeypatch.setattr(table, "READER", table.READER + 1)  # entries of other reading rules (a TSV read with quotes) are not reused
    load(cfg)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_labels_python_reads_as_equal_numbers_but_people_do_not_stay_apart(tmp_path):
    """"1_2" and "12" (and "1_000" and "1000") were one class: float() and Decimal() read
    underscores as digit separators (adversarial pass 5). Only plain decimal spellings are numbers."""
    labels = ["1_2", "12", "3", "1_000", "1000"]
    data = [(t, labels[i % 5], g) for i, (t, _, g) in enumerate(rows(50))]
    arrays = load(data_cfg(tmp_path, train_file=str(write_csv(tmp_path / "l.csv", data))))
    assert sorted(arrays.class_names) == sorted(labels)
