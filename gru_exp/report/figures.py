"""PNG figures for reports (matplotlib, headless): curves against the notebook (IMDB) or the
majority-class baseline (any data), a run's test confusion matrix, and study plots."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gru_exp.config.sweep import is_accuracy
from gru_exp.files import crash_point, current_umask
from gru_exp.notebook import NOTEBOOK
from gru_exp.report.classes import on_imdb
from gru_exp.report.entries import Entry
from gru_exp.train.record import RunRecord
from gru_exp.report.names import FIGURES

log = logging.getLogger(__name__)
BAND = (0.84, 0.85)  # the notebook's "84-85%"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display, no browser
    import matplotlib.pyplot as plt

    return plt


def _baseline(ax, horizontal: bool = True) -> None:
    ax.axhspan(*BAND, color="tab:red", alpha=0.12, label="notebook 84-85%")
    if horizontal:
        epochs = np.arange(1, len(NOTEBOOK["eval/acc"]) + 1)
        ax.plot(epochs, NOTEBOOK["eval/acc"], "--", color="tab:red", lw=1.2, label="notebook eval acc (published)")


def _save(fig, path: Path) -> Path:
    with warnings.catch_warnings():  # optuna's parallel-coordinates axes do not support tight_layout
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    if path.name not in FIGURES:  # check_own_files knows these names only
        raise ValueError(f"{path.name} is not one of report/names.py's FIGURES")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.png", dir=path.parent)  # a name of its own
    os.close(fd)
    tmp = Path(name)
    try:  # a reader sees the old figure or the new one, never half of one
        fig.savefig(tmp, dpi=110)
        tmp.chmod(0o666 & ~current_umask())
        os.replace(tmp, path)
        crash_point(path.name)  # tests: a kill with this figure in place, the report not yet written
    finally:
        tmp.unlink(missing_ok=True)
        _pyplot().close(fig)
    return path


def learning_curves(entries: Sequence[Entry], out: Path, top_k: int) -> Path:
    """Eval accuracy per epoch of the top entries: mean line and min-max band over repeats."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    shown = [e for e in entries if e.series("eval_acc")][:top_k]
    imdb = any(on_imdb(e) for e in shown)
    if imdb:  # the notebook's numbers are IMDB's
        _baseline(ax)
    for e in shown:
        curves = e.series("eval_acc")
        n = min(len(c) for c in curves)
        data = np.array([c[:n] for c in curves])
        epochs = np.arange(1, n + 1)
        line, = ax.plot(epochs, data.mean(axis=0), marker="o", ms=3, label=f"{e.name} ({len(curves)} run(s))")
        if len(curves) > 1:
            ax.fill_between(epochs, data.min(axis=0), data.max(axis=0), color=line.get_color(), alpha=0.2)
        most = next((r.baselines["majority"] for r in e.runs if r.baselines.get("majority")), None)
        if not on_imdb(e) and most and most.get("acc") is not None:
            ax.axhline(most["acc"], ls=":", color=line.get_color(), label=f"majority class '{most['class']}' (test)")
    ax.set(xlabel="epoch", ylabel="eval accuracy",
           title="Eval accuracy per epoch: top runs" + (" vs the notebook" if imdb else " vs the majority class"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "learning_curves.png")


def train_vs_eval(entry: Entry, out: Path) -> Path:
    """Train and eval accuracy of the best entry's first run: the gap shows overfitting."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    run = entry.runs[0].series
    ax.plot(run["epoch"], run["train_acc"], marker="o", label="train acc")
    ax.plot(run["epoch"], run["eval_acc"], marker="o", label="eval acc")
    if on_imdb(entry):
        ax.axhspan(*BAND, color="tab:red", alpha=0.12, label="notebook 84-85%")
    ax.set(xlabel="epoch", ylabel="accuracy", title=f"Best: {entry.name}, train vs eval")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "best_train_vs_eval.png")


def confusion_matrix(run: RunRecord, name: str, out: Path) -> Path:
    """``run``'s test confusion matrix: counts in each cell, shaded by the share of the true class."""
    plt = _pyplot()
    counts = np.array(run.test_confusion, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    c = len(run.classes)
    fig, ax = plt.subplots(figsize=(min(2.5 + 0.6 * c, 14), min(2 + 0.6 * c, 13)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        if c <= 20:  # beyond, the shading alone
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(c), run.classes, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
    ax.set_yticks(range(c), run.classes)
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"Test confusion matrix: {name}, epoch {run.test_epoch}")
    return _save(fig, out / "confusion_matrix.png")


def optimization_history(entries: Sequence[Entry], out: Path, maximize: bool, metric: str = "eval_acc") -> Path:
    """Each complete trial's objective and the best so far, on the objective's own axis (the
    notebook's 84-85% band only when the objective is an accuracy)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = sorted((e.number, e.objective) for e in entries if e.state == "COMPLETE" and e.objective is not None)
    pruned = sorted((e.number, e.objective) for e in entries if e.state == "PRUNED" and e.objective is not None)
    if is_accuracy(metric):
        _baseline(ax, horizontal=False)
    if done:
        xs, ys = zip(*done)
        ax.scatter(xs, ys, label="complete", zorder=3)
        best = np.maximum.accumulate(ys) if maximize else np.minimum.accumulate(ys)
        ax.step(xs, best, where="post", color="tab:green", label="best so far")
    if pruned:
        xs, ys = zip(*pruned)
        ax.scatter(xs, ys, marker="x", color="gray", label="pruned (last reported)")
    ax.set(xlabel="trial", ylabel=f"{metric} ({'maximize' if maximize else 'minimize'})",
           title="Optimization history" + (" vs the notebook's 84-85%" if is_accuracy(metric) else f": {metric}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "optimization_history.png")


def intermediate_values(entries: Sequence[Entry], out: Path, metric: str = "eval_acc") -> Path:
    """Every trial's reported objective per step; pruned trials end where the pruner cut them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    if is_accuracy(metric):
        _baseline(ax, horizontal=False)
    for e in entries:
        if not e.intermediate:
            continue
        steps = sorted(e.intermediate)
        style = dict(color="gray", alpha=0.6, ls="--") if e.state == "PRUNED" else dict(alpha=0.9)
        ax.plot(steps, [e.intermediate[s] for s in steps], marker="o", ms=3, **style)
        if e.state == "PRUNED":
            ax.plot(steps[-1], e.intermediate[steps[-1]], "x", color="tab:red", ms=8)
    ax.plot([], [], "x", color="tab:red", label="pruned here")
    ax.set(xlabel="step (epoch; repeat r adds r * epochs)", ylabel=f"reported {metric}",
           title="Intermediate values: where pruning cut trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "intermediate_values.png")


def param_importances(importances: dict[str, float], out: Path, metric: str = "objective",
                      evaluator: str = "PED-ANOVA") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3.5, 0.5 * len(importances) + 1.5)))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel=f"importance ({evaluator}, for {metric})", title=f"Which knobs mattered ({evaluator} importance)")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, out / "param_importances.png")


def optuna_plot(plot: Callable[..., Any], study, out: Path, name: str, **kwargs: Any) -> Path | None:
    """Save one of optuna.visualization.matplotlib's plots; None when it cannot be drawn."""
    _pyplot()  # select the headless backend before optuna imports pyplot
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warnings
        try:
            result = plot(study, **kwargs)
        except Exception as exc:  # e.g. too few complete trials or a single parameter
            log.warning("Skipped %s: %s", name, exc)
            return None
    axes = np.atleast_1d(result)
    fig = axes.flat[0].figure
    fig.set_size_inches(max(8, 3 * axes.size), 5)
    return _save(fig, out / name)
