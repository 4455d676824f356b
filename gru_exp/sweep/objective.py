"""One trial: sampled values -> Hydra overrides on the sweep's ``base`` -> the library's
:func:`~gru_exp.train.run.run_training`, ``repeats`` times; the objective is the mean. A
:class:`TrialReporter` callback reports each epoch and stops the run when the pruner says so."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from omegaconf import DictConfig

from gru_exp.config.knobs import hparam_tags
from gru_exp.config.sweep import EPOCH_METRICS, objective_list, show_metric
from gru_exp.config.values import override
from gru_exp.logs import file_log, log_context
from gru_exp.redact import redact
from gru_exp.sweep.identity import IDENTITY_ATTR, check_same_data
from gru_exp.sweep.space import suggest_overrides, trial_overrides
from gru_exp.sweep.storage import study_dir, with_storage_retry
from gru_exp.train.loop import Callback, StopRun, TrainState
from gru_exp.train.record import RunRecord
from gru_exp.train.rundir import RunDirError

log = logging.getLogger(__name__)
# A trial keeps its best epoch's weights only (no optimizer state, no last.pdparams): an interrupted
# trial runs again from its start, so nothing resumes a trial's checkpoint. A base or searched
# trainer.keep_checkpoints wins.
TRIAL_KEEP = "trainer.keep_checkpoints=best"


def reduced(series: Sequence[float], reduce: str, direction: str) -> float:
    """A per-epoch metric as one number: its last value, or its best one for ``direction``."""
    if reduce == "last":
        return series[-1]
    return max(series) if direction == "maximize" else min(series)


class TrialReporter(Callback):
    """Reports the objective's running value each epoch and stops the run when pruned.

    With repeats, repeat ``r`` reports at step ``r * epochs + epoch`` the mean over the repeats
    so far at that epoch, so every trial reports the same schedule and the pruner compares
    like with like. The pruner is not asked at the trial's last step (``repeats * epochs``):
    stopping then saves nothing, and a trained-out trial is a complete result (successive
    halving would otherwise mark every trial below its top rung as pruned)."""

    def __init__(self, trial: optuna.Trial, repeat: int, epochs: int, earlier: list[list[float]],
                 metric: str, reduce: str, direction: str, storage_retry_s: float, repeats: int = 1) -> None:
        self.trial, self.repeat, self.epochs, self.earlier = trial, repeat, epochs, earlier
        self.last_step = repeats * epochs
        self.metric, self.reduce, self.direction = metric, reduce, direction
        self.storage_retry_s = storage_retry_s
        self.values: list[float] = []  # this repeat's running objective per epoch

    def running_value(self, state: TrainState) -> float:
        return reduced([getattr(h, self.metric) for h in state.history], self.reduce, self.direction)

    def on_epoch_end(self, state: TrainState) -> None:
        value = self.running_value(state)
        self.values.append(value)
        e = len(self.values)
        mean = statistics.fmean([run[e - 1] for run in self.earlier if len(run) >= e] + [value])
        step = self.repeat * self.epochs + e
        what = f"reporting epoch {e} of trial {self.trial.number}"
        with_storage_retry(lambda: self.trial.report(mean, step=step), what, self.storage_retry_s)
        if step < self.last_step and with_storage_retry(self.trial.should_prune, what, self.storage_retry_s):
            raise StopRun("pruned", f"pruned after epoch {e} of repeat {self.repeat + 1} ({self.reduce} "
                                     f"{self.metric} {show_metric(mean, self.metric)})")


def _set_attrs(trial: optuna.Trial, sc: DictConfig, **attrs: Any) -> None:
    for key, value in attrs.items():
        with_storage_retry(lambda: trial.set_user_attr(key, value), f"recording trial {trial.number}",
                           sc.storage_retry_s)


def trial_value(record: RunRecord, objective: Any) -> float:
    """One run's value of one objective: a per-epoch metric reduced over epochs, the training
    minutes or the parameter count."""
    if str(objective.metric) in EPOCH_METRICS:
        return reduced(record.series[str(objective.metric)], objective.reduce, objective.direction)
    if objective.metric == "train_minutes":
        return (record.wall_time_s or 0.0) / 60
    return float(record.n_params)


def trial_label(sc: DictConfig, trial: optuna.Trial, seed: Any = None) -> str:
    """A trial's name in VisualDL: study, number and the sampled values by their short tags,
    e.g. "imdb trial 3: hidden=64 lr=0.00214 pool=max"."""
    tags = hparam_tags()
    values = " ".join(f"{tags.get(k, k)}={f'{v:.3g}' if isinstance(v, float) else v}" for k, v in trial.params.items())
    return f"{sc.study_name} trial {trial.number}" + (f" seed {seed}" if seed is not None else "") + f": {values}"


def _refuse_foreign_folder(trial: optuna.Trial, sc: DictConfig, trial_dir: Path, found: list[str]) -> RunDirError:
    """The refusal of a trial whose new folder holds ``found`` entries it did not make; recorded on
    the trial so no report reads those files as its runs."""
    _set_attrs(trial, sc, foreign_folder=str(trial_dir))
    return RunDirError(f"Trial {trial.number}'s folder {trial_dir} already holds {len(found)} entr"
                       f"{'y' if len(found) == 1 else 'ies'} that this trial did not make (e.g. {found[0]!r}); a "
                       "trial writes only into a new folder, so nothing there is overwritten or appended to. Move "
                       "them out of the study folder; the next trial runs in a new one.")


def run_trial(trial: optuna.Trial, sc: DictConfig, compose: Callable[[Sequence[str]], DictConfig]) -> Any:
    """Train the trial's configuration ``repeats`` times; each objective is the mean over repeats
    (a float, or a list for several objectives)."""
    from gru_exp.train.run import (
        run_training,  # not at import time: the caller limits paddle's threads first
    )

    objectives = objective_list(sc)
    overrides = trial_overrides(sc.base, suggest_overrides(trial, sc.params))
    composed = compose(overrides)
    stored = with_storage_retry(lambda: trial.study.user_attrs.get(IDENTITY_ATTR) or {}, "reading the study",
                                sc.storage_retry_s)
    check_same_data(sc.study_name, stored, composed)  # before anything is written for this trial
    first_seed = int(composed.trainer.seed)
    trial_dir = study_dir(sc) / f"trial_{trial.number}"
    found = sorted(p.name for p in trial_dir.iterdir()) if trial_dir.is_dir() else []
    if found:  # a trial's number is new, so is its folder: never write (trial.log included) among others' files
        raise _refuse_foreign_folder(trial, sc, trial_dir, found)
    command = "python -m gru_exp.train " + " ".join(overrides)
    _set_attrs(trial, sc, command=command, run_dir=str(trial_dir), host=socket.gethostname(), pid=os.getpid(),
               gpu=os.environ.get("CUDA_VISIBLE_DEVICES"))  # the worker's GPU (sweep/gpus.py), None when not set
    values, tests, curves, epochs_run, wall = [], [], [], 0, 0.0
    with contextlib.ExitStack() as opened:
        try:  # made here, never appended to: a trial.log that appeared since the check above is someone else's
            opened.enter_context(file_log(trial_dir / "trial.log", new=True))
        except FileExistsError:
            raise _refuse_foreign_folder(trial, sc, trial_dir, ["trial.log"]) from None
        opened.enter_context(log_context(f"trial {trial.number}"))
        log.info("Trial %d: %s", trial.number, redact(command))
        for repeat in range(sc.repeats):
            seed = first_seed + repeat
            run_dir = trial_dir / f"seed_{seed}" if sc.repeats > 1 else trial_dir
            keep = [] if any(o.lstrip("+").startswith("trainer.keep_checkpoints=") for o in overrides) else [TRIAL_KEEP]
            cfg = compose(keep + overrides + [override(f"paths.{k}", v) for k, v in sc.paths.items() if k != "baseline_dir"]
                          + [f"trainer.seed={seed}", override("paths.baseline_dir", str(study_dir(sc) / "baseline")),
                             f"name=trial_{trial.number}"])
            callbacks: list[Callback] = []
            # Optuna reports and prunes single-objective trials only, and only a per-epoch metric
            # has a running value; the objective's own metric, reduce and direction.
            if len(objectives) == 1 and str(objectives[0].metric) in EPOCH_METRICS:
                o = objectives[0]
                callbacks.append(TrialReporter(trial, repeat, cfg.trainer.epochs, curves, str(o.metric),
                                               str(o.reduce), str(o.direction), sc.storage_retry_s, sc.repeats))
            label = trial_label(sc, trial, seed if sc.repeats > 1 else None)
            if repeat:  # the first was checked above, before anything was written: each trains on the study's data
                check_same_data(sc.study_name, stored, cfg)
            result = run_training(cfg, run_dir, callbacks=callbacks, display_name=label)  # writes its run.log
            if callbacks:
                curves.append(callbacks[0].values)
            epochs_run += result.epochs_done
            wall += result.wall_time_s or 0.0
            _set_attrs(trial, sc, epochs_run=epochs_run, wall_time_s=wall)
            if result.status == "pruned":
                raise optuna.TrialPruned(result.stop_reason or "pruned")
            values.append([trial_value(result, o) for o in objectives])
            tests.append(result.test.get("acc", math.nan))
    means = [statistics.fmean(v[i] for v in values) for i in range(len(objectives))]
    first = [v[0] for v in values]
    _set_attrs(trial, sc, values=first, std=statistics.stdev(first) if len(first) > 1 else 0.0,
               test_acc=statistics.fmean(tests), test_acc_std=statistics.stdev(tests) if len(tests) > 1 else 0.0)
    log.info("Trial %d: %s over %d seed(s)", trial.number,
             ", ".join(f"{o.metric} {show_metric(m, o.metric)}" for o, m in zip(objectives, means)), len(values))
    return means[0] if len(means) == 1 else means
