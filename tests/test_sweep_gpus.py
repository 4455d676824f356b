"""Local sweep workers spread over GPUs (#27): one CUDA_VISIBLE_DEVICES per worker, round robin over
``gpus=`` (or every GPU the machine shows). No GPU here: the workers train on the CPU
(trainer.device=cpu) and the test checks which card each worker was given, as each trial records it."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
from conftest import REPO


def test_workers_are_spread_over_the_gpus_round_robin(sweep_env):
    name = sweep_env(n_trials=3, epochs=1)
    proc = subprocess.run([sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "n_workers=3", "gpus=[5,7]"],
                          cwd=REPO, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "worker 0 on GPU 5; worker 1 on GPU 7; worker 2 on GPU 5" in proc.stderr
    assert "this paddle build has no CUDA" in proc.stderr  # said, not silently claimed
    storage = f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}"
    trials = optuna.load_study(study_name=name, storage=storage).trials
    by_pid: dict[int, set[str]] = {}
    for t in trials:
        by_pid.setdefault(t.user_attrs["pid"], set()).add(t.user_attrs["gpu"])
    assert all(len(g) == 1 for g in by_pid.values()) and set().union(*by_pid.values()) <= {"5", "7"}


def test_a_gpu_named_twice_is_refused_before_the_study_is_made(sweep_env):
    name = sweep_env(n_trials=2, epochs=1)
    proc = subprocess.run([sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "n_workers=2", "gpus=[0,0]"],
                          cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "gpus=['0', '0'] must name each GPU once" in proc.stderr, proc.stderr[-2000:]
    assert not (sweep_env.sweeps_dir / "optuna.db").exists()
