"""report.md: the table of configurations against the notebook, the seed comparison, the
parameter importances, and the figures beside it."""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import optuna
from optuna.importance import PedAnovaImportanceEvaluator

from gru_exp.errors import GruExpError
from gru_exp.files import atomic_write_text
from gru_exp.notebook import NOTEBOOK_BEST_ACC, NOTEBOOK_FINAL_ACC, PEERS
from gru_exp.report.classes import drawn_run, f1_cell, majority_cell, on_imdb, per_class_lines
from gru_exp.report.entries import Entry
from gru_exp.report.epochs import cell_note, epoch_notes, objective_spec, scored_head
from gru_exp.report.names import FIGURES
from gru_exp.sweep.summary import front_table, metric_cell, metric_head, objectives

log = logging.getLogger(__name__)
IMPORTANCE_EVALUATOR = "PED-ANOVA"  # named in report.md: the evaluator actually used (_evaluator)


def _evaluator():
    """Optuna's default importance evaluator (PED-ANOVA in Optuna 5; fANOVA would need scikit-learn)."""
    return PedAnovaImportanceEvaluator()


def _pct(mean: float, std: Optional[float] = None) -> str:
    if mean is None or math.isnan(mean):
        return ""
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None and not math.isnan(std) else "")


def _delta(value: float, ref: float) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * (value - ref):+.2f}"


