"""report.md's views of the classes: each configuration's test macro-F1 and majority-class baseline
(table cells), and the per-class precision / recall of the run whose confusion matrix is drawn
(``confusion_matrix.png``, :func:`gru_exp.report.figures.confusion_matrix`)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from gru_exp.report.entries import Entry
from gru_exp.train.record import RunRecord

NOTEBOOK_SOURCE = "imdb"  # the notebook's 84-85% compares only with runs on IMDB's archive


def on_imdb(entry: Entry) -> bool:
    """Whether every run of ``entry`` trained on IMDB's archive (the notebook's numbers apply)."""
    return all(r.data_source == NOTEBOOK_SOURCE for r in entry.runs)


def f1_cell(entry: Entry) -> str:
    """Mean test macro-F1 over the entry's runs ("0.9084", "± std" over several); "" before it was kept."""
    mean, std = entry.stat("test_macro_f1")
    return "" if math.isnan(mean) else f"{mean:.4f}" + (f" ± {std:.4f}" if std else "")


def majority_cell(entry: Entry) -> str:
    """The majority-class baseline on the entry's test texts: "50.00 / 0.3333" (accuracy %, macro-F1)."""
    most = next((r.baselines["majority"] for r in entry.runs if r.baselines.get("majority")), None)
    if not most or most.get("acc") is None:
        return ""
    return f"{100 * most['acc']:.2f} / {most['macro_f1']:.4f}"


def drawn_run(entries: Sequence[Entry]) -> Optional[tuple[Entry, RunRecord]]:
    """The run whose confusion matrix the report draws: the first run with one, of the first
    (best-ranked) entry that has such a run."""
    for entry in entries:
        for run in entry.runs:
            if run.test_confusion and run.classes and len(run.classes) == len(run.test_confusion):
                return entry, run
    return None


def per_class_lines(entry: Entry, run: RunRecord, figure: Optional[str]) -> list[str]:
    """The drawn run's test scores per class, and the confusion-matrix figure below them."""
    f1 = run.test_macro_f1
    lines = ["", f"Test scores per class of `{entry.name}` (run `{run.run_dir.name}`, epoch {run.test_epoch}): "
             f"accuracy {100 * (run.test_acc or 0):.2f}%" + (f", macro-F1 {f1:.4f}" if f1 is not None else "") + ":", ""]
    for name in run.classes:
        s = run.test_classes.get(name)
        if s:
            lines.append(f"- `{name}`: precision {s['precision']:.4f}, recall {s['recall']:.4f}, F1 {s['f1']:.4f}, "
                         f"support {s['support']:.0f}")
    most = run.baselines.get("majority")
    if most and most.get("acc") is not None:
        lines.append(f"- majority-class baseline (`{most['class']}` for every text): accuracy {100 * most['acc']:.2f}%, "
                     f"macro-F1 {most['macro_f1']:.4f}")
    if figure:
        lines += ["", f"![confusion matrix]({figure}) (rows: true class, columns: predicted)"]
    return lines
