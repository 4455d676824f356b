"""``n_trials`` is the study's total, exactly, whoever runs it: 4 workers (two sweep commands of
``n_workers=2`` started at the same moment on one new study) with trials of one short epoch, on
SQLite and on the real PostgreSQL server; the trials are counted as soon as the commands end. And,
without a race to win, a worker that finds the last trial running on another worker starts none."""

from __future__ import annotations

import os
import re
import sys
import uuid

import optuna
import pytest
from conftest import REPO, finish, pg_unreachable, start
from optuna.trial import TrialState

PG_URL = os.environ.get("GRU_EXP_TEST_PG_URL", "")
PG_REASON = pg_unreachable(PG_URL)
if PG_REASON and os.environ.get("GRU_EXP_REQUIRE_PG") == "1":
    raise RuntimeError(f"GRU_EXP_REQUIRE_PG=1 but {PG_REASON}")
N_TRIALS = 8

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


def _storage(kind: str, sweeps_dir) -> str:
    return PG_URL if kind == "postgresql" else f"sqlite:///{sweeps_dir / 'optuna.db'}"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    bool(PG_REASON), reason=PG_REASON))])
def test_four_workers_finish_exactly_n_trials_of_one_study(sweep_env, kind):
    name = sweep_env(name=f"budget_{kind}_{uuid.uuid4().hex[:8]}", n_trials=N_TRIALS, epochs=1, pruner="{name: none}")
    env = {**os.environ, **({"GRU_EXP_STORAGE": PG_URL} if kind == "postgresql" else {})}
    cmd = [sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "n_workers=2"]
    procs = [start(cmd, cwd=REPO, env=env) for _ in range(2)]
    results = [finish(p, timeout=400) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]

    trials = optuna.load_study(study_name=name, storage=_storage(kind, sweep_env.sweeps_dir)).trials
    states = [t.state for t in trials]
    assert len(trials) == N_TRIALS and set(states) == {TrialState.COMPLETE}, \
        f"{len(trials)} trials for n_trials={N_TRIALS}: {[s.name for s in states]}"
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    assert len({t.user_attrs["pid"] for t in trials}) <= 4  # the four workers of the two commands, no other
    folders = sorted(p.name for p in (sweep_env.sweeps_dir / name).glob("trial_*"))
    assert folders == sorted(f"trial_{n}" for n in range(N_TRIALS)), folders
    # the four workers' own counts (each says how many trials it ran) add up to the budget, no more
    ran = [int(n) for _, _, err in results for n in re.findall(r"Worker done: (\d+) trials run here \(0 failed\)", err)]
    assert len(ran) == 4 and sum(ran) == N_TRIALS, ran


def test_a_trial_running_on_another_worker_counts_toward_n_trials(sweep_env):
    """The deterministic half of the test above: a worker that finds the study one trial short of
    n_trials while another worker runs that trial (alive: its heartbeat is beating) starts none, waits
    for it, and ends with exactly n_trials (issue #29's mutation check: a worker that counted only
    finished trials overshot, which the race above catches only when the workers' timing allows)."""
    import threading
    import warnings

    name = sweep_env(name=f"wait_{uuid.uuid4().hex[:8]}", n_trials=1, epochs=1, pruner="{name: none}")
    cmd = [sys.executable, "-m", "gru_exp.sweep", f"sweep={name}"]
    code, _, err = finish(start(cmd, cwd=REPO), timeout=300)  # the study, made and with one finished trial
    assert code == 0, err[-2000:]
    storage = optuna.storages.RDBStorage(_storage("sqlite", sweep_env.sweeps_dir), heartbeat_interval=1,
                                         grace_period=3)
    study = optuna.load_study(study_name=name, storage=storage)
    with warnings.catch_warnings():  # "heartbeat is meant for optimize()": this test beats itself
        warnings.simplefilter("ignore", UserWarning)
        other = study.ask()  # another worker's trial, running
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), other.number)
    stop = threading.Event()

    def beat() -> None:  # that worker is alive
        while not stop.is_set():
            storage.record_heartbeat(trial_id)
            stop.wait(0.5)

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        worker = start([*cmd, "n_trials=2"], cwd=REPO)
        worker.err.wait_for("Waiting for 1 running trial(s) of other workers", timeout=300)
        study.tell(other, 0.5)  # the other worker's trial finishes
    finally:
        stop.set()
        beating.join(10)
    code, _, err = finish(worker, timeout=300)
    assert code == 0, err[-2000:]
    assert "Worker done: 0 trials run here (0 failed)" in err, err[-2000:]
    trials = optuna.load_study(study_name=name, storage=_storage("sqlite", sweep_env.sweeps_dir)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
