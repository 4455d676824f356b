"""Which epoch a number is from, wherever a test accuracy is shown beside an objective (report.md,
a study's summary.md): the test accuracy is the score of one epoch's weights (``test_epoch``: the
epoch with the best validation accuracy, or the last, per ``trainer.test_epoch``), while an
objective such as the best ``eval_loss`` can come from another epoch. The header names the scored
epoch; where the objective's epoch differs, both cells name their epochs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from gru_exp.config.knobs import with_defaults
from gru_exp.config.sweep import EPOCH_METRICS  # noqa: F401 (per-epoch metrics: one list)
from gru_exp.config.values import flatten
from gru_exp.train.record import RecordError, RunRecord

log = logging.getLogger(__name__)
SCORED = {"best": "epoch with the best val acc", "last": "last epoch"}


def objective_spec(study) -> tuple[str, Optional[str], str]:
    """(metric, reduce, direction) of the study's first objective; reduce is None when the study
    did not store it (made before its identity was kept) or the metric is not per-epoch."""
    ident = study.user_attrs.get("gru_exp_identity") or {}
    objectives = ident.get("objectives") or [{}]
    names = study.metric_names or ["objective 0"]
    return names[0], objectives[0].get("reduce"), study.directions[0].name.lower()


def objective_epoch(record: RunRecord, metric: str, reduce: Optional[str], direction: str) -> Optional[int]:
    """The epoch (1-based) a run's objective value is taken from; None for a metric that is not
    per-epoch (training minutes, parameters) or an unknown reduce."""
    series = record.series.get(metric) if metric in EPOCH_METRICS else None
    if not series or reduce not in ("best", "last"):
        return None
    if reduce == "last":
        return len(series)
    return series.index(max(series) if direction == "maximize" else min(series)) + 1


def scored_phrase(records: Sequence[RunRecord]) -> str:
    """Which epoch's weights were scored on test (``trainer.test_epoch``), e.g. "epoch with the best val acc"."""
    modes = {str(with_defaults(flatten(r.config)).get("trainer.test_epoch") or "best") for r in records}
    if len(modes) == 1 and next(iter(modes)) in SCORED:
        return SCORED[next(iter(modes))]
    return "epoch per trainer.test_epoch: best val acc or last"


def scored_head(records: Sequence[RunRecord]) -> str:
    """The test column's header, e.g. "test acc % (epoch with the best val acc)"."""
    return f"test acc % ({scored_phrase(records)})"


def run_epochs(records: Sequence[RunRecord], metric: str, reduce: Optional[str], direction: str) -> tuple[str, str]:
    """("2", "1"): the epochs each run's objective value and test accuracy are from, "/"-joined over
    runs (seeds); "?" for an objective epoch that cannot be told, "" without test scores."""
    pairs = [(objective_epoch(r, metric, reduce, direction), r.test_epoch) for r in records if r.test_epoch]
    return "/".join("?" if o is None else str(o) for o, _ in pairs), "/".join(str(t) for _, t in pairs)


def epoch_notes(records: Sequence[RunRecord], metric: str, reduce: Optional[str], direction: str) -> tuple[str, str]:
    """:func:`run_epochs` when the objective's and the test accuracy's epochs differ for any run;
    ("", "") when they agree or are unknown."""
    pairs = [(objective_epoch(r, metric, reduce, direction), r.test_epoch) for r in records if r.test_epoch]
    if not pairs or all(o is None or o == t for o, t in pairs):
        return "", ""
    return run_epochs(records, metric, reduce, direction)


def cell_note(epochs: str) -> str:
    """" (epoch 2)" after a table cell's number, or nothing."""
    return f" (epoch {epochs})" if epochs else ""


def trial_records(trial: Any) -> list[RunRecord]:
    """The run records of a study trial, read from the folder it recorded (its seed_* folders for
    repeats); unreadable ones are left out (the summary only names epochs from them)."""
    run_dir = trial.user_attrs.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        return []
    paths = sorted(Path(run_dir).glob("seed_*/metrics.json")) or [Path(run_dir) / "metrics.json"]
    records = []
    for path in paths:
        try:
            records.append(RunRecord.read(path)) if path.is_file() else None
        except RecordError as exc:
            log.debug("%s", exc)
    return records
