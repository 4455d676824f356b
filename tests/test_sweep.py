"""Optuna sweeps on tiny generated data: pruning, resume, workers, faults, malformed files, summaries."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import LR_SPACE, REPO, finish, start
from conftest import run_sweep as sweep
from optuna.trial import TrialState


def load(sweeps_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweeps_dir / 'optuna.db'}")


def test_hopeless_trials_are_pruned_early(sweep_env):
    name = sweep_env(n_trials=8, epochs=4)
    assert sweep(f"sweep={name}") == 0
    trials = load(sweep_env.sweeps_dir, name).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 8
    for t in pruned:
        assert t.user_attrs["epochs_run"] < 4
        assert max(t.intermediate_values) == t.user_attrs["epochs_run"]
    for t in complete:
        assert t.user_attrs["epochs_run"] == 4 and sorted(t.intermediate_values) == [1, 2, 3, 4]
    best = max(complete, key=lambda t: t.value)
    assert best.value >= 0.8  # the space can learn this data; pruning kept the good trials
    record = sweep_env.sweeps_dir / name / f"trial_{best.number}"
    assert (record / "metrics.json").is_file() and list((record / "vdl").glob("vdlrecords*"))
    assert best.user_attrs["command"].startswith("python -m gru_exp.train ")
    assert "trainer.lr=" in best.user_attrs["command"]
    assert list((sweep_env.sweeps_dir / name / "baseline").glob("vdlrecords*"))


def test_rerun_resumes_without_repeating_trials(sweep_env):
    name = sweep_env(n_trials=2, epochs=1)
    assert sweep(f"sweep={name}") == 0
    first = {t.number: (t.params, t.datetime_start) for t in load(sweep_env.sweeps_dir, name).trials}
    assert sweep(f"sweep={name}") == 0  # nothing left to do
    assert len(load(sweep_env.sweeps_dir, name).trials) == 2
    assert sweep(f"sweep={name}", "n_trials=4") == 0
    trials = load(sweep_env.sweeps_dir, name).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert {t.number: (t.params, t.datetime_start) for t in trials[:2]} == first
    assert len({t.params["trainer.lr"] for t in trials}) == 4  # the resumed sampler drew new values


def test_repeats_average_seeds_into_sub_runs(sweep_env):
    name = sweep_env(n_trials=1, epochs=2, repeats=2)
    assert sweep(f"sweep={name}") == 0
    (trial,) = load(sweep_env.sweeps_dir, name).trials
    assert trial.state == TrialState.COMPLETE
    values = trial.user_attrs["values"]
    assert len(values) == 2 and trial.value == pytest.approx(sum(values) / 2)
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4]  # repeat r reports at r * epochs + epoch
    trial_dir = sweep_env.sweeps_dir / name / "trial_0"
    assert sorted(p.name for p in trial_dir.glob("seed_*")) == ["seed_42", "seed_43"]


def test_a_failing_trial_is_fail_with_its_error_and_the_sweep_goes_on(sweep_env):
    # A value only the data can refuse (the archive has 200 training reviews); a combination the
    # rules between knobs refuse is caught before any trial (tests/test_space_corners.py).
    params = "  data.val_size: {type: categorical, choices: [40, 400]}"
    name = sweep_env(n_trials=4, epochs=1, params=params)
    assert sweep(f"sweep={name}") == 0
    trials = load(sweep_env.sweeps_dir, name).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all(t.params == {"data.val_size": 400} for t in failed)
    assert all("data.val_size=400 must be smaller than the 200 training reviews" in t.user_attrs["error"]
               for t in failed)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert "data.val_size=400 must be smaller" in (sweep_env.sweeps_dir / name / "summary.md").read_text()


def test_layer_dropout_is_only_sampled_with_several_layers(sweep_env):
    params = ("  model.num_layers: {type: int, low: 1, high: 2}\n"
              "  model.layer_dropout: {type: float, low: 0.0, high: 0.5, when: {model.num_layers: [2]}}")
    name = sweep_env(n_trials=6, epochs=1, params=params)
    assert sweep(f"sweep={name}") == 0
    trials = load(sweep_env.sweeps_dir, name).trials
    assert {t.params["model.num_layers"] for t in trials} == {1, 2}
    for t in trials:
        assert ("model.layer_dropout" in t.params) == (t.params["model.num_layers"] == 2)
        assert t.state == TrialState.COMPLETE


def test_a_condition_on_a_base_key_that_holds_samples_the_parameter(sweep_env):
    """The base has model.num_layers=2, so `when: {model.num_layers: [2]}` holds in every trial (it
    was never sampled before: the condition looked only at searched keys)."""
    name = sweep_env(n_trials=2, epochs=1, params="  model.layer_dropout: {type: float, low: 0.0, high: 0.5, "
                                                  "when: {model.num_layers: [2]}}")
    assert sweep(f"sweep={name}") == 0
    trials = load(sweep_env.sweeps_dir, name).trials
    assert len(trials) == 2 and all("model.layer_dropout" in t.params for t in trials)


@pytest.mark.parametrize("params,extra,message", [
    ("  model.hiden_size: {type: int, low: 4, high: 8}", {}, "params.model.hiden_size: no such training key"),
    ("  model.hidden_size: {type: int, low: 16, high: 8}", {}, "low=16.0 > high=8.0"),
    ("  model.dropout: {type: float, low: 0.1, high: 1.2}", {}, "model.dropout=1.2 must be in [0, 1)"),
    ("  trainer.lr: {type: float, low: 0, high: 0.1, log: true}", {}, "log=true needs low > 0"),
    ("  model.direction: {type: categorical, choices: []}", {}, "has no choices"),
    # a `when` that could never hold was a silent no-op (the parameter never sampled; row 217)
    ("  model.layer_dropout: {type: float, low: 0.0, high: 0.5, when: {model.num_layers: [2]}}\n"
     "  model.num_layers: {type: int, low: 1, high: 2}", {},
     "params.model.layer_dropout.when: model.num_layers must be listed before model.layer_dropout"),
    ("  model.num_layers: {type: int, low: 1, high: 2}\n"
     "  model.layer_dropout: {type: float, low: 0.0, high: 0.5, when: {model.num_layers: [3, '2']}}", {},
     "model.num_layers in [3, '2'] can never be true (model.num_layers is searched over [1, 2] (int))"),
    ("  model.layer_dropout: {type: float, low: 0.0, high: 0.5, when: {model.num_layers: [1]}}", {},
     "model.num_layers in [1] is never true: model.num_layers is not searched and the base sets it to 2"),
    (LR_SPACE, {"pruner": "{name: sometimes}"}, "pruner.name='sometimes' must be one of"),
])
def test_malformed_sweep_files_are_rejected_before_any_trial(sweep_env, capsys, params, extra, message):
    name = sweep_env(params=params, **extra)
    assert sweep(f"sweep={name}") == 2
    assert message in capsys.readouterr().err
    assert not (sweep_env.sweeps_dir / "optuna.db").exists()


def test_unknown_sampler_on_the_command_line_is_rejected(sweep_env, capsys):
    name = sweep_env()
    assert sweep(f"sweep={name}", "sampler.name=bayes") == 2
    assert "sampler.name='bayes' must be one of tpe, random, grid, cmaes, qmc, nsga2" in capsys.readouterr().err


def test_summary_and_csv_agree_with_the_study(sweep_env):
    name = sweep_env(n_trials=5, epochs=3)
    assert sweep(f"sweep={name}") == 0
    study = load(sweep_env.sweeps_dir, name)
    rows = list(csv.DictReader((sweep_env.sweeps_dir / name / "trials.csv").open()))
    assert len(rows) == len(study.trials)
    by_number = {t.number: t for t in study.trials}
    for row in rows:
        t = by_number[int(row["number"])]
        assert row["state"] == t.state.name
        assert float(row["trainer.lr"]) == pytest.approx(t.params["trainer.lr"])
        if t.state == TrialState.COMPLETE:
            assert float(row["value"]) == pytest.approx(t.value)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert float(complete[0]["value"]) == pytest.approx(study.best_value)  # sorted best first
    summary = (sweep_env.sweeps_dir / name / "summary.md").read_text()
    assert f"**Best: trial {study.best_trial.number}**" in summary
    assert f"{100 * study.best_trial.user_attrs['test_acc']:.2f}%" in summary
    n_pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    assert f"{n_pruned} pruned" in summary
    span = max(t.datetime_complete for t in study.trials) - min(t.datetime_start for t in study.trials)
    assert f"in {span.total_seconds() / 60:.1f} min from the first trial's start" in summary

    from gru_exp.report.__main__ import (
        main as report,  # the report finds the study through study.json
    )

    assert report([str(sweep_env.sweeps_dir / name)]) == 0
    text = (sweep_env.sweeps_dir / name / "report.md").read_text()
    assert f"| 1 | trial {study.best_trial.number} | COMPLETE" in text
    assert f"{100 * study.best_trial.user_attrs['test_acc']:.2f} ± 0.00" in text
    assert (sweep_env.sweeps_dir / name / "intermediate_values.png").stat().st_size > 10_000


def _popen_sweep(*args: str) -> subprocess.Popen:
    return start([sys.executable, "-m", "gru_exp.sweep", *args], cwd=REPO, env=dict(os.environ),
                 stdout=subprocess.DEVNULL)


def _wait_for_running(sweeps_dir: Path, name: str, timeout: float = 120) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = []
        if (sweeps_dir / name / "trial_0").exists():  # the worker has created the storage and a trial
            running = [t for t in load(sweeps_dir, name).trials if t.state == TrialState.RUNNING
                       and t.intermediate_values]
            if running:
                return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial started")


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_exactly(sweep_env):
    name = sweep_env(n_trials=6, epochs=2)
    proc = subprocess.run([sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "n_workers=2"], cwd=REPO,
                          env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "database is locked" not in proc.stderr
    trials = load(sweep_env.sweeps_dir, name).trials
    assert len(trials) == 6 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    ran = [int(n) for n in re.findall(r"Worker done: (\d+) trials run here \(0 failed\)", proc.stderr)]
    assert len(ran) == 2 and sum(ran) == 6, ran  # each worker's own count; together the study's 6
    assert len({t.user_attrs["pid"] for t in trials}) == sum(n > 0 for n in ran)  # one pid per worker that ran
    assert len({t.params["trainer.lr"] for t in trials}) == 6  # and never drew the same values
    assert re.search(rf"Study '{name}': 6/6 trials finished \(\d complete, \d pruned; 0 failed\), best eval_acc "
                     r"\d+\.\d\d% \(trial \d, maximize\); this worker \d+\.\d min", proc.stderr), proc.stderr[-2000:]
    epoch_lines = [line for line in proc.stderr.splitlines() if "gru_exp.train.callbacks" in line and "epoch " in line]
    assert epoch_lines and all(re.search(r" - \[trial \d+\] epoch ", line) for line in epoch_lines), epoch_lines[:3]


@pytest.mark.slow
def test_sigkilled_worker_trial_is_failed_by_heartbeat_and_retried(sweep_env):
    name = sweep_env(n_trials=2, epochs=40, pruner="{name: none}")
    worker = _popen_sweep(f"sweep={name}")
    victim = _wait_for_running(sweep_env.sweeps_dir, name)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert sweep(f"sweep={name}") == 0  # at once: the zombie goes stale (3 s) while this worker runs
    trials = load(sweep_env.sweeps_dir, name).trials
    zombie = trials[victim.number]
    assert zombie.state == TrialState.FAIL
    retries = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
               == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == zombie.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    summary = (sweep_env.sweeps_dir / name / "summary.md").read_text()
    assert f"trial {victim.number}: its worker stopped sending heartbeats (killed?); retried as trial " \
           f"{retries[0].number}" in summary


@pytest.mark.slow
def test_sigterm_marks_the_trial_and_the_next_run_resumes_it(sweep_env):
    name = sweep_env(n_trials=1, epochs=40, pruner="{name: none}")
    worker = _popen_sweep(f"sweep={name}")
    victim = _wait_for_running(sweep_env.sweeps_dir, name)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 130
    trials = load(sweep_env.sweeps_dir, name).trials
    assert trials[victim.number].state == TrialState.FAIL
    assert "interrupted (SIGTERM)" in trials[victim.number].user_attrs["error"]
    assert [t.state for t in trials[victim.number + 1:]] == [TrialState.WAITING]
    assert sweep(f"sweep={name}") == 0
    trials = load(sweep_env.sweeps_dir, name).trials
    assert trials[-1].state == TrialState.COMPLETE and trials[-1].params == trials[victim.number].params


def test_enqueue_baseline_runs_the_notebook_configuration_first(sweep_env):
    params = ("  model.num_layers: {type: int, low: 1, high: 2}\n"
              "  model.dropout: {type: float, low: 0.1, high: 0.6}\n" + LR_SPACE + "\n"
              "  model.bigram_buckets: {type: categorical, choices: [0, 64]}\n"
              "  model.bigram_size: {type: int, low: 4, high: 8, when: {model.bigram_buckets: [64]}}")
    name = sweep_env(n_trials=2, epochs=1, params=params, enqueue_baseline="true")
    assert sweep(f"sweep={name}") == 0
    assert sweep(f"sweep={name}", "n_trials=3") == 0  # resuming does not enqueue it again
    trials = load(sweep_env.sweeps_dir, name).trials
    assert trials[0].user_attrs["baseline"] is True
    # knobs the notebook did not have take their declared defaults (no bigram bag: bigram_size unsampled)
    assert trials[0].params == {"model.num_layers": 2, "model.dropout": 0.5, "trainer.lr": 0.001,
                                "model.bigram_buckets": 0}
    assert "model.num_layers=2 model.dropout=0.5 trainer.lr=0.001" in trials[0].user_attrs["command"]
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1


def test_prune_replay_reproduces_the_source_and_applies_the_pruner(sweep_env):
    import importlib.util
    import statistics

    spec = importlib.util.spec_from_file_location("prune_replay", REPO / "benchmarks" / "prune_replay.py")
    replay_mod = importlib.util.module_from_spec(spec)
    sys.modules["prune_replay"] = replay_mod  # its dataclass needs its module registered
    spec.loader.exec_module(replay_mod)
    name = sweep_env(n_trials=5, epochs=3, pruner="{name: none}")
    assert sweep(f"sweep={name}") == 0
    storage = f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}"
    source, wall, gap = replay_mod.load_source(storage, name)
    assert [len(t.values) for t in source] == [3] * 5

    same = replay_mod.replay(source, replay_mod.make_pruner("name=none"), 1, gap, True)
    assert (same["epochs"], same["pruned"]) == (15, 0)
    assert same["best"] == max(t.value for t in source)
    # The timing model, deterministically: one worker runs each trial for its measured duration (from
    # the study's own start and end times; never less than its recorded epochs and test), then waits
    # the median gap. (Comparing with the measured wall time instead depended on how even the gaps were.)
    stored = sorted(load(sweep_env.sweeps_dir, name).trials, key=lambda t: t.number)
    gaps = sorted((b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(stored, stored[1:]))
    assert gap == pytest.approx(gaps[len(gaps) // 2] if len(gaps) % 2 else sum(gaps[1:3]) / 2, abs=1e-9)
    durations = [max((t.datetime_complete - t.datetime_start).total_seconds(), sum(s.epoch_s) + s.test_s)
                 for t, s in zip(stored, source)]
    assert same["wall_s"] == pytest.approx(sum(durations) + 4 * gap, rel=1e-9)
    assert wall == pytest.approx((stored[-1].datetime_complete - stored[0].datetime_start).total_seconds())

    # The median pruner by hand: from the second trial on, stop at the first epoch below the
    # median of the complete trials at that epoch.
    done, expected_epochs = [], 0
    for t in source:
        stop = next((e for e in range(1, 3) if done and t.values[e - 1] < statistics.median(d[e - 1] for d in done)),
                    None)
        expected_epochs += stop or 3
        if stop is None:
            done.append(t.values)
    median = replay_mod.replay(source, replay_mod.make_pruner("name=median,n_startup_trials=1,n_warmup_steps=1"),
                               1, gap, True)
    assert 0 < median["pruned"] == 5 - len(done) and median["epochs"] == expected_epochs
    hyperband = "name=hyperband,min_resource=1,reduction_factor=3"  # brackets hash the study name
    assert all(replay_mod.replay(source, replay_mod.make_pruner(hyperband), 1, gap, True, name) ==
               replay_mod.replay(source, replay_mod.make_pruner(hyperband), 1, gap, True, name) for _ in range(3))
    two = replay_mod.replay(source, replay_mod.make_pruner("name=none"), 2, gap, True)
    assert two["epochs"] == 15 and two["wall_s"] < same["wall_s"]


def test_editing_conf_while_a_sweep_runs_breaks_none_of_its_trials(sweep_env, monkeypatch, tmp_path):
    import shutil

    import gru_exp.sweep.worker
    from gru_exp.config import compose, sources

    conf = tmp_path / "conf"
    shutil.copytree(sources.CONF_DIR, conf)
    monkeypatch.setattr(compose, "CONF_DIR", str(conf))
    monkeypatch.setattr(sources, "CONF_DIR", str(conf))
    real_run_trial = gru_exp.sweep.worker.run_trial

    def run_trial_then_edit_conf(trial, sc, compose):
        value = real_run_trial(trial, sc, compose)
        with open(conf / "config.yaml", "a") as fh:  # a key this worker's schema lacks
            fh.write(f"new_knob_{trial.number}: 1\n")
        return value

    monkeypatch.setattr(gru_exp.sweep.worker, "run_trial", run_trial_then_edit_conf)
    name = sweep_env(n_trials=3, epochs=1, pruner="{name: none}")
    assert sweep(f"sweep={name}") == 0
    assert [t.state for t in load(sweep_env.sweeps_dir, name).trials] == [TrialState.COMPLETE] * 3


class _AlwaysPrune:
    """An optuna.Trial stand-in whose pruner says "stop" at every step."""

    number = 0

    def __init__(self):
        self.reported = []

    def report(self, value, step):
        self.reported.append(step)

    def should_prune(self):
        return True


@pytest.mark.parametrize("repeats,repeat,epoch,prunes", [
    (1, 0, 1, True), (1, 0, 3, False),  # the last epoch of the only run: complete, not pruned
    (2, 0, 3, True), (2, 1, 2, True), (2, 1, 3, False),  # with repeats: only the last repeat's last epoch
])
def test_the_pruner_is_not_asked_at_a_trials_last_step(repeats, repeat, epoch, prunes):
    from types import SimpleNamespace

    from gru_exp.sweep.objective import TrialReporter
    from gru_exp.train.loop import StopRun

    trial = _AlwaysPrune()
    reporter = TrialReporter(trial, repeat, 3, [[0.5, 0.6, 0.7]] * repeat, "eval_acc", "best", "maximize", 1.0,
                             repeats)
    state = SimpleNamespace(history=[SimpleNamespace(eval_acc=0.5 + 0.1 * e) for e in range(epoch)])
    reporter.values = [0.5 + 0.1 * e for e in range(epoch - 1)]
    if prunes:
        with pytest.raises(StopRun):
            reporter.on_epoch_end(state)
    else:
        reporter.on_epoch_end(state)
    assert trial.reported == [repeat * 3 + epoch]


def test_two_objectives_keep_a_pareto_front_in_summary_and_report(sweep_env):
    """accuracy up and training minutes down: NSGA-II, no pruning, the front in summary.md, trials.csv
    and the report (a figure and a table), and "best" means the front."""
    from gru_exp.report.__main__ import main as report

    name = sweep_env(n_trials=3, epochs=1, sampler="nsga2", pruner="{name: none}",
                     objectives="[{metric: eval_acc, direction: maximize}, {metric: train_minutes, direction: minimize}]")
    assert sweep(f"sweep={name}") == 0
    study = load(sweep_env.sweeps_dir, name)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and all(len(t.values) == 2 for t in complete)
    front = sorted(t.number for t in study.best_trials)
    folder = sweep_env.sweeps_dir / name
    summary = (folder / "summary.md").read_text()
    assert "Pareto front" in summary
    for number in front:
        assert re.search(rf"^\| {number} \|", summary, re.M), summary
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert sorted(int(r["number"]) for r in rows if r["pareto"] == "True") == front
    assert all(r["objective:eval_acc"] and r["objective:train_minutes"] for r in rows)
    assert report(["--top", "3", str(folder)]) == 0
    text = (folder / "report.md").read_text()
    assert "Pareto" in text and (folder / "pareto_front.png").stat().st_size > 5_000


@pytest.mark.slow
@pytest.mark.parametrize("signum,when", [(signal.SIGINT, "training"), (signal.SIGTERM, "loading")])
def test_a_signal_to_the_parent_stops_both_workers_even_when_started_in_the_background(sweep_env, signum, when):
    """A script's `cmd &` starts the parent with SIGINT ignored, and its workers inherited that: a
    SIGINT was swallowed and the whole study ran. SIGTERM while the workers were still importing
    paddle killed them in paddle's handler (a C++ dump). Now: exit 130, no dump, the study consistent."""
    name = sweep_env(n_trials=6, epochs=40, pruner="{name: none}")
    proc = start([sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "n_workers=2"], cwd=REPO,
                 env=dict(os.environ), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    if when == "training":
        _wait_for_running(sweep_env.sweeps_dir, name)
    else:
        proc.err.wait_for("Started 2 workers", timeout=120)
    proc.send_signal(signum)
    code, stdout, stderr = finish(proc, timeout=120)
    assert code == 130, stderr[-3000:]
    assert "FatalError" not in stdout + stderr and "C++ Traceback" not in stdout + stderr
    # The parent creates the study before it starts the workers, so it is there in either case (a
    # worker stopped while loading has not made its folder yet: no check may depend on the folder).
    trials = load(sweep_env.sweeps_dir, name).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) < 6
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # each worker recorded its trial
    if when == "training":  # a trial was running: it was recorded as interrupted and queued again
        assert [t for t in trials if t.state == TrialState.FAIL and "interrupted" in t.user_attrs.get("error", "")]
