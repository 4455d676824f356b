"""Bad data in the table and folder sources (issue #25): each case one paragraph naming the file,
the line where there is one, and what is wrong; on the command line exit 2 with nothing written
(no run folder, no cache entry); and each source trained end to end by a real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_data_sources import ZH, data_cfg, make_folder, rows, write_csv, write_jsonl

from gru_exp.config.choices import DataSource
from gru_exp.data import sources
from gru_exp.errors import DataError

GOOD = "text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab, _ in rows(20))


def _bad(tmp_path: Path, name: str, content: bytes | str, test: bytes | str | None = None, **kw):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    extra = {}
    if test is not None:
        (tmp_path / f"test_{name}").write_bytes(test if isinstance(test, bytes) else test.encode())
        extra["test_file"] = str(tmp_path / f"test_{name}")
    cfg = data_cfg(tmp_path, train_file=str(path), **extra, **kw)
    with pytest.raises(DataError) as info:
        sources.load(cfg, sources.find(cfg))
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing cached
    return str(info.value)


CASES = [
    ("a missing column", "t.csv", "review,label\nnice,1\n", None, {}, ["t.csv', line 1", "no column 'text'", "'review'"]),
    ("an empty file", "t.csv", "", None, {}, ["t.csv' is empty", "header"]),
    ("an empty JSONL file", "t.jsonl", "\n\n", None, {}, ["t.jsonl' is empty"]),
    ("a header-only CSV", "t.csv", "text,label\n", None, {}, ["t.csv' has a header but no rows"]),
    ("one class only", "t.csv", "text,label\na b,x\nc d,x\ne f,x\ng h,x\ni j,x\n", None, {},
     ["holds only one label, 'x'", "line 2", "at least two"]),
    ("labels in test never seen in train", "t.csv", GOOD, "text,label\nnice,good\nodd one,weird\n", {},
     ["test_t.csv' has label", "'weird'", "line 3"]),
    ("non-UTF-8 bytes", "t.csv", GOOD.encode() + b'"caf\xe9 au lait",good\n', None, {},
     ["t.csv', line 22", "not UTF-8", "b'\\xe9"]),
    ("an empty text", "t.csv", GOOD + '"  ",good\n', None, {}, ["t.csv', line 22", "text (data.text_column=text) is empty"]),
    ("an empty label", "t.jsonl", '{"text": "fine", "label": null}\n', None, {}, ["t.jsonl', line 1", "label", "empty"]),
    ("a row with a missing field", "t.csv", GOOD + "lonely\n", None, {}, ["t.csv', line 22", "1 fields", "header has 2"]),
    ("a line that is not JSON", "t.jsonl", '{"text": "a", "label": 1}\n{oops\n', None, {}, ["t.jsonl', line 2", "not JSON"]),
    ("an unknown suffix", "t.txt", GOOD, None, {}, ["t.txt'", "suffix '.txt'", "data.format"]),
]


@pytest.mark.parametrize("case,name,content,test,kw,wanted", CASES, ids=[c[0] for c in CASES])
def test_bad_tables_name_the_file_the_line_and_what_is_wrong(tmp_path, case, name, content, test, kw, wanted):
    message = _bad(tmp_path, name, content, test, **kw)
    for part in wanted:
        assert part in message, message
    assert "\n" not in message  # one paragraph


def test_a_missing_file_and_a_folder_without_the_layout(tmp_path):
    with pytest.raises(DataError, match=r"data.train_file='.*nope.csv': no such file") as info:
        sources.find(data_cfg(tmp_path, train_file=str(tmp_path / "nope.csv")))
    assert "runs in)" in str(info.value)
    with pytest.raises(DataError, match=r"data.test_file='d/t.csv': no such file") as info:
        sources.find(data_cfg(tmp_path, train_file=str(write_csv(tmp_path / "t.csv", rows(3))), test_file="d/t.csv"))
    assert f"relative paths are read from the folder the command runs in, here {os.getcwd()!r}" in str(info.value)
    (tmp_path / "f" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no texts under train/<label>/\*.txt"):
        sources.find(data_cfg(tmp_path, source=DataSource.folder, path=str(tmp_path / "f")))
    root = make_folder(tmp_path / "g", ("train",))
    (root / "train" / "good" / "bad.txt").write_bytes(b"fine\n\xff\xfe oops")
    cfg = data_cfg(tmp_path, source=DataSource.folder, path=str(root))
    with pytest.raises(DataError, match=r"bad.txt', line 2: bytes that are not UTF-8"):
        sources.load(cfg, sources.find(cfg))


# -- real command lines --------------------------------------------------------------------------------------

TINY = ["data.cutoff=0", "data.val_size=12", "model.embedding_size=16", "model.hidden_size=16", "trainer.epochs=2",
        "trainer.batch_size=8", "trainer.progress_every_s=0", "logger.batch_loss_every=0", "logger.embeddings=0",
        "logger.histograms=false"]


def train(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("GRU_EXP_IMDB", None)
    return subprocess.run([sys.executable, "-m", "gru_exp.train", f"paths.root_dir={out}", *TINY, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def record_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_csv_with_a_test_file_trains_from_the_command_line(tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", rows(90), header="review,stars,user")
    test_csv = write_csv(tmp_path / "test.csv", rows(15, seed=2), header="review,stars,user")
    rec = record_of(train(tmp_path / "out", "data.source=table", f"data.train_file={train_csv}",
                          f"data.test_file={test_csv}", "data.text_column=review", "data.label_column=stars"))
    assert rec["status"] == "completed" and rec["classes"] == ["bad", "good", "meh"] and rec["n_test"] == 15
    assert set(rec["test"]) == {"acc", "loss", "macro_f1"} and set(rec["test_classes"]) == {"bad", "good", "meh"}
    assert len(rec["series"]["eval_macro_f1"]) == 2 and all(0 <= v <= 1 for v in rec["series"]["eval_macro_f1"])
    assert len(rec["test_confusion"]) == 3 and 0 <= rec["test"]["macro_f1"] <= 1
    assert sum(map(sum, rec["test_confusion"])) == 15 and rec["test_from"] == ""


def test_a_folder_trains_from_the_command_line_with_a_held_out_test_part(tmp_path):
    root = make_folder(tmp_path / "data", ("train",), n=60)
    proc = train(tmp_path / "out", "data.source=folder", f"data.path={root}")
    rec = record_of(proc)
    assert rec["classes"] == ["bad", "good", "meh"] and rec["n_test"] == 12
    assert "12 of the 60 texts" in rec["test_from"] and "held out for test" in proc.stderr


def test_chinese_jsonl_trains_with_the_character_tokenizer(tmp_path):
    data = [(t.replace(" ", ""), lab, g) for t, lab, g in rows(60, labels=("好", "差"), cues=ZH)]
    path = write_jsonl(tmp_path / "zh.jsonl", data)
    proc = train(tmp_path / "out", "data.source=table", f"data.train_file={path}", "data.tokenizer=chars")
    rec = record_of(proc)
    assert rec["classes"] == ["好", "差"] or rec["classes"] == sorted(["好", "差"])
    vocab = (Path(proc.stdout.strip().splitlines()[-1]) / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert {"好", "差", "棒"} <= set(vocab)


@pytest.mark.parametrize("args,wanted", [
    (["data.train_file={missing}"], "data.train_file='{missing}': no such file"),
    (["data.train_file={bad}", "data.text_column=review"], "line 1: no column 'review'"),
    (["data.train_file={bad}", "data.val_split=groups"], "data.val_split=groups needs data.source=table and data.group_column"),
], ids=["missing file", "missing column", "groups without a column"])
def test_bad_data_on_the_command_line_is_exit_2_with_nothing_written(tmp_path, args, wanted):
    bad = write_csv(tmp_path / "bad.csv", rows(30))
    names = {"missing": tmp_path / "missing.csv", "bad": bad}
    out = tmp_path / "out"
    proc = train(out, "data.source=table", *(a.format(**names) for a in args))
    assert proc.returncode == 2 and wanted.format(**names) in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not [p for p in out.rglob("*") if p.is_file()]  # no run folder, no cache entry, no baseline


def test_the_train_commands_precheck_refuses_missing_data_files_before_hydra_writes(tmp_path):
    from gru_exp.train.precheck import precheck

    with pytest.raises(DataError, match=r"data.test_file='.*gone.tsv': no such file"):
        precheck(["data.source=table", f"data.train_file={write_csv(tmp_path / 't.csv', rows(10))}",
                  f"data.test_file={tmp_path / 'gone.tsv'}", f"paths.root_dir={tmp_path / 'out'}"])
    with pytest.raises(DataError, match=r"data.path='.*nowhere' is not a folder"):
        precheck(["data.source=folder", f"data.path={tmp_path / 'nowhere'}", f"paths.root_dir={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists()


def _refused(proc: subprocess.CompletedProcess, out: Path, *wanted: str) -> str:
    """The one-paragraph refusal of a real command line: exit 2, no traceback, nothing written."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = proc.stderr.strip().splitlines()[-1]
    for part in wanted:
        assert part in message, message
    assert "Traceback" not in proc.stderr and message.startswith("gru_exp.train: error:")
    assert not [p for p in out.rglob("*") if p.is_file()] and not list(out.rglob("*_run_*"))  # not even a folder
    return message


