"""``n_trials`` is the study's total, exactly, whoever runs it: 4 workers (two sweep commands of
``n_workers=2`` started at the same moment on one new study) with trials of one short epoch, on
SQLite and on the real PostgreSQL server; the trials are counted as soon as the commands end."""

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
