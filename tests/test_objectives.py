"""Objectives by their own metric and direction: a one-item ``objectives:`` list is the single
objective (the pruner gets its metric), and the progress line, summary.md, trials.csv and the
report show each objective under its own name (a loss is never a percentage)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import optuna
import pytest
from conftest import REPO
from optuna.trial import TrialState

LOSS = "[{metric: eval_loss, reduce: best, direction: minimize}]"


def cli(*args: str, module: str = "gru_exp.sweep", timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def test_a_one_item_objectives_list_minimising_eval_loss_is_the_objective_everywhere(sweep_env):
    name = sweep_env(n_trials=3, epochs=2, objectives=LOSS,
                     pruner="{name: median, n_startup_trials: 1, n_warmup_steps: 1}")
    proc = cli(f"sweep={name}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_env.sweeps_dir / name
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and study.metric_names == ["eval_loss"]
    for t in study.trials:  # the pruner was fed the running best (lowest) eval loss, not the accuracy
        losses = json.loads((folder / f"trial_{t.number}" / "metrics.json").read_text())["series"]["eval_loss"]
        running = [min(losses[:e]) for e in range(1, len(losses) + 1)]
        assert [t.intermediate_values[s] for s in sorted(t.intermediate_values)] == pytest.approx(running)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value)
    # the progress line names the metric and calls the lowest loss best
    lines = [ln for ln in proc.stderr.splitlines() if f"Study {name!r}: 3/3" in ln]
    assert lines and f"best eval_loss {best.value:.4f} (trial {best.number}, minimize)" in lines[-1], lines
    summary = (folder / "summary.md").read_text()
    assert f"**Best: trial {best.number}**, eval_loss {best.value:.4f} (minimize;" in summary, summary
    assert f"{100 * best.value:.2f}%" not in summary and "objective %" not in summary
    assert "| trial | state | eval_loss (minimize) | std |" in summary
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert rows[0]["number"] == str(best.number) and float(rows[0]["objective:eval_loss"]) == pytest.approx(best.value)

    proc = cli(str(folder), module="gru_exp.report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (folder / "report.md").read_text()
    assert "eval_loss (minimize)" in report and "objective %" not in report
    row = next(ln for ln in report.splitlines() if ln.startswith("| 1 |"))
    assert f"| trial {best.number} |" in row and f"| {best.value:.4f} |" in row, row
    assert "for eval_loss" in report or "Parameter importances" not in report


def test_no_accuracy_band_on_a_loss_axis(tmp_path, monkeypatch):
    """The figures draw the notebook's 84-85% band only on an accuracy axis. (matplotlib draws into
    a PNG whose pixels cannot say which band they hold: the band's helper is watched instead.)"""
    from gru_exp.report import figures
    from gru_exp.report.entries import Entry

    drawn = []
    monkeypatch.setattr(figures, "_baseline", lambda ax, horizontal=True: drawn.append(horizontal))
    entries = [Entry(name=f"trial {n}", params={}, runs=[], objective=0.3 + n / 10, number=n,
                     intermediate={1: 0.5, 2: 0.3 + n / 10}) for n in range(3)]
    figures.optimization_history(entries, tmp_path, False, "eval_loss")
    figures.intermediate_values(entries, tmp_path, "eval_loss")
    figures.optimization_history(entries, tmp_path, False, "train_minutes")
    assert drawn == []
    figures.optimization_history(entries, tmp_path, True, "eval_acc")
    assert drawn == [False]


def test_values_are_shown_under_their_own_metric():
    from gru_exp.config.sweep import show_metric
    from gru_exp.sweep.summary import metric_cell, metric_head

    assert show_metric(0.6936, "eval_loss") == "0.6936" and show_metric(0.8960, "eval_acc") == "89.60%"
    assert show_metric(3.214, "train_minutes") == "3.21 min" and show_metric(12345.0, "n_params") == "12,345"
    assert metric_cell(0.6936, "eval_loss") == "0.6936" and metric_cell(0.896, "eval_acc") == "89.60"
    assert metric_head("eval_acc", "maximize") == "eval_acc % (maximize)"
    assert re.fullmatch(r"eval_loss \(minimize\)", metric_head("eval_loss", "minimize"))
