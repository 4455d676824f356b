"""Faults during a sweep reported as what they are: a disk that fills up mid-trial is "no space
left on device" at once (exit 2, which path), not "storage unreachable" after minutes of retries,
and the study is left to resume. A real full filesystem: a small tmpfs mounted for the test (needs
root, as CI runs; skipped otherwise, saying why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
from conftest import REPO, fill_disk, finish, start
from optuna.trial import TrialState


def sweep_until_full(sweep_env, disk: Path, home: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, Path]:
    """Start a long sweep with its outputs under ``home``, fill ``disk`` during trial 0's training."""
    name = sweep_env(name="full", n_trials=2, epochs=400, pruner="{name: none}")
    env = {**os.environ, "GRU_EXP_HOME": str(home)}
    proc = start([sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", *args], cwd=REPO, env=env)
    record = home / "outputs" / "sweeps" / name / "trial_0" / "metrics.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(record.read_text())["epochs_done"] >= 1:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, finish(proc, timeout=60)[2][-3000:]
    filler = fill_disk(disk)
    filled = time.monotonic()
    code, _, err = finish(proc, timeout=150)
    return subprocess.CompletedProcess(proc.args, code, "", err), time.monotonic() - filled, filler


def test_a_full_disk_under_the_trials_stops_the_sweep_at_once_and_queues_the_trial(sweep_env, small_disk, tmp_path):
    db = tmp_path / "db" / "optuna.db"
    proc, took, filler = sweep_until_full(sweep_env, small_disk, small_disk, f"storage=sqlite:///{db}")
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "No space left on device while writing" in err and str(small_disk) in err, err[-3000:]
    assert "unreachable" not in err and "Traceback" not in err and took < 60, (took, err[-3000:])
    filler.unlink()
    trials = optuna.load_study(study_name="full", storage=f"sqlite:///{db}").trials
    assert trials[0].state == TrialState.FAIL and "No space left" in trials[0].user_attrs["error"]
    assert not trials[0].user_attrs.get("raised")  # not counted against max_failures
    waiting = [t for t in trials if t.state == TrialState.WAITING]  # the next run starts with it
    assert [t.user_attrs.get("retried_from") for t in waiting] == [0]
    # with space again, the same command finishes the study, trial 0's configuration first
    again = subprocess.run([sys.executable, "-m", "gru_exp.sweep", "sweep=full", f"storage=sqlite:///{db}"], cwd=REPO,
                           env={**os.environ, "GRU_EXP_HOME": str(small_disk)}, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="full", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params


def test_a_full_disk_under_the_study_database_is_no_space_not_unreachable(sweep_env, small_disk, tmp_path):
    db = small_disk / "optuna.db"  # the run folders elsewhere: the database is what cannot grow
    proc, took, filler = sweep_until_full(sweep_env, small_disk, tmp_path / "home", f"storage=sqlite:///{db}")
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "No space left on device for the study's storage" in err and str(db) in err, err[-3000:]
    assert "unreachable" not in err and "Traceback" not in err and took < 60, (took, err[-3000:])
    filler.unlink()
    study = optuna.load_study(study_name="full", storage=f"sqlite:///{db}")
    assert study.trials[0].state in (TrialState.FAIL, TrialState.RUNNING)  # RUNNING: failed by heartbeat on resume
