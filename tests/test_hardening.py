"""Off the happy path: hostile names, leaked secrets, memory, signals, damaged files, bad numbers.
Real processes, real signals, real SQLite files; each class of failure is one paragraph and
exit 2 (or the honest non-zero status), with nothing lost, overwritten or written outside."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, finish, start, tiny_overrides
from conftest import run_sweep as sweep

HUGE_PICKLE = b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"xx"  # BINBYTES8 of 2**62 bytes: MemoryError


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=timeout)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# -- names -> paths -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../../x", "/abs/dir", "", " ", "a/b", ".."])
def test_hostile_study_names_are_refused_before_anything_is_written(sweep_env, capsys, bad):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", f"study_name='{bad}'") == 2
    err = capsys.readouterr().err
    assert "study_name=" in err and "must be 1-100 characters" in err and "Traceback" not in err
    assert not sweep_env.sweeps_dir.exists()


def test_a_300_character_study_name_is_refused_and_leaves_no_study(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", f"study_name={'s' * 300}") == 2
    assert "must be 1-100 characters" in capsys.readouterr().err
    assert not sweep_env.sweeps_dir.exists()


def test_a_hostile_run_name_is_refused_with_no_folder(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "name=../../escape"))
    assert proc.returncode == 2 and "name='../../escape'" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "escape").exists()


def test_a_second_study_of_the_same_name_never_writes_into_the_first(sweep_env, capsys, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}") == 0
    folder = sweep_env.sweeps_dir / name
    before = {p: p.read_bytes() for p in files_under(folder)}
    # the same name in another storage (a journal file) ...
    assert sweep(f"sweep={name}", f"storage=journal:{tmp_path / 'other.log'}") == 2
    assert "holds the trials of another study" in capsys.readouterr().err
    # ... and the same SQLite file emptied (the study silently recreated)
    db = sweep_env.sweeps_dir / "optuna.db"
    db.unlink()
    assert sweep(f"sweep={name}") == 2
    assert "holds the trials of another study" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in files_under(folder)} == before  # nothing overwritten


def test_unicode_spaces_commas_and_brackets_in_home_and_study_name_work_end_to_end(sweep_env, tmp_path, monkeypatch):
    home = tmp_path / "hôme, [x] y"
    monkeypatch.setenv("GRU_EXP_HOME", str(home))
    name = sweep_env(n_trials=2, epochs=1)
    assert sweep(f"sweep={name}", "study_name='étude 1, [a]'") == 0
    study = optuna.load_study(study_name="étude 1, [a]", storage=f"sqlite:///{home / 'outputs/sweeps/optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert (home / "outputs" / "sweeps" / "étude 1, [a]" / "trial_1" / "metrics.json").is_file()


# -- secrets --------------------------------------------------------------------------------------------------

def test_redaction_masks_passwords_wherever_a_url_holds_them():
    from gru_exp.redact import redact

    cases = {
        "postgresql://u:s3cr%40t@h:5432/db": "postgresql://u:***@h:5432/db",
        "sqlite:////tmp/x.db?password=hunter2&mode=ro": "sqlite:////tmp/x.db?password=***&mode=ro",
        "postgresql://u@h/db?sslmode=require&password=a%26b": "postgresql://u@h/db?sslmode=require&password=***",
        "could not connect: password=abc host=x": "could not connect: password=*** host=x",
        "mysql://root:pa:ss@w@host/db": "mysql://root:***@host/db",
    }
    for text, masked in cases.items():
        assert redact(text) == masked
        assert "s3cr" not in redact(text) and "hunter2" not in redact(text)


# -- resources ------------------------------------------------------------------------------------------------

def test_a_huge_seq_len_is_refused_before_any_allocation(tiny_archive, tmp_path):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "data.seq_len=100000",
                                                 "data.train_limit=200"))
    assert proc.returncode == 2 and "data.seq_len=100000 must be in [1, 5000]" in proc.stderr


def test_a_configuration_that_cannot_fit_in_memory_is_refused(tiny_cfg, tmp_path, monkeypatch):
    from gru_exp.errors import ConfigError
    from gru_exp.train import device
    from gru_exp.train.run import run_training

    monkeypatch.setattr(device, "available_memory", lambda: 2**20)  # a 1 MiB machine: the real one cannot OOM here
    with pytest.raises(ConfigError, match=r"needs about .* GiB .* are available"):
        run_training(tiny_cfg("model.hidden_size=512"), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_bigram_table_larger_than_memory_is_refused_before_it_is_allocated(tiny_archive, tmp_path):
    """2**40 rows of 16 floats (64 TiB, four times that with gradients and Adam moments): refused in
    one paragraph naming the knob, exit 2, no run folder left, not an out-of-memory kill."""
    out = tmp_path / "out"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"model.bigram_buckets={2**40}"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"model.bigram_buckets={2**40} x model.bigram_size=16" in proc.stderr and "GiB are available" in proc.stderr
    assert not list(out.rglob("metrics.json"))


# -- honest states and exit codes -----------------------------------------------------------------------------

def test_sigterm_leaves_an_interrupted_resumable_run(tiny_archive, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    args = tiny_overrides(tiny_archive, out, "trainer.epochs=400", "model.hidden_size=32")
    proc = start([sys.executable, "-m", "gru_exp.train", *args], cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while True:  # wait for a finished epoch
        records = list(out.rglob("metrics.json"))
        if records and json.loads(records[0].read_text() or "{}").get("epochs_done", 0) >= 1:
            break
        assert time.monotonic() < deadline and proc.poll() is None, proc.err.text()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=60)
    assert code == 130, err
    record = json.loads(records[0].read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] >= 1
    assert "trainer.resume=" in err and "Traceback" not in err


def test_a_sweep_stopped_by_failures_exits_non_zero_and_says_why(sweep_env, capsys):
    name = sweep_env(n_trials=3, epochs=1, params="  trainer.lr: {type: float, low: 1.0e+6, high: 1.0e+7, log: true}",
                     max_failures=1)
    assert sweep(f"sweep={name}") == 1
    err = capsys.readouterr().err
    assert "stopped early" in err and "max_failures=1" in err


def test_a_base_that_training_rejects_is_refused_before_the_first_trial(sweep_env, capsys):
    name = sweep_env(n_trials=2, epochs=1)
    assert sweep(f"sweep={name}", "base=['model.dropout=1.5']") == 2
    assert "base: model.dropout=1.5 must be in [0, 1)" in capsys.readouterr().err
    assert not sweep_env.sweeps_dir.exists()


@pytest.mark.parametrize("override,message", [
    ("timeout=-5", "timeout=-5.0 must be > 0 or null"),
    ("max_failures=-1", "max_failures=-1 must be a positive integer or null"),
    ("timeout=nan", "timeout=nan must be > 0"),
    ("pruner.percentile=nan", "pruner.percentile=nan must be in (0, 100)"),
])
def test_bad_sweep_numbers_are_refused(sweep_env, capsys, override, message):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", override) == 2
    assert message in capsys.readouterr().err
    assert not sweep_env.sweeps_dir.exists()


def test_where_a_run_writes_is_not_searchable(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1, params="  paths.output_dir: {type: categorical, choices: [/tmp/elsewhere]}")
    assert sweep(f"sweep={name}") == 2
    assert "params.paths.output_dir is not searchable" in capsys.readouterr().err


def test_grad_clip_nan_is_refused(tiny_archive, tmp_path):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.grad_clip=nan"))
    assert proc.returncode == 2 and "trainer.grad_clip=nan must be >= 0" in proc.stderr


# -- damaged files --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "huge_length", "other_model"])
def test_a_damaged_or_mismatched_checkpoint_is_one_paragraph_and_exit_2(tiny_archive, tmp_path, damage):
    out = tmp_path / "out"
    first = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1"))
    assert first.returncode == 0, first.stderr
    (run,) = [p.parent for p in out.rglob("metrics.json")]
    ckpt = run / "checkpoints" / "last.pdparams"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "random":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "huge_length":  # a pickle whose first item claims 2**62 bytes: paddle.load raises MemoryError
        ckpt.write_bytes(HUGE_PICKLE)
    else:  # a checkpoint of another model shape, under the same name
        other = tmp_path / "other"
        assert cli("gru_exp.train", *tiny_overrides(tiny_archive, other, "trainer.epochs=1",
                                                     "model.hidden_size=24")).returncode == 0
        ckpt.write_bytes(next(other.rglob("last.pdparams")).read_bytes())
    before = files_under(out)
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=2", f"trainer.resume={run}"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "checkpoint" in proc.stderr and str(ckpt) in proc.stderr
    assert files_under(out) == before  # no new run folder left behind


def test_a_read_only_study_database_is_a_clear_error(sweep_env, capsys, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    db = tmp_path / "ro" / "optuna.db"
    db.parent.mkdir()
    optuna.create_study(study_name="other", storage=f"sqlite:///{db}")
    before = db.read_bytes()
    # SQLite's own read-only mode: read-only even for root (CI), unlike file permissions
    assert sweep(f"sweep={name}", f"storage='sqlite:///file:{db}?mode=ro&uri=true'") == 2
    err = capsys.readouterr().err
    assert re.search(r"cannot be (written|opened)", err) and "Traceback" not in err
    assert db.read_bytes() == before and not (REPO / "file:").exists()


def test_a_sqlite_path_under_a_file_is_a_clear_error(sweep_env, capsys, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    (tmp_path / "afile").write_text("x")
    assert sweep(f"sweep={name}", f"storage=sqlite:///{tmp_path / 'afile' / 'optuna.db'}") == 2
    err = capsys.readouterr().err
    assert "its folder cannot be made" in err and "Traceback" not in err


def test_report_inputs_of_every_kind_are_one_paragraph(tmp_path, capsys):
    from gru_exp.report.__main__ import main as report

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "study.json").write_text("{not json")
    assert report([str(garbage)]) == 2
    assert "is not a study pointer" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text(json.dumps({"loss": [1, 2]}))
    assert report([str(foreign)]) == 2
    assert "not a gru-exp run record" in capsys.readouterr().err
    db = tmp_path / "s.db"
    optuna.create_study(study_name="q", storage=f"sqlite:///{db}")
    assert report(["study_name=q", f"storage=sqlite:///{db}?timeout=5"]) == 2  # exists: the error is "no trials"
    assert "has no trials yet" in capsys.readouterr().err
    assert report(["study_name=q", f"storage=sqlite:///{tmp_path / 'missing.db'}"]) == 2
    assert "no such SQLite file" in capsys.readouterr().err
    sqlite3.connect(db).close()


@pytest.mark.parametrize("text", [
    "postgresql+psycopg2://user:s3cret@/db?host=/var/run/postgresql",  # Unix socket: empty host
    "`postgresql://u:s3cret@host`", "[postgresql://u:s3cret@host]", "{postgresql://u:s3cret@host}",
    "postgresql://u:s3cret@host!", "see postgresql://u:s3cret@h/db and mysql://a:s3cret@b/c",
])
def test_redaction_masks_a_password_before_an_empty_host_or_inside_brackets(text):
    """A host may be empty (libpq's Unix socket form) and a URL may sit in backticks, brackets or
    prose: the password is masked in every case (a review found these in clear)."""
    from gru_exp.redact import redact

    assert "s3cret" not in redact(text) and "***@" in redact(text)