def test_a_group_hold_out_that_takes_every_text_is_refused_before_anything_is_written(tmp_path):
    path = write_csv(tmp_path / "one.csv", [(t, lab, "c1") for t, lab, _ in rows(20)])
    out = tmp_path / "out"
    _refused(train(out, "data.source=table", f"data.train_file={path}", "data.group_column=user", "data.val_size=2"),
             out, "one.csv", "would take every text", "the largest group, 'c1', holds 20 of the 20 texts",
             "data.test_share=0.2: 4 of the 20")


def test_a_test_share_that_leaves_one_label_for_training_says_so(tmp_path):
    data = [(t, "login", g) for t, _, g in rows(98)] + [("card refund", "billing", "u"), ("parcel late", "shipping", "u")]
    path = write_csv(tmp_path / "t.csv", data)
    out = tmp_path / "out"
    _refused(train(out, "data.source=table", f"data.train_file={path}", "data.test_share=0.97", "data.val_size=1"),
             out, "t.csv' has 3 labels ('billing', 'login', 'shipping')", "data.test_share=0.97: 97 of the 100 texts",
             "the 3 texts left for training hold only one label, 'login'", "smaller data.test_share")


def test_a_stray_quote_in_a_csv_that_swallows_rows_is_refused_with_its_lines(tmp_path):
    lines = ["text,label,user"] + [f"{t.replace(',', '')},{lab},{g}" for t, lab, g in rows(30)]
    lines[3] = '"a stray quote opens here,good,user2'
    lines[20] = 'and closes here" at last,bad,user9'
    path = tmp_path / "q.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    _refused(train(out, "data.source=table", f"data.train_file={path}"), out,
             "q.csv', lines 4-21: one quoted field spans 18 lines", "a stray '\"' at line 4")


