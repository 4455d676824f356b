"""benchmarks/imdb_to_jsonl.py (issue #25, "Use it for real"): an IMDB-layout archive written as
train/test JSONL with each review's text, star rating (from ``<id>_<rating>.txt``), sentiment, id
block and split, streaming; refusals (exit 2, nothing replaced); and the 8-class rating task trained
from its output through the generic table source alone."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import REPO
from synthetic_imdb import make_imdb_archive

SCRIPT = REPO / "benchmarks" / "imdb_to_jsonl.py"
POS, NEG = (7, 8, 9, 10), (1, 2, 3, 4)


def rated_name(label: str, i: int) -> str:
    """IMDB's <id>_<rating>.txt: ids 37 apart (several id blocks), every rating of the label's half."""
    return f"{37 * i}_{(POS if label == 'pos' else NEG)[i % 4]}.txt"


@pytest.fixture(scope="module")
def rated_archive(tmp_path_factory) -> Path:
    return make_imdb_archive(tmp_path_factory.mktemp("rated") / "aclImdb_v1.tar.gz", n_per_class=40, seed=0,
                             file_name=rated_name)


def convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_every_review_becomes_one_line_with_its_rating_sentiment_id_block_and_split(rated_archive, tmp_path):
    proc = convert(str(rated_archive), str(tmp_path / "jsonl"))
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(rated_archive) as tar:
        texts = {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}
    for split in ("train", "test"):
        rows = [json.loads(line) for line in (tmp_path / "jsonl" / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == 80 and {r["split"] for r in rows} == {split}  # no unsup/, urls_*.txt, README
        for r in rows:
            name = f"aclImdb/{split}/{r['sentiment']}/{r['id']}_{r['rating']}.txt"
            assert r["text"] == texts[name] and r["group"] == r["id"] // 100
            assert r["rating"] in (POS if r["sentiment"] == "pos" else NEG)
        assert sorted({r["rating"] for r in rows}) == [1, 2, 3, 4, 7, 8, 9, 10]
        assert len({r["group"] for r in rows}) == 15  # ids 0..1443
    assert "train.jsonl: 80 reviews, 8 ratings, 0 with bytes that are not UTF-8" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "jsonl").iterdir()) == ["test.jsonl", "train.jsonl"]  # no temporaries


def test_bad_input_is_one_paragraph_exit_2_and_nothing_is_replaced(rated_archive, tmp_path):
    missing = convert(str(tmp_path / "nope.tar.gz"), str(tmp_path / "out"))
    assert missing.returncode == 2 and "nope.tar.gz'" in missing.stderr and "no such file" in missing.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "test.jsonl").write_text("mine\n")
    taken = convert(str(rated_archive), str(tmp_path / "out"))
    assert taken.returncode == 2 and "test.jsonl" in taken.stderr and "never replaces" in taken.stderr
    assert len(taken.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.jsonl"]
    assert (tmp_path / "out" / "test.jsonl").read_text() == "mine\n"
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(rated_archive.read_bytes()[:3000])
    broken = convert(str(damaged), str(tmp_path / "new"))
    assert broken.returncode == 2 and "not a readable IMDB archive" in broken.stderr and not (tmp_path / "new").exists()


def test_the_8_class_rating_task_trains_from_the_jsonl_through_the_table_source(rated_archive, tmp_path):
    from visualdl import LogReader

    from gru_exp.config.compose import compose_config
    from gru_exp.train.run import run_training
    from gru_exp.train.visualdl_extras import CELL

    assert convert(str(rated_archive), str(tmp_path / "jsonl")).returncode == 0
    cfg = compose_config([
        f"paths.root_dir={tmp_path / 'out'}", "data.source=table", f"data.train_file={tmp_path / 'jsonl' / 'train.jsonl'}",
        f"data.test_file={tmp_path / 'jsonl' / 'test.jsonl'}", "data.label_column=rating", "data.group_column=group",
        "data.val_split=groups", "data.val_size=12", "data.cutoff=0", "model.embedding_size=8", "model.hidden_size=8",
        "trainer.epochs=1", "trainer.batch_size=8", "trainer.progress_every_s=0", "logger.embeddings=0",
        "logger.histograms=false"])
    record = run_training(cfg, tmp_path / "run")
    assert record.classes == ["1", "2", "3", "4", "7", "8", "9", "10"] and record.n_test == 80  # numeric order
    assert len(record.test_confusion) == 8 and sum(map(sum, record.test_confusion)) == 80
    (path,) = (tmp_path / "run" / "vdl").glob("vdlrecords*")
    (image,) = LogReader(file_path=str(path)).get_data("image", "test/confusion")
    png = image.image.encoded_image_string
    assert png[12:16] == b"IHDR" and int.from_bytes(png[16:20], "big") == 8 * CELL  # 8 x 8 cells