def table(entries: Sequence[Entry], top: int, objective_label: str, metric: str = "eval_acc",
          reduce: Optional[str] = "best", direction: str = "maximize") -> list[str]:
    """The top entries ranked; the objective column is headed ``objective_label`` and shown as
    ``metric`` (a percentage only for an accuracy), reduced over epochs by ``reduce``; the test
    column names the epoch scored, and both cells their epochs where these differ."""
    params = sorted({k for e in entries for k in e.params})
    test_head = scored_head([r for e in entries[:top] for r in e.runs]).replace(" (", " (mean ± std; ", 1)
    imdb = any(on_imdb(e) for e in entries[:top])  # the notebook's columns, only where its numbers apply
    header = ["rank", "run", "state", *params, objective_label, "best val acc % (mean ± std)",
              test_head, "test macro-F1", "majority class: test acc % / macro-F1", "runs", "epochs", "wall min",
              *(("test − 84.50", "test − 87.10") if imdb else ()), "test ROC AUC"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, e in enumerate(entries[:top], start=1):
        test, test_std = e.stat("test_acc")
        val, val_std = e.stat("best_eval_acc")
        on, tn = epoch_notes(e.runs, metric, reduce, direction)
        objective = metric_cell(e.objective, metric)
        tested = _pct(test, test_std)
        cells = [str(rank), e.name, e.state, *(_fmt(e.params.get(p)) for p in params),
                 objective + (cell_note(on) if objective else ""), _pct(val, val_std),
                 tested + (cell_note(tn) if tested else ""), f1_cell(e), majority_cell(e),
                 str(len(e.runs)), str(e.epochs), f"{e.wall_s / 60:.1f}",
                 *((_delta(test, NOTEBOOK_FINAL_ACC), _delta(test, NOTEBOOK_BEST_ACC)) if on_imdb(e) else
                   ("", "") if imdb else ()),
                 _auc(*e.stat("test_auc"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def seed_comparison(entries: Sequence[Entry]) -> list[str]:
    """The leading configuration (by validation) against every other one trained with several seeds:
    the test accuracy difference, also in units of the larger of the two seed std's."""
    seeded = [e for e in entries if len([r for r in e.runs if r.test_acc is not None]) >= 2]
    if len(seeded) < 2:
        return []
    lead = seeded[0]
    lead_mean, lead_std = lead.stat("test_acc")
    lines = ["", f"Test accuracy over seeds, `{lead.name}` ({_pct(lead_mean, lead_std)}) against:", ""]
    for other in seeded[1:]:
        mean, std = other.stat("test_acc")
        spread = max(lead_std, std)
        ratio = f"{(lead_mean - mean) / spread:.1f}x the larger std" if spread > 0 else "std 0"
        lines.append(f"- `{other.name}` ({_pct(mean, std)}): {_delta(lead_mean, mean)} points = {ratio} "
                     f"({100 * spread:.2f} points)")
    return lines


def _auc(mean: float, std: float) -> str:
    """A ROC AUC cell: "0.9512", with "± std" over several seeds; "" for records before it."""
    return "" if math.isnan(mean) else f"{mean:.4f}" + (f" ± {std:.4f}" if std else "")


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


REPORT_HEAD = "# Report: "  # report.md's first line
REPORT_MARK = "<!-- written by gru-exp report: replaced whole by the next report -->"  # its second line
REFERENCE = "Reference: the notebook's test accuracy"  # in every report, marked or written before the mark


def report_title(out: Path, study=None) -> str:
    """report.md's first line for a report of ``study`` (or of run folders) written into ``out``."""
    return f"{REPORT_HEAD}{study.study_name if study else out}"


def is_own_report(report: Path, title: str) -> bool:
    """Whether ``report`` is a report.md gru-exp wrote: a regular file whose first line is a report
    title and whose second is :data:`REPORT_MARK`, or (written before the mark) whose first line is
    exactly ``title`` and which holds the report's fixed reference line."""
    if not report.is_file() or report.is_symlink():
        return False
    try:
        with open(report, encoding="utf-8") as fh:
            text = fh.read(1 << 20)
    except (OSError, UnicodeDecodeError):
        return False
    lines = text.split("\n")
    if len(lines) > 1 and lines[0].startswith(REPORT_HEAD) and lines[1] == REPORT_MARK:
        return True
    return lines[0] == title and REFERENCE in text


def check_own_files(out: Path, title: str) -> None:
    """GruExpError when writing the report titled ``title`` into ``out`` would replace a file gru-exp
    did not write: a report.md that is not one of its reports, or a figure's name without one."""
    ours = is_own_report(out / "report.md", title)
    taken = [n for n in ("report.md", *FIGURES) if os.path.lexists(out / n)]
    if taken and not ours:
        raise GruExpError(f"{out} already holds {', '.join(taken)}, which gru-exp did not write (no report of its "
                          f"own there: gru-exp's reports start with '{REPORT_HEAD}...' and the line {REPORT_MARK}); "
                          "the report would replace them. Give another folder with --out DIR.")
    if ours:  # a figure is the earlier report's only when that report shows it
        shown = (out / "report.md").read_text(errors="replace")
        foreign = [n for n in taken if n != "report.md" and f"({n})" not in shown]
        if foreign:
            raise GruExpError(f"{out} holds {', '.join(foreign)}, which its gru-exp report.md does not show (a file of "
                              "yours under a figure's name?); the report would replace it. Move it, or give another "
                              "folder with --out DIR.")


def write_report(entries: list[Entry], out: Path, top: int, study=None) -> Path:
    """report.md and the figures in ``out``; returns the report's path."""
    from gru_exp.report import figures  # matplotlib: only when a report is written

    out.mkdir(parents=True, exist_ok=True)
    # First a report.md of its own that shows every figure's name: a report killed while it draws
    # leaves figures that the next report knows as gru-exp's (check_own_files), never a folder it refuses.
    atomic_write_text(out / "report.md", "\n".join([report_title(out, study), REPORT_MARK, "", "Being written (or "
                      "stopped while it was): " + ", ".join(f"[{n}]({n})" for n in FIGURES)]) + "\n")
    figs: list[Optional[Path]] = [figures.learning_curves(entries, out, top)]
    best = next((e for e in entries if e.runs and e.runs[0].series.get("epoch")), None)
    if best is not None:
        figs.append(figures.train_vs_eval(best, out))
    lines = [report_title(out, study), REPORT_MARK, ""]
    counts = {s: sum(e.state == s for e in entries) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    epochs = sum(e.epochs for e in entries)
    hours = sum(e.wall_s for e in entries) / 3600
    if study is not None:
        lines.append(f"Study `{study.study_name}`: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
                     f"{counts['FAIL']} failed, {counts['RUNNING']} running trials.")
        import optuna.visualization.matplotlib as ovm  # matplotlib: only when a report is written

        objs = objectives(study)
        metric, direction = objs[0]
        # Each plot and the importances name the (first) objective's own metric.
        first = {"target": (lambda t: t.values[0]) if len(objs) > 1 else None, "target_name": metric}
        if len(objs) > 1:  # "best" is the Pareto front: a figure and the front as a table
            figs.append(figures.optuna_plot(ovm.plot_pareto_front, study, out, "pareto_front.png",
                                            target_names=[m for m, _ in objs]))
            lines += [""] + front_table(study)
        figs.append(figures.optimization_history(entries, out, direction == "maximize", metric))
        figs.append(figures.intermediate_values(entries, out, metric))
        importances, withheld = _importances(study, first["target"], metric)
        if importances:
            figs.append(figures.param_importances(importances, out, metric, IMPORTANCE_EVALUATOR))
        figs.append(figures.optuna_plot(ovm.plot_parallel_coordinate, study, out, "parallel_coordinates.png", **first))
        figs.append(figures.optuna_plot(ovm.plot_slice, study, out, "slice.png", **first))
    else:
        lines.append(f"{len(entries)} configuration(s), {sum(len(e.runs) for e in entries)} run(s).")
    lines += [f"Compute: {epochs} epochs, {hours:.2f} h of training wall time.", ""]
    if any(on_imdb(e) for e in entries[:top]):  # IMDB sentiment's numbers, beside the table's delta columns only
        lines += [f"{REFERENCE} was 84.50% after 10 epochs (its best, 87.10%, after "
                  "epoch 2); differences below are in points, for runs on IMDB's archive only.",
                  "Linear peers on the same split (benchmarks/peers.py, docs/results.md section 10), test accuracy: "
                  + "; ".join(f"{name} {100 * acc:.2f}%" for name, acc in PEERS.items()) + ".", ""]
    if study is not None:
        lines += table(entries, top, metric_head(metric, direction), metric, objective_spec(study)[1], direction)
    else:  # run folders: ranked by their mean best validation accuracy
        lines += table(entries, top, "ranked by: best val acc %", "eval_acc")
    lines += seed_comparison(entries)
    if study is not None and importances:
        lines += ["", f"Parameter importances ({IMPORTANCE_EVALUATOR}, Optuna's evaluator, over complete trials, for "
                  f"{metric}):", ""]
        lines += [f"- `{k}`: {v:.3f}" for k, v in importances.items()]
    if study is not None and withheld:
        lines += ["", f"Parameter importances ({IMPORTANCE_EVALUATOR}, for {metric}) withheld: {withheld}"]
    drawn = drawn_run(entries[:top])
    if drawn is not None:  # the best-ranked run with a test confusion matrix: per class, and its figure
        lines += per_class_lines(*drawn, figures.confusion_matrix(drawn[1], drawn[0].name, out).name)
    lines += ["", "Figures:", ""] + [f"![{p.stem}]({p.name})" for p in figs if p is not None]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report


MIN_IMPORTANCE_TRIALS = 10  # PED-ANOVA contrasts the top 10% of trials with all: below 10 that is not one trial
STABLE_IMPORTANCE_TRIALS = 50  # Optuna advises 5 trials in that top 10% for a stable reading


def _importances(study, target=None, metric: str = "objective") -> tuple[dict[str, float], str]:
    """(importances, "") or ({}, why they are withheld): fewer than MIN_IMPORTANCE_TRIALS complete
    trials, all of one objective value, or nothing searched."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    values = {(target(t) if target else t.value) for t in complete}
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return {}, (f"{len(complete)} complete trial(s); {IMPORTANCE_EVALUATOR} contrasts the best 10% of the trials "
                    f"with all of them, so it needs at least {MIN_IMPORTANCE_TRIALS} (Optuna advises "
                    f"{STABLE_IMPORTANCE_TRIALS} for a stable reading).")
    if len(values) == 1:
        return {}, (f"all {len(complete)} complete trials have the same {metric} ({next(iter(values))!r}): there is "
                    "no difference for a knob to explain.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # explains the objective's variance: the same for maximize and minimize
            found = optuna.importance.get_param_importances(study, evaluator=_evaluator(), target=target)
        except Exception as exc:
            log.warning("Parameter importances skipped: %s", exc)
            return {}, f"Optuna could not compute them ({type(exc).__name__}: {exc})."
    if len(complete) < STABLE_IMPORTANCE_TRIALS and found:
        log.info("Parameter importances from %d complete trials: a rough reading (Optuna advises %d)", len(complete),
                 STABLE_IMPORTANCE_TRIALS)
    return found, ("" if found else "no knob was searched.")
