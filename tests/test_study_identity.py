"""A study keeps what gives its values their meaning (objective metric, reduce, direction, repeats,
the training base); a resume that changes any of it is refused before anything is written.
Storages that cannot keep a study, and a metric listed twice, are refused up front."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import REPO


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gru_exp.sweep", *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def made(sweep_env):
    """A one-trial study made by the CLI, and how to check that a refused resume changed nothing."""
    name = sweep_env(name="once", n_trials=1, epochs=1)
    proc = cli(f"sweep={name}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    home = sweep_env.sweeps_dir.parent.parent
    before = snapshot(home)

    def unchanged() -> bool:
        return snapshot(home) == before

    made.name, made.unchanged = name, unchanged
    return made


@pytest.mark.parametrize("change,was,asks", [
    (["objective.reduce=last"], "objective.reduce='best'", "objective.reduce='last'"),
    (["repeats=2"], "repeats=1", "repeats=2"),
    (["objective.metric=eval_loss", "objective.direction=minimize"], "[eval_acc (maximize)]", "[eval_loss (minimize)]"),
])
def test_a_resume_that_changes_what_values_mean_is_refused_and_writes_nothing(made, change, was, asks):
    proc = cli(f"sweep={made.name}", *change)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "study_name='once'" in err and was in err and (asks is None or asks in err), err
    assert "Traceback" not in err and "another study_name" in err and err.count("error:") == 1
    assert made.unchanged()


def test_another_training_base_is_refused(made, sweep_env):
    """trainer.epochs=2 instead of 1 in the base: "best eval_acc" would mean something else."""
    other = sweep_env(name="again", n_trials=2, epochs=2)
    proc = cli(f"sweep={other}", "study_name=once")
    assert proc.returncode == 2 and "base: trainer.epochs=1" in proc.stderr and "base: trainer.epochs=2" in proc.stderr, \
        proc.stderr[-3000:]
    assert made.unchanged()


def test_another_split_seed_in_the_base_is_refused(sweep_env):
    """data.split_seed fixes the validation texts every value is measured on: a resume with another
    one would rank trials scored on other texts under one best (found by an adversarial pass)."""
    name = sweep_env(name="split", n_trials=1, epochs=1)
    text = (sweep_env.sweeps_dir.parent.parent.parent / "sweeps" / f"{name}.yaml").read_text()
    (sweep_env.sweeps_dir.parent.parent.parent / "sweeps" / "split1.yaml").write_text(
        text.replace("base: [", "base: [data.split_seed=1, "))
    (sweep_env.sweeps_dir.parent.parent.parent / "sweeps" / "split2.yaml").write_text(
        text.replace("base: [", "base: [data.split_seed=2, "))
    assert cli("sweep=split1").returncode == 0
    home = sweep_env.sweeps_dir.parent.parent
    before = snapshot(home)
    proc = cli("sweep=split2", "n_trials=2")
    assert proc.returncode == 2 and "base: data.split_seed=1" in proc.stderr and "base: data.split_seed=2" in proc.stderr, \
        proc.stderr[-3000:]
    assert snapshot(home) == before


def test_the_same_settings_resume_and_a_one_item_list_is_the_same_objective(made, sweep_env):
    listed = sweep_env(name="listed", n_trials=2, epochs=1,
                       objectives="[{metric: eval_acc, reduce: best, direction: maximize}]")
    proc = cli(f"sweep={listed}", "study_name=once")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="once", storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    assert len(study.trials) == 2 and study.user_attrs["gru_exp_identity"]["objectives"] == [
        {"metric": "eval_acc", "reduce": "best", "direction": "maximize"}]


def test_a_study_from_before_identities_resumes_and_stores_its_identity_then(made, sweep_env):
    db = sweep_env.sweeps_dir / "optuna.db"
    with sqlite3.connect(db) as con:  # as gru-exp left a study before it stored identities
        con.execute("DELETE FROM study_user_attributes WHERE key = 'gru_exp_identity'")
    proc = cli(f"sweep={made.name}", "objective.reduce=last", "n_trials=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "had no stored identity" in proc.stderr
    study = optuna.load_study(study_name="once", storage=f"sqlite:///{db}")
    assert study.user_attrs["gru_exp_identity"]["objectives"][0]["reduce"] == "last"
    proc = cli(f"sweep={made.name}", "n_trials=2")  # now it is stored: reduce=best is another meaning
    assert proc.returncode == 2 and "objective.reduce='last'" in proc.stderr


@pytest.mark.parametrize("storage,why", [
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
    ("sqlite:///file:{tmp}/x.db?mode=memory&uri=true", "in-memory"),
    ("sqlite:///file:{tmp}/x.db?mode=ro&uri=true", "read-only"),
    ("journal:", "no journal file"),
])
def test_a_storage_that_cannot_keep_the_study_is_refused_before_anything_is_written(sweep_env, tmp_path, storage,
                                                                                     why):
    name = sweep_env(n_trials=1, epochs=1)
    proc = cli(f"sweep={name}", f"storage='{storage.format(tmp=tmp_path / 'db')}'")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "cannot keep a study" in proc.stderr and why in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "db").exists()


def test_a_metric_listed_twice_is_refused(sweep_env):
    name = sweep_env(n_trials=1, epochs=1, sampler="nsga2", pruner="{name: none}",
                     objectives="[{metric: eval_acc, direction: maximize}, {metric: eval_acc, reduce: last, "
                                "direction: maximize}]")
    proc = cli(f"sweep={name}")
    assert proc.returncode == 2 and "objectives lists eval_acc more than once" in proc.stderr, proc.stderr[-3000:]
    assert not sweep_env.sweeps_dir.exists()


def test_a_resume_on_other_data_or_with_another_searched_set_is_refused(made, sweep_env, tmp_path):
    """The same base on another archive (data.path may move, the data may not), and a searched knob
    moved into the base, used to continue the study: two datasets, or two meanings of a column,
    under one "best"."""
    from synthetic_imdb import make_imdb_archive

    space = sweep_env.sweeps_dir.parent.parent.parent / "sweeps" / f"{made.name}.yaml"
    other = make_imdb_archive(tmp_path / "other.tar.gz", n_per_class=100, seed=7)
    text = space.read_text()
    path = text.split("data.path=", 1)[1].split(",", 1)[0]
    (space.parent / "moved.yaml").write_text(text.replace(path, str(other)))
    proc = cli("sweep=moved", f"study_name={made.name}", "n_trials=2")
    assert proc.returncode == 2 and "data (SHA-256 of data.path)" in proc.stderr, proc.stderr[-3000:]
    assert made.unchanged()
    (space.parent / "fixed.yaml").write_text(text.replace("params:\n", "params:\n  model.dropout: {type: float, low: 0.1, "
                                                                     "high: 0.3}\n", 1))
    proc = cli("sweep=fixed", f"study_name={made.name}", "n_trials=2")
    assert proc.returncode == 2 and "params (the searched keys)" in proc.stderr, proc.stderr[-3000:]
    assert made.unchanged()


def test_a_study_from_before_identities_is_compared_with_the_base_it_stored(made, sweep_env):
    """It used to take the identity of whatever resumed it first (a 4-epoch base into a 2-epoch study)."""
    db = sweep_env.sweeps_dir / "optuna.db"
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM study_user_attributes WHERE key = 'gru_exp_identity'")
    longer = sweep_env(name="longer", n_trials=2, epochs=2)
    proc = cli(f"sweep={longer}", f"study_name={made.name}")
    assert proc.returncode == 2 and "base: trainer.epochs=1" in proc.stderr, proc.stderr[-3000:]


def test_a_refused_resume_leaves_a_journal_byte_for_byte(sweep_env, tmp_path):
    """Optuna's journal records even a duplicate create_study: a refused resume appended a line."""
    name = sweep_env(n_trials=1, epochs=1)
    journal = tmp_path / "j.log"
    assert cli(f"sweep={name}", f"storage=journal:{journal}").returncode == 0
    before = journal.read_bytes()
    proc = cli(f"sweep={name}", f"storage=journal:{journal}", "repeats=2")
    assert proc.returncode == 2 and "repeats=1" in proc.stderr, proc.stderr[-3000:]
    assert journal.read_bytes() == before
