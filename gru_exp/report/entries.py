"""Reports against the notebook's 84-85%: a table (report.md) and PNG figures, for an Optuna study
or for any set of run folders. Reads storage and folders only; never writes to the study."""

from __future__ import annotations

import json
import logging
import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import optuna
from optuna.trial import TrialState

from gru_exp.config.knobs import grouping_keys, with_defaults
from gru_exp.config.values import flatten
from gru_exp.errors import GruExpError
from gru_exp.redact import redact
from gru_exp.report.copies import SeenRuns
from gru_exp.sweep.study_file import read_pointer
from gru_exp.sweep.urls import readonly_storage
from gru_exp.train.record import RecordError, RunRecord
from gru_exp.train.rundir import RECORD_FILE

log = logging.getLogger(__name__)
TOP_K = 5


@dataclass
class Entry:
    """One configuration: a trial (its repeats) or a group of run folders differing only by their seeds
    (trainer.seed, data.split_seed: the replicate knobs)."""

    name: str
    params: dict[str, Any]
    runs: list[RunRecord]
    state: str = "COMPLETE"
    objective: Optional[float] = None  # study value, or mean best eval acc of the runs
    number: Optional[int] = None
    intermediate: dict[int, float] = field(default_factory=dict)

    def series(self, key: str) -> list[list[float]]:
        return [r.series[key] for r in self.runs if r.series.get(key)]

    def stat(self, key: str) -> tuple[float, float]:
        """Mean and std over runs of a record's number (best_eval_acc, test_acc). A run evaluated on
        the test set (data.val_size=0) has no validation accuracy: its best_eval_acc is a test score."""
        runs = [r for r in self.runs if key != "best_eval_acc" or r.eval_split == "val"]
        values = [v for v in (getattr(r, key) for r in runs) if v is not None]
        if not values:
            return math.nan, math.nan
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def epochs(self) -> int:
        return sum(r.epochs_done for r in self.runs)

    @property
    def wall_s(self) -> float:
        return sum(r.wall_time_s or 0.0 for r in self.runs)


ARCHIVE_KEY = "data.archive_sha256"  # the data's identity, shortened (12 hex digits name it in a table)


def _grouping(record: RunRecord) -> dict[str, Any]:
    """The knobs that make a configuration (the register's result knobs, the seeds aside) and the data
    archive's SHA-256 (None in records written before it was kept): runs on other data are never
    repeats of one configuration."""
    flat = with_defaults(flatten(record.config))
    return {**{k: flat.get(k) for k in grouping_keys()}, ARCHIVE_KEY: (record.archive_sha256 or "")[:12] or None}


def _differing_keys(flats: Sequence[dict[str, Any]]) -> list[str]:
    """The flat config keys whose values are not the same in all of ``flats``."""
    return sorted(k for k in set().union(*flats) if len({json.dumps(f.get(k)) for f in flats}) > 1)


def _group_names(groups: list[list[dict[str, Any]]], flats: list[dict[str, Any]]) -> list[str]:
    """A group is named by its configs' `name` (the experiment); groups sharing a name get the
    keys in which they differ, e.g. "notebook_model (trainer.epochs=10, trainer.patience=3)".
    Without names, the first run's folder name."""
    names = [runs[0].config.get("name") for runs in groups]
    if not all(names):
        return [Path(runs[0].run_dir).name for runs in groups]
    out = []
    for name, flat in zip(names, flats):
        differ = _differing_keys([f for n, f in zip(names, flats) if n == name])
        out.append(name + (" (" + ", ".join(f"{k}={flat.get(k)}" for k in differ) + ")" if differ else ""))
    return out


def entries_from_runs(folders: Sequence[Path]) -> list[Entry]:
    """Every run under ``folders`` (found by metrics.json), grouped by config apart from the seed."""
    records, seen, unfinished = [], SeenRuns(), []
    for folder in folders:
        if not Path(folder).is_dir():
            raise GruExpError(f"{folder}: no such folder; give run folders, a multirun folder or a study folder.")
        for path in sorted(Path(folder).rglob(RECORD_FILE)):
            if not seen.new_path(path):  # a folder given twice, inside another given one, or via a symlink
                continue
            try:
                record = RunRecord.read(path)
            except RecordError as exc:
                raise GruExpError(f"{exc} Remove it or report on other folders.") from None
            if not record.series.get("epoch"):
                unfinished.append(str(path.parent))
            elif seen.copy_of(record, path) is None:  # a copy: counted once
                records.append(record)
    if unfinished and records:  # said, not silently left out (e.g. a run killed before its first epoch ended)
        log.warning("%d run(s) without a finished epoch left out: %s", len(unfinished), ", ".join(unfinished[:5]))
    if not records:
        raise GruExpError(
            f"No runs with a finished epoch under {', '.join(map(str, folders))} (looked for metrics.json)."
        )
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(json.dumps(_grouping(r), sort_keys=True, default=str), []).append(r)
    flats = [json.loads(k) for k in groups]
    varying = _differing_keys(flats)
    entries = []
    for (key, runs), flat, name in zip(groups.items(), flats, _group_names(list(groups.values()), flats)):
        entry = Entry(name=name, params={k: flat.get(k) for k in varying}, runs=runs,
                      state=min((r.status.trial_state for r in runs), key=["FAIL", "RUNNING", "PRUNED", "COMPLETE"].index))
        entry.objective = entry.stat("best_eval_acc")[0]
        entries.append(entry)
    return sorted(entries, key=lambda e: -e.objective if not math.isnan(e.objective) else math.inf)


