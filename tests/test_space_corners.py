"""Search spaces whose sampled combinations break a rule between training knobs are refused
before any trial (the rule, the combination and the `when:` that avoids it), not failed trial
by trial at run time."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from conftest import REPO

BUCKETS = "  model.bigram_buckets: {type: categorical, choices: [0, 1009]}\n"
SIZE = "  model.bigram_size: {type: int, low: 8, high: 32, step: 8}"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gru_exp.sweep", *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("params,says", [
    (BUCKETS + SIZE, "give it `when: {model.bigram_buckets: [1009]}`"),  # half the trials would fail
    (SIZE, "model.bigram_buckets is fixed by the base"),  # every trial would fail
    ("  model.use_lengths: {type: categorical, choices: [false, true]}\n"
     "  data.bucket_size: {type: categorical, choices: [0, 4]}", "data.bucket_size=4 needs model.use_lengths=true"),
])
def test_a_space_that_can_draw_a_rejected_combination_is_refused_up_front(sweep_env, params, says):
    name = sweep_env(n_trials=4, epochs=1, params=params)
    proc = cli(f"sweep={name}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "Invalid sweep: a trial can draw" in err and says in err and "Traceback" not in err, err
    assert err.count("error:") == 1 and not sweep_env.sweeps_dir.exists()


def test_the_same_space_with_the_when_runs(sweep_env):
    params = BUCKETS + SIZE + ", when: {model.bigram_buckets: [1009]}}"
    name = sweep_env(n_trials=2, epochs=1, params=params.replace("step: 8}, when", "step: 8, when"))
    proc = cli(f"sweep={name}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]


def test_many_knobs_are_checked_pair_by_pair(sweep_env):
    """Beyond FULL_LIMIT corners, every pair of knobs is still met: the rule between the last two is found."""
    filler = "".join(f"  trainer.{k}: {{type: float, low: 0.0, high: 0.1}}\n" for k in ("weight_decay", "grad_clip"))
    filler += "".join(f"  model.{k}: {{type: categorical, choices: [0.0, 0.1, 0.2, 0.3]}}\n"
                      for k in ("dropout", "word_dropout"))
    filler += "  model.hidden_size: {type: categorical, choices: [8, 16, 24, 32]}\n"
    name = sweep_env(n_trials=1, epochs=1, params=filler + BUCKETS + SIZE)
    proc = cli(f"sweep={name}")
    assert proc.returncode == 2 and "model.bigram_size=" in proc.stderr and "when:" in proc.stderr, proc.stderr[-2000:]
