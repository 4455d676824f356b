"""A study's summary files, rewritten after every trial: trials.csv and summary.md."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from gru_exp.commands import print_quietly
from gru_exp.config.sweep import is_accuracy, show_metric
from gru_exp.files import atomic_write_text
from gru_exp.notebook import NOTEBOOK_BEST_ACC, NOTEBOOK_FINAL_ACC
from gru_exp.report.epochs import (cell_note, epoch_notes, objective_spec, run_epochs, scored_head, scored_phrase,
                                   trial_records)
from gru_exp.sweep.best_yaml import run_command, write_best


def objectives(study: optuna.Study) -> list[tuple[str, str]]:
    """(metric name, direction) of each of the study's objectives."""
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return [(n, d.name.lower()) for n, d in zip(names, study.directions)]


def pareto_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the trials on the Pareto front (the best trial for a single objective)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return {t.number for t in study.best_trials} if complete else set()


def chosen_trial(study: optuna.Study) -> Optional[FrozenTrial]:
    """The trial summary.md puts first: the best trial, or for several objectives the Pareto front's
    best in the first objective (the front table's first row); None before any trial completed."""
    front = [t for t in _sorted_trials(study) if t.state == TrialState.COMPLETE]
    if len(study.directions) > 1:
        numbers = pareto_numbers(study)
        front = [t for t in front if t.number in numbers]
    return front[0] if front else None


def _sorted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Finished trials by (first) objective, best first, then pruned, failed and running ones."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2, TrialState.RUNNING: 3,
             TrialState.WAITING: 4}

    def key(t: FrozenTrial) -> tuple:
        first = t.values[0] if t.values else None  # t.value raises for a multi-objective trial
        return (order[t.state], 0 if first is None else -first if maximize else first, t.number)

    return sorted(study.get_trials(deepcopy=False), key=key)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if pct:
        return f"{100 * value:.2f}"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def metric_cell(value: Any, metric: str) -> str:
    """A metric's value in a table column headed by :func:`metric_head` (accuracies in %, others in
    their own unit)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if is_accuracy(metric):
        return f"{100 * value:.2f}"
    return f"{value:.0f}" if metric == "n_params" else f"{value:.4f}"


def metric_head(metric: str, direction: str = "") -> str:
    """A column header naming the metric, its unit and (when given) its direction, e.g. "eval_acc %
    (maximize)", "eval_loss (minimize)", "train_minutes min"."""
    unit = " %" if is_accuracy(metric) else " min" if metric == "train_minutes" else ""
    return f"{metric}{unit}" + (f" ({direction})" if direction else "")


def trial_rows(trials: list[FrozenTrial], metrics: list[str], front: set[int]) -> list[dict[str, Any]]:
    names = sorted({k for t in trials for k in t.params})
    retried_as = {t.system_attrs["failed_trial"]: t.number for t in trials if "failed_trial" in t.system_attrs}
    retried_as.update({t.user_attrs["retried_from"]: t.number for t in trials if "retried_from" in t.user_attrs})
    rows = []
    for t in trials:
        error = t.user_attrs.get("error", "")
        if t.state == TrialState.FAIL and not error:
            error = "its worker stopped sending heartbeats (killed?)"
        if t.number in retried_as:
            error += f"; retried as trial {retried_as[t.number]}"
        values = t.values or [None] * len(metrics)
        row = {"number": t.number, "state": t.state.name, "value": values[0], "std": t.user_attrs.get("std"),
               "test_acc": t.user_attrs.get("test_acc"), "epochs_run": t.user_attrs.get("epochs_run"),
               "wall_time_s": t.user_attrs.get("wall_time_s")}
        row.update({f"objective:{m}": v for m, v in zip(metrics, values)})  # each value under its metric's name
        if len(metrics) > 1:
            row["pareto"] = t.number in front
        row.update({name: t.params.get(name) for name in names})
        row.update({"command": t.user_attrs.get("command", ""), "error": error})
        rows.append(row)
    return rows