def open_study_readonly(study_name: str, storage: str):
    """Load a study without creating tables or migrating (safe beside running workers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            backend = readonly_storage(storage)
            return optuna.load_study(study_name=study_name, storage=backend)
        except KeyError as exc:
            names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
            raise GruExpError(f"study_name={study_name!r} is not in {redact(storage)}; it holds: "
                              f"{', '.join(names) or 'no studies'}.") from exc
        except GruExpError:
            raise
        except Exception as exc:
            raise GruExpError(f"storage={redact(storage)!r} cannot be read: {type(exc).__name__}: "
                              f"{redact(' '.join(str(exc).split()))[:400]}") from None


def _read_or_none(path: Path) -> Optional[RunRecord]:
    try:
        return RunRecord.read(path)
    except RecordError as exc:
        log.warning("%s", exc)
        return None


def study_folder(study, folder: Optional[Path], explicit: bool) -> Optional[Path]:
    """The study folder whose trial folders the report reads: ``folder`` unless its study.json
    names another study (another id): then an error when the folder was given, else None (the
    trials' recorded folders are read instead)."""
    if folder is None or not folder.is_dir():
        return None
    try:
        uid = (read_pointer(folder) or {}).get("uid")
    except ValueError:
        uid = None
    ours = study.user_attrs.get("gru_exp_uid")
    if uid and ours and uid != ours:
        if explicit:
            raise GruExpError(f"{folder} holds the trials of another study named {study.study_name!r} (id {uid}; "
                              f"this study's id is {ours}); give that study's storage, or the folder of this one.")
        return None
    return folder


def _trial_dir(t, folder: Optional[Path], explicit: bool) -> Optional[Path]:
    """Where a trial's runs are: its folder under the study folder being read (a copy moved or
    rsynced from other machines records absolute paths of where it ran), else, unless that study
    folder was given, the recorded path; none for a trial refused because its folder held others' files."""
    if t.user_attrs.get("foreign_folder"):  # refused: trial_N held files it did not make, none of them its runs
        return None
    recorded = Path(t.user_attrs["run_dir"]) if t.user_attrs.get("run_dir") else None
    if folder is not None:
        local = folder / (recorded.name if recorded else f"trial_{t.number}")
        if local.is_dir() or explicit:
            return local if local.is_dir() else None
    return recorded if recorded is not None and recorded.is_dir() else None


def entries_from_study(study, folder: Optional[Path] = None, explicit: bool = False) -> list[Entry]:
    """Trials (best first) with their runs' metrics.json read from the trial folders under
    ``folder`` (the study folder read; see :func:`_trial_dir`); each run counted once."""
    maximize = study.directions[0].name == "MAXIMIZE"
    folder = study_folder(study, folder, explicit)
    entries, seen, missing = [], SeenRuns(), 0
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING):
            continue
        run_dir = _trial_dir(t, folder, explicit)
        runs = []
        # a trial that never had a folder (refused for others' files, stopped before writing) is not missing
        had_folder = not t.user_attrs.get("foreign_folder") and (t.user_attrs.get("run_dir") or t.state != TrialState.FAIL)
        missing += run_dir is None and t.state != TrialState.RUNNING and bool(had_folder)
        if run_dir is not None:
            paths = sorted(run_dir.glob("seed_*/metrics.json")) or [run_dir / "metrics.json"]
            paths = [p for p in paths if p.is_file() and seen.new_path(p)]
            runs = [r for p in paths if (r := _read_or_none(p)) is not None and seen.copy_of(r, p) is None]
        entries.append(Entry(name=f"trial {t.number}", params=dict(t.params), runs=runs, state=t.state.name,
                             objective=t.values[0] if t.values else None, number=t.number, intermediate=dict(t.intermediate_values)))
    if not entries:
        raise GruExpError(f"Study {study.study_name!r} has no trials yet.")
    if missing:
        log.warning("%d trial(s) have no run folder %s; their accuracies are left empty (trials run on other "
                    "machines: copy their folders in, e.g. rsync -a <host>:<outputs>/sweeps/%s/ %s/)", missing,
                    f"under {folder}" if folder else "where they ran", study.study_name, folder or "<study folder>")

    def rank(e: Entry) -> tuple:
        done = e.state == "COMPLETE" and e.objective is not None
        return (not done, -(e.objective or 0) if maximize else (e.objective or 0))

    return sorted(entries, key=rank)
