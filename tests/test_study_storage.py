"""A study's storage: SQLite URLs that would make stray files, two workers starting one new study
at once, and a study continued only with its own objectives. Rows of docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from conftest import REPO, finish, start
from conftest import run_sweep as sweep


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

@pytest.mark.parametrize("space,message", [
    ("  trainer.lr: {type: categorical, choices: [0.001, 0.01]}", "trainer.lr was searched as FloatDistribution"),
    ("  trainer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}", None),  # a narrower range: continues
])
def test_a_stored_study_is_never_continued_with_a_space_optuna_cannot_continue(sweep_env, capsys, space, message):
    """Another kind (float -> categorical) or other choices for a searched key used to start the
    sweep: every trial then failed at its first suggestion, and the study stopped for good at
    max_failures (adversarial pass 4). Refused before any trial, the study unchanged."""
    assert sweep(f"sweep={sweep_env(name='once', n_trials=1, epochs=1)}") == 0
    db = sweep_env.sweeps_dir / "optuna.db"
    before = db.read_bytes()
    capsys.readouterr()
    assert sweep(f"sweep={sweep_env(name='other', n_trials=1, epochs=1, params=space)}", "study_name=once") == (
        2 if message else 0)
    err = capsys.readouterr().err
    if message:
        assert "cannot go on with this search space" in err and message in err and "Traceback" not in err, err
        assert db.read_bytes() == before
    assert sweep(f"sweep={sweep_env(name='once', n_trials=2, epochs=1)}") == 0  # the stored space goes on


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
