"""Off the happy path, for studies: names whose bytes do not fit a folder name, sweep numbers
with ranges, passwords in any corner of a storage URL, SQLite URLs that would make stray files,
two workers starting one new study at once, and a study continued only with its own objectives.
Rows of docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from conftest import REPO, finish, start
from conftest import run_sweep as sweep

# -- names (row 18) --------------------------------------------------------------------------------------------

def test_a_study_name_longer_than_a_folder_name_in_bytes_is_refused_before_any_study(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", f"study_name='{'日' * 90}'") == 2  # 90 characters, 270 bytes
    err = capsys.readouterr().err
    assert "study_name='日日日" in err and "at most 255 bytes as UTF-8" in err and "Traceback" not in err
    assert not (sweep_env.sweeps_dir / "optuna.db").exists()  # no database, so no orphan study


def test_a_name_of_255_bytes_is_allowed():
    from gru_exp.config.names import name_problem

    assert name_problem("study_name", "é" * 100) is None  # 200 bytes
    assert name_problem("study_name", "日" * 85) is None  # 255 bytes
    assert "at most 255 bytes" in name_problem("study_name", "日" * 86)


# -- numbers (row 95) ------------------------------------------------------------------------------------------

def test_a_negative_sampler_seed_is_named_as_such(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", "sampler.seed=-1") == 2
    err = capsys.readouterr().err
    assert "sampler.seed=-1 must be in [0, 4294967295] or null (unseeded)" in err and "cannot be opened" not in err
    assert not (sweep_env.sweeps_dir / "optuna.db").exists()


# -- secrets (rows 146-149) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,masked", [
    ("postgresql://gru_ci:pa@ss:w0rd#x@127.0.0.1:5432/gru_ci", "postgresql://gru_ci:***@127.0.0.1:5432/gru_ci"),
    ("postgresql://gru_ci:Sekr1t Pw9@127.0.0.1:5432/gru_ci", "postgresql://gru_ci:***@127.0.0.1:5432/gru_ci"),
    ("postgresql://gru_ci@127.0.0.1:5432/gru_ci?password=Sekr1t Pw9",
     "postgresql://gru_ci@127.0.0.1:5432/gru_ci?password=***"),
    ("postgresql://u@h/db?sslmode=require&PassWord=Sekr1t Pw9&application_name=x",
     "postgresql://u@h/db?sslmode=require&PassWord=***&application_name=x"),
    ("storage='postgresql://gru_ci:Pw Secret9@127.0.0.1:5432/gru_ci' cannot be read: An exception",
     "storage='postgresql://gru_ci:***@127.0.0.1:5432/gru_ci' cannot be read: An exception"),
    ("Study 's' in postgresql://u:Sekr1t Pw9@[::1]:5432/db; run folders in /o/sweeps/s",
     "Study 's' in postgresql://u:***@[::1]:5432/db; run folders in /o/sweeps/s"),
    ("from postgresql://a:Sekr1t@h1/x to mysql://b:Pw9@h2/y", "from postgresql://a:***@h1/x to mysql://b:***@h2/y"),
    ("connection failed: password='Sekr1t Pw9' host=h", "connection failed: password=*** host=h"),
    ("sqlite:////tmp/a@b/optuna.db?timeout=5", "sqlite:////tmp/a@b/optuna.db?timeout=5"),
])
def test_one_redaction_masks_a_password_wherever_it_sits(text, masked):
    from gru_exp.redact import redact

    assert redact(text) == masked


def test_a_storage_error_never_shows_the_password(sweep_env):
    from gru_exp.config.compose import compose_config
    from gru_exp.errors import ConfigError
    from gru_exp.sweep.storage import make_storage

    name = sweep_env(n_trials=1, epochs=1)
    sc = compose_config([f"sweep={name}", "storage='postgresql://gru_ci:pa@ss Sekr1t Pw9#x@127.0.0.1:1/gru_ci'"],
                        config_name="sweep")
    with pytest.raises(ConfigError) as info:
        make_storage(sc)
    text = str(info.value)
    assert "postgresql://gru_ci:***@127.0.0.1:1/gru_ci" in text
    assert not any(secret in text for secret in ("Sekr1t", "Pw9", "pa@ss", "#x"))


# -- SQLite URLs (rows 157, 158) -------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["?mode=ro&uri=true", "?mode=ro"])
def test_sqlite_uri_parameters_without_a_uri_filename_are_refused(sweep_env, capsys, tmp_path, query):
    name = sweep_env(n_trials=1, epochs=1)
    db = tmp_path / "db" / "optuna.db"
    assert sweep(f"sweep={name}", f"storage='sqlite:///{db}{query}'") == 2
    err = capsys.readouterr().err
    assert f"sqlite:///file:{db}?mode=ro&uri=true" in err and "Traceback" not in err
    assert not (tmp_path / "db").exists() and not (sweep_env.sweeps_dir / name).exists()  # no stray database file


def test_a_read_only_sqlite_uri_still_reads_a_study_for_reports(tmp_path):
    from gru_exp.report.entries import open_study_readonly

    db = tmp_path / "optuna.db"
    optuna.create_study(study_name="q", storage=f"sqlite:///{db}")
    study = open_study_readonly("q", f"sqlite:///file:{db}?mode=ro&uri=true")
    assert study.study_name == "q" and sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]


# -- two workers starting one new study (rows 200, 201) --------------------------------------------------------

def test_a_worker_joining_a_study_another_worker_is_creating_takes_its_id(sweep_env, monkeypatch):
    from gru_exp.config.compose import compose_config
    from gru_exp.sweep import storage as storages

    name = sweep_env(n_trials=1, epochs=1)
    sc = compose_config([f"sweep={name}"], config_name="sweep")
    backend = storages.make_storage(sc)
    # the other worker's create_new_study has just succeeded; it sets the id a moment later
    backend.create_new_study([optuna.study.StudyDirection.MAXIMIZE], sc.study_name)
    other = optuna.load_study(study_name=sc.study_name, storage=backend)
    monkeypatch.setattr(storages.time, "sleep", lambda s: other.set_user_attr("gru_exp_uid", "the-creators-id"))
    study, _ = storages.open_study(sc)
    assert study.user_attrs["gru_exp_uid"] == "the-creators-id"
    folder = storages.claim_study_dir(sc, study)
    assert json.loads((folder / "study.json").read_text())["uid"] == "the-creators-id"


@pytest.mark.slow
def test_two_sweeps_starting_one_new_study_together_both_work_and_it_resumes(sweep_env, tmp_path):
    name = sweep_env(n_trials=2, epochs=1)
    cmd = [sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "study_name=conc"]
    procs = [start(cmd, cwd=REPO) for _ in range(2)]
    results = [finish(p, timeout=600)[::2] for p in procs]  # (exit status, stderr), drained all along
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    storage = f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}"
    trials = optuna.load_study(study_name="conc", storage=storage).trials  # right after: n_trials=2, no more
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"], [t.state.name for t in trials]
    again = subprocess.run([*cmd, "n_trials=3"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="conc", storage=storage)
    pointer = json.loads((sweep_env.sweeps_dir / "conc" / "study.json").read_text())
    assert pointer["uid"] == study.user_attrs["gru_exp_uid"]
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3


# -- a stored study keeps its objectives (review of #12) -------------------------------------------------------

@pytest.mark.parametrize("objective,message", [
    ("{metric: eval_acc, direction: minimize}", "[eval_acc (maximize)], this sweep asks for [eval_acc (minimize)]"),
    ("{metric: eval_loss, direction: maximize}", "[eval_acc (maximize)], this sweep asks for [eval_loss (maximize)]"),
])
def test_a_stored_study_is_never_continued_with_other_objectives(sweep_env, capsys, objective, message):
    """Continuing a study with the direction turned round (or another metric) would read its
    trials' values upside down; the second sweep is refused before any trial, the study unchanged."""
    assert sweep(f"sweep={sweep_env(name='once', n_trials=1, epochs=1)}") == 0
    db = sweep_env.sweeps_dir / "optuna.db"
    before = db.read_bytes()
    capsys.readouterr()
    assert sweep(f"sweep={sweep_env(name='again', n_trials=1, epochs=1, objective=objective)}",
                     "study_name=once") == 2
    err = capsys.readouterr().err
    assert "study_name='once'" in err and message in err and "Traceback" not in err, err
    assert db.read_bytes() == before