@pytest.mark.parametrize("copy", [False, True], ids=["same path", "same content"])
def test_a_test_file_that_is_the_training_file_is_refused(tmp_path, copy):
    path = write_csv(tmp_path / "t.csv", rows(30))
    other = tmp_path / "sub" / "t2.csv"
    other.parent.mkdir()
    other.write_bytes(path.read_bytes())
    out = tmp_path / "out"
    test = other if copy else Path(os.path.relpath(path, REPO))  # the same file by another spelling
    message = _refused(train(out, "data.source=table", f"data.train_file={path}", f"data.test_file={test}"), out,
                       f"data.test_file='{test}' is", f"data.train_file='{path}'", "measured on training texts")
    assert ("a copy (the same SHA-256" in message) == copy and ("the same file as" in message) != copy


def test_a_label_folder_without_texts_is_refused(tmp_path):
    root = make_folder(tmp_path / "data", ("train",), n=30)
    (root / "train" / "neutral").mkdir()
    (root / "train" / "neutral" / "README.md").write_text("to do")
    out = tmp_path / "out"
    _refused(train(out, "data.source=folder", f"data.path={root}"), out,
             "train/neutral' holds no texts (train/neutral/*.txt)", "remove the folder")


def test_a_bare_resume_from_another_folder_finds_a_table_given_by_a_relative_path(tmp_path):
    (tmp_path / "d").mkdir()
    write_csv(tmp_path / "d" / "t.csv", rows(60))
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    first = subprocess.run([sys.executable, "-m", "gru_exp.train", f"paths.root_dir={tmp_path / 'out'}", *TINY,
                            "trainer.epochs=1", "data.source=table", "data.train_file=d/t.csv"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    rec = record_of(first)
    assert rec["config"]["data"]["train_file"] == str(tmp_path / "d" / "t.csv")  # recorded absolute
    run_dir = first.stdout.strip().splitlines()[-1]
    again = record_of(train(tmp_path / "elsewhere", f"trainer.resume={run_dir}", "trainer.epochs=2"))
    assert again["epochs_done"] == 2 and again["archive_sha256"] == rec["archive_sha256"]
