"""``gru-exp predict`` / ``gru-exp export`` (#26): which run a study names (its best trial, or the
trial given), and bad input refused with one paragraph and exit status 2, nothing overwritten: an
unfinished run, a missing or damaged checkpoint, a study without a complete trial, an existing
--out, unreadable input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, tiny_overrides


def cli(*args: str, stdin: bytes = b"", env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gru_exp", *args], input=stdin, cwd=REPO, capture_output=True,
                          timeout=300, env=env)


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The one-paragraph error of an exit-2 refusal, checked to name ``words``."""
    err = proc.stderr.decode()
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and proc.stdout == b""
    line = next(line for line in err.splitlines() if ": error: " in line)
    for word in words:
        assert word in line, line
    return line


@pytest.fixture(scope="module")
def run(tiny_archive, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("use_inputs")
    proc = subprocess.run([sys.executable, "-m", "gru_exp.train",
                           *tiny_overrides(tiny_archive, home, "logger.visualdl=false", "trainer.epochs=1")],
                          cwd=REPO, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return Path(proc.stdout.decode().split()[-1])


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_unfinished_run_and_missing_or_damaged_checkpoint_are_refused(run, tmp_path):
    unfinished = copy_of(run, tmp_path)
    record = json.loads((unfinished / "metrics.json").read_text())
    (unfinished / "metrics.json").write_text(json.dumps({**record, "status": "running", "test": {}, "test_epoch": None}))
    before = snapshot(unfinished)
    refused(cli("predict", str(unfinished), "-", stdin=b"good\n"), str(unfinished), "not a finished run")
    refused(cli("export", str(unfinished), "--out", str(tmp_path / "e1")), "not a finished run")
    assert not (tmp_path / "e1").exists() and snapshot(unfinished) == before

    (unfinished / "metrics.json").write_text(json.dumps(record))
    (unfinished / "checkpoints" / "best.pdparams").unlink()
    refused(cli("predict", str(unfinished), "-", stdin=b"good\n"), "best.pdparams", "no such checkpoint")

    shutil.copyfile(run / "checkpoints" / "best.pdparams", unfinished / "checkpoints" / "best.pdparams")
    best = unfinished / "checkpoints" / "best.pdparams"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    before = snapshot(unfinished)
    refused(cli("predict", str(unfinished), "-", stdin=b"good\n"), str(best), "damaged")
    refused(cli("export", str(unfinished), "--out", str(tmp_path / "e2")), "damaged")
    assert not (tmp_path / "e2").exists() and snapshot(unfinished) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_existing_out_and_unreadable_input_are_refused(run, tmp_path):
    out = tmp_path / "preds.jsonl"
    out.write_text("mine\n")
    refused(cli("predict", str(run), "-", "--out", str(out), stdin=b"good\n"), str(out), "never overwrites")
    assert out.read_text() == "mine\n"
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    # a folder as --out: said to be a folder, with a file name to use instead
    refused(cli("predict", str(run), "-", "--out", str(folder), stdin=b"good\n"), f"--out {folder} is a folder",
            str(folder / "predictions.jsonl"))
    refused(cli("export", str(run), "--out", str(folder)), str(folder), "not empty")
    assert snapshot(folder) == {"keep.txt": b"mine"}
    refused(cli("export", str(run), "--out", str(run / "inside")), "inside the run folder")
    assert not (run / "inside").exists()

    refused(cli("predict", str(run), str(tmp_path / "missing.txt")), "missing.txt", "cannot be read")
    refused(cli("predict", str(run), str(tmp_path)), "cannot be read")
    (tmp_path / "in.csv").write_text("id,review\n1,good\n")
    refused(cli("predict", str(run), str(tmp_path / "in.csv")), "'text'", "--text-column")
    (tmp_path / "in.jsonl").write_text('{"text": "good"}\nnot json\n')
    refused(cli("predict", str(run), str(tmp_path / "in.jsonl")), "line 2", "not JSON")
    refused(cli("predict", str(tmp_path), "-"), "not a run folder")
    refused(cli("predict", "colour=blue", str(run)), "colour", "study_name=")


def _study(storage: str, name: str, directions: list[str], trials: list[tuple[list[float], str]]):
    import optuna
    from optuna.distributions import FloatDistribution

    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    for values, run_dir in trials:
        study.add_trial(optuna.trial.create_trial(values=values, params={"trainer.lr": 0.01},
                                                  distributions={"trainer.lr": FloatDistribution(1e-4, 1e-1)},
                                                  user_attrs={"run_dir": run_dir}))
    return study


def test_a_study_names_its_best_trial_or_the_trial_given(run, tmp_path):
    env = {**os.environ, "GRU_EXP_HOME": str(tmp_path / "home")}
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    direct = cli("predict", str(run), "-", stdin=b"good film\nbad film\n", env=env)
    assert direct.returncode == 0, direct.stderr.decode()[-2000:]

    _study(storage, "single", ["maximize"], [([0.5], str(tmp_path / "gone")), ([0.9], str(run))])
    best = cli("predict", "study_name=single", f"storage={storage}", "-", stdin=b"good film\nbad film\n", env=env)
    assert best.returncode == 0, best.stderr.decode()[-2000:]
    assert best.stdout == direct.stdout and "trial 1" in best.stderr.decode()
    refused(cli("predict", "study_name=single", f"storage={storage}", "trial=0", "-", env=env), "Trial 0", "no run folder")

    _study(storage, "front", ["maximize", "minimize"], [([0.9, 2.0], str(run)), ([0.8, 1.0], str(tmp_path / "gone"))])
    refused(cli("predict", "study_name=front", f"storage={storage}", "-", env=env), "trial=<number>", "0, 1")
    named = cli("predict", "study_name=front", f"storage={storage}", "trial=0", "-", stdin=b"good film\nbad film\n",
                env=env)
    assert named.returncode == 0 and named.stdout == direct.stdout, named.stderr.decode()[-2000:]

    import optuna

    empty = optuna.create_study(storage=storage, study_name="empty")
    empty.tell(empty.ask(), state=optuna.trial.TrialState.FAIL)
    empty.ask()  # left running
    refused(cli("predict", "study_name=empty", f"storage={storage}", "-", env=env), "no complete trial")
    refused(cli("export", "study_name=empty", f"storage={storage}", "--out", str(tmp_path / "e"), env=env),
            "no complete trial")
    refused(cli("predict", "study_name=single", f"storage={storage}", "trial=7", "-", env=env), "trial=7",
            "does not exist")
    assert not (tmp_path / "e").exists()


def test_input_formats_by_suffix_as_training_reads_them():
    from types import SimpleNamespace

    from gru_exp.config.choices import DataSource
    from gru_exp.use.texts import input_format, parse_texts, text_column

    assert [input_format(f"x{s}", None) for s in (".tsv", ".TAB", ".csv", ".json", ".jsonl", ".txt", "")] == \
        ["tsv", "tsv", "csv", "jsonl", "jsonl", "lines", "lines"]
    tsv = b'review\tstars\n"quoted, kept\t5\nplain one\t1\n'  # a stray quote is text: one line, one row
    assert parse_texts(tsv, "tsv", "review", "in.tsv") == [b'"quoted, kept', b"plain one"]
    with pytest.raises(Exception, match=r"no column 'text' in its TSV header \(its columns are 'review', 'stars'\)"):
        parse_texts(tsv, "tsv", "text", "in.tsv")
    table = SimpleNamespace(source=DataSource.table, text_column="review")
    assert text_column(None, table) == "review" and text_column("body", table) == "body"
    assert text_column(None, SimpleNamespace(source=DataSource.imdb, text_column="text")) == "text"


def test_predict_reads_a_tsv_with_the_text_column_the_run_trained_on(tmp_path):
    from test_bad_data import record_of, train
    from test_data_sources import rows, write_csv

    data = write_csv(tmp_path / "t.tsv", rows(60), header="review\tstars\tuser", sep="\t")
    proc = train(tmp_path / "out", "data.source=table", f"data.train_file={data}", "data.text_column=review",
                 "data.label_column=stars", "trainer.epochs=1", "logger.visualdl=false")
    record_of(proc)
    run = proc.stdout.strip().splitlines()[-1]
    new = write_csv(tmp_path / "new.tsv", rows(5, seed=3), header="user\treview\tstars", sep="\t")
    out = cli("predict", run, str(new))
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 5 and {json.loads(line)["label"] for line in lines} <= {"bad", "good", "meh"}
    (tmp_path / "other.tsv").write_text("body\tstars\nnice\tgood\n")
    refused(cli("predict", run, str(tmp_path / "other.tsv")), "no column 'review' in its TSV header",
            "its columns are 'body', 'stars'", "--text-column")
    assert cli("predict", run, str(tmp_path / "other.tsv"), "--text-column", "body").returncode == 0


def test_predict_tokenizes_as_the_run_trained_cased_words(tmp_path):
    """A run trained with data.lowercase=false, where "GREAT", "Great" and "great" are three words,
    predicts with that same tokenizer: predict over its test file gives training's own evaluation of
    those texts, probability for probability, and its recorded test accuracy (issue #29's mutation
    check: a predict that lower-cased every text went unnoticed)."""
    import numpy as np
    from test_bad_data import record_of, train
    from test_data_sources import CUES, write_csv

    from gru_exp.data import sources
    from gru_exp.train.loop import evaluate
    from gru_exp.train.run import load_data
    from gru_exp.use.infer import load_model
    from gru_exp.use.runs import usable_run

    def cased_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n):
            label = ("good", "bad")[i % 2]
            words = [str(rng.choice(CUES[label].split() + ["the", "film"])) for _ in range(8)]
            words = [w.upper() if r < 0.3 else w.capitalize() if r < 0.6 else w for w, r in zip(words, rng.random(8))]
            out.append((" ".join(words), label, f"user{i % 10}"))
        return out

    train_csv = write_csv(tmp_path / "train.csv", cased_rows(80, 0))
    test_csv = write_csv(tmp_path / "test.csv", cased_rows(20, 1))
    proc = train(tmp_path / "out", "data.source=table", f"data.train_file={train_csv}", f"data.test_file={test_csv}",
                 "data.lowercase=false", "trainer.lr=0.01", "logger.visualdl=false")
    record = record_of(proc)
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    vocab = set((run_dir / "vocab.txt").read_text().split())
    assert {"GREAT", "Great", "great"} <= vocab  # three words to this run
    out = cli("predict", str(run_dir), str(test_csv))
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    preds = [json.loads(line) for line in out.stdout.decode().splitlines()]

    run = usable_run(run_dir)  # training's own evaluation of the same weights on its test split
    splits = load_data(run.config, sources.find(run.config.data))
    probs = np.zeros((len(splits.test), len(run.classes)), dtype=np.float32)
    evaluate(load_model(run), splits.test, run.config, probs=probs)
    ours = np.array([[p["probs"][c] for c in run.classes] for p in preds])
    np.testing.assert_allclose(ours, probs, rtol=1e-6, atol=1e-7)  # printed with 7 significant digits
    labels = [label for _, label, _ in cased_rows(20, 1)]
    assert sum(p["label"] == label for p, label in zip(preds, labels)) / 20 == pytest.approx(record["test"]["acc"])


def test_outputs_never_land_inside_a_study_folder_and_threads_are_bounded(run, tmp_path):
    """report, export and predict --out inside a study folder made the study's next trial_<n>
    folder, and that trial then failed; predict --threads 99999 aborted in OpenMP, exit 134
    (adversarial pass 4). Both are now one paragraph, exit 2, nothing written."""
    study = tmp_path / "sweeps" / "s1"
    (study / "trial_0").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"study_name": "s1", "storage": "sqlite:///x.db", "uid": "u"}))
    before = snapshot(study)
    refused(cli("export", str(run), "--out", str(study / "trial_3")), "inside the study folder")
    refused(cli("predict", str(run), "-", "--out", str(study / "trial_1"), stdin=b"good\n"), "inside the study folder")
    report = subprocess.run([sys.executable, "-m", "gru_exp.report", str(run), "--out", str(study / "trial_1" / "notes")],
                            cwd=REPO, capture_output=True, timeout=300)
    assert report.returncode == 2 and b"inside the study folder" in report.stderr, report.stderr.decode()[-2000:]
    assert snapshot(study) == before and sorted(p.name for p in study.iterdir()) == ["study.json", "trial_0"]
    refused(cli("predict", str(run), "-", "--threads", "99999", stdin=b"good\n"), "--threads 99999", "[1, 256]")


def test_out_dash_is_stdout_as_the_input_dash_is_stdin(run):
    """predict --out - wrote a file named '-' in the working folder and nothing to stdout
    (adversarial pass 5)."""
    import os

    work = run.parent / "work"
    work.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "gru_exp", "predict", str(run), "-", "--out", "-"], input=b"good\nbad\n",
                          cwd=work, capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert len(proc.stdout.decode().splitlines()) == 2 and not list(work.iterdir())
    # an option between the model and the input was "unrecognized arguments: -" (adversarial pass 6)
    again = subprocess.run([sys.executable, "-m", "gru_exp", "predict", str(run), "--out", "-", "-"], input=b"good\n",
                           cwd=work, capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert again.returncode == 0 and len(again.stdout.decode().splitlines()) == 1, again.stderr.decode()[-2000:]