def _span(trials: list[FrozenTrial]) -> str:
    """", in X min from the first trial's start to the last finished trial's end" (all workers)."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if not starts or not ends:
        return ""
    return f", in {(max(ends) - min(starts)).total_seconds() / 60:.1f} min from the first trial's start to the last one's end"


def write_summary(study: optuna.Study, out: Path) -> None:
    """Rewrite ``out/trials.csv`` and ``out/summary.md`` from the storage (atomic replaces)."""
    trials = _sorted_trials(study)  # one storage read for the rows and the span
    objs = objectives(study)
    metric, direction = objs[0]
    front = pareto_numbers(study) if len(objs) > 1 else set()
    rows = trial_rows(trials, [m for m, _ in objs], front)
    records = {t.number: trial_records(t) for t in trials if t.user_attrs.get("test_acc") is not None}
    reduce = objective_spec(study)[1]
    for r in rows:  # which epochs the (first) objective and the test accuracy are from, per run
        r["objective_epoch"], r["test_epoch"] = run_epochs(records.get(r["number"], []), metric, reduce, direction)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    atomic_write_text(out / "trials.csv", buf.getvalue())

    counts = {s.name: sum(r["state"] == s.name for r in rows) for s in TrialState}
    epochs = sum(r["epochs_run"] or 0 for r in rows)
    hours = sum(r["wall_time_s"] or 0 for r in rows) / 3600
    lines = [
        f"# Study `{study.study_name}`", "",
        f"Trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed, "
        f"{counts['RUNNING']} running, {counts['WAITING']} waiting. Compute: {epochs} epochs, {hours:.2f} h of "
        f"training wall time{_span(trials)}. Objective{'s' if len(objs) > 1 else ''}: "
        + ", ".join(f"{d} {m}" for m, d in objs) + " (accuracies in %).", "",
    ]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    notes = {n: epoch_notes(rs, metric, reduce, direction) for n, rs in records.items()}
    scored = [r for rs in records.values() for r in rs]
    test_head = scored_head(scored)
    if len(objs) > 1:
        lines += _front_lines(rows, objs, test_head)
        if complete:
            lines += [f"Reproduce trial {chosen_trial(study).number}, the front's first (its exact values and base, "
                      f"in [best.yaml](best.yaml)): `{run_command(out, study.study_name)}`", ""]
    elif complete:
        best = complete[0]
        on, tn = notes.get(best["number"], ("", ""))
        lines += [
            f"**Best: trial {best['number']}**, {metric} {show_metric(best['value'], metric)} ({direction}; "
            f"+/- {show_metric(best['std'] or 0.0, metric)}{f'; epoch {on}' if on else ''}), test accuracy "
            f"{_fmt(best['test_acc'], True)}% ({scored_phrase(scored)}{f': epoch {tn}' if tn else ''})"
            f"{': ' + _delta(best['test_acc']) if all(_on_imdb(r) for r in records.get(best['number'], [])) else ''}.",
            "",
            f"Reproduce (the trial's exact values and its base, in [best.yaml](best.yaml)): "
            f"`{run_command(out, study.study_name)}`", "",
        ]
    params = [k for k in (rows[0] if rows else {}) if "." in k]
    header = ["trial", "state", metric_head(metric, direction), "std", test_head, "epochs", "wall s", *params]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in rows:
        on, tn = notes.get(r["number"], ("", ""))
        cells = [str(r["number"]), r["state"], metric_cell(r["value"], metric) + (cell_note(on) if r["value"] is not None else ""),
                 metric_cell(r["std"], metric), _fmt(r["test_acc"], True) + (cell_note(tn) if r["test_acc"] is not None else ""),
                 _fmt(r["epochs_run"]),
                 _fmt(round(r["wall_time_s"]) if r["wall_time_s"] else None), *(_fmt(r[p]) for p in params)]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["error"]]
    if failed:
        lines += ["", "Errors:", ""] + [f"- trial {r['number']}: {r['error']}" for r in failed]
    write_best(study, chosen_trial(study), out)  # first: summary.md's command runs it
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")


def _front_lines(rows: list[dict[str, Any]], objs: list[tuple[str, str]], test_head: str = "test acc %") -> list[str]:
    """The Pareto front as a table: no trial on it is beaten in every objective by another; the test
    column headed ``test_head`` (which epoch was scored)."""
    front = [r for r in rows if r.get("pareto")]
    header = ["trial", *(metric_head(m, d) for m, d in objs), test_head, "command"]
    lines = [f"**Pareto front: {len(front)} trial(s)** (\"best\" for several objectives: no other trial is at "
             "least as good in every objective and better in one).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in front:
        cells = [str(r["number"]), *(metric_cell(r[f"objective:{m}"], m) for m, _ in objs),
                 _fmt(r["test_acc"], True), f"`{r['command']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def front_table(study: optuna.Study) -> list[str]:
    """The study's Pareto front as markdown lines (for reports)."""
    objs = objectives(study)
    trials = [t for t in _sorted_trials(study) if t.state == TrialState.COMPLETE]
    head = scored_head([r for t in trials for r in trial_records(t)])
    return _front_lines(trial_rows(trials, [m for m, _ in objs], pareto_numbers(study)), objs, head)


def _on_imdb(record: Any) -> bool:
    """Whether a trial's run trained on IMDB's archive (the notebook's numbers compare only there)."""
    return str(((record.config or {}).get("data") or {}).get("source", "imdb")) == "imdb"


def _delta(test_acc: Any) -> str:
    if test_acc is None or (isinstance(test_acc, float) and math.isnan(test_acc)):
        return "no test accuracy"
    return (f"{100 * (test_acc - NOTEBOOK_FINAL_ACC):+.2f} points vs the notebook's final 84.50%, "
            f"{100 * (test_acc - NOTEBOOK_BEST_ACC):+.2f} vs its best 87.10%")


def print_result(study: object, folder: object) -> None:
    """The sweep's result on stdout, one line, tab-separated: the study folder, the trial summary.md
    puts first (the best, or the Pareto front's best in the first objective) and its objective
    value(s), comma-separated; ``-`` for both before any trial completed. Logs stay on stderr."""
    best = chosen_trial(study)
    where = os.path.abspath(str(folder))
    fields = [where, "-", "-"] if best is None else [where, str(best.number), ",".join(repr(float(v)) for v in best.values)]
    print_quietly("\t".join(fields))  # a reader that closed stdout: exit 141, as train does
