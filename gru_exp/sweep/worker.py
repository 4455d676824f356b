"""The worker loop: ask for trials until the study holds ``n_trials`` finished ones, with
heartbeats, a machine-wide lock, signals and the study's summary after every trial.

Why not ``Study.optimize``: its ``n_trials`` counts this process's trials, not the study's
total across workers and resumes (``MaxTrialsCallback`` checks after a trial ends, so N workers
overshoot by up to N-1); here workers count and ask under one file lock, so exactly ``n_trials``
finish. It also re-seeds the sampler per trial (``make_sampler(stream=...)``) so resumed studies
and concurrent workers never repeat draws, and on Ctrl-C/SIGTERM queues the interrupted
configuration again instead of only failing it. Optuna's own pieces do the rest: ``ask``/``tell``,
``fail_stale_trials`` with ``RetryHeartbeatStaleTrialCallback``, ``enqueue_trial``, the pruners.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from gru_exp.config.knobs import defaults
from gru_exp.config.sweep import show_metric
from gru_exp.notebook import NOTEBOOK_CONFIG
from gru_exp.redact import redact
from gru_exp.sweep.objective import _set_attrs, run_trial
from gru_exp.sweep.space import can_take, make_sampler
from gru_exp.errors import DataChangedError, DiskFullError
from gru_exp.files import Terminated, sigterm_raises
from gru_exp.sweep.storage import (
    StorageFullError,
    StorageLostError,
    claim_study_dir,
    open_study,
    storage_url,
    study_dir,
    with_storage_retry,
)
from gru_exp.sweep.liveness import heartbeat, local_lock
from gru_exp.sweep.best_so_far import write_best_so_far
from gru_exp.sweep.cost import WORKERS_ENV, log_cost, space_estimate
from gru_exp.sweep.summary import objectives, write_summary
from gru_exp.train.run import is_disk_full

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def notebook_values(params: DictConfig) -> dict[str, Any]:
    """The notebook's value of every searched key the space can take: its hyperparameters, and for
    knobs it did not have (bigrams, pooling, ...) their declared defaults, which are its model."""
    notebook = {**defaults(), **NOTEBOOK_CONFIG}
    return {k: notebook[k] for k, spec in params.items() if k in notebook and can_take(spec, notebook[k])}


def run_worker(sc: DictConfig, compose: Callable[[Sequence[str]], DictConfig]) -> dict[str, int]:
    """Run trials until the study holds ``n_trials`` finished (COMPLETE or PRUNED) trials."""
    study, storage = open_study(sc)
    out = claim_study_dir(sc, study)
    if sc.enqueue_baseline and not any(t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)):
        values = notebook_values(sc.params)
        study.enqueue_trial(values, user_attrs={"baseline": True}, skip_if_exists=True)
        log.info("Enqueued the notebook's configuration as a trial: %s", values)
    estimate = space_estimate(sc, compose(list(sc.base)))
    if not os.environ.get(WORKERS_ENV):  # a worker the sweep command started: the command logged it
        log_cost(sc, study, estimate)
    started = time.monotonic()
    deadline = started + sc.timeout if sc.timeout else math.inf
    max_failures = sc.max_failures if sc.max_failures is not None else sc.n_trials
    ran: dict[str, Any] = {"trials": 0, "failed": 0, "stopped": ""}

    def summarize() -> None:
        with_storage_retry(lambda: write_summary(study, out), "writing the summary", sc.storage_retry_s)
        with_storage_retry(lambda: write_best_so_far(study, out, Path(sc.paths.output_dir)), "writing the summary",
                           sc.storage_retry_s)

    try:
        ran["estimate"], ran["study"] = estimate, study
        with sigterm_raises():  # SIGTERM handled like Ctrl-C
            return _loop(study, storage, out, sc, compose, started, deadline, max_failures, summarize, ran)
    except StorageFullError as exc:
        raise DiskFullError(f"{exc} The storage: {redact(storage_url(sc))}.") from None
    except OSError as exc:  # a summary or lock file: the disk of the study folder is full
        if not is_disk_full(exc):
            raise
        raise DiskFullError(f"No space left on device while writing {exc.filename or out}. The study is "
                            "consistent: free some space, then run the same command again to resume it.") from None


def _loop(study, storage, out, sc, compose, started, deadline, max_failures, summarize, ran) -> dict[str, Any]:
    """Ask, run and summarise trials until the budget, the timeout or max_failures is reached."""
    failed = 0
    while time.monotonic() < deadline:
        with local_lock(out / ".ask.lock"):
            trial, running, failed = with_storage_retry(lambda: _next_trial(study, sc, max_failures),
                                                        "starting a trial", sc.storage_retry_s)
        if trial is None:
            if running == 0 or failed >= max_failures:
                break
            # Budget taken, but a running trial may belong to a dead worker: wait until it
            # finishes or goes stale (then its retry runs here).
            log.info("Waiting for %d running trial(s) of other workers", running)
            time.sleep(min(sc.heartbeat_interval, 10))
            continue
        ran["trials"] += 1
        try:
            state = _run_one(study, storage, trial, sc, compose)
        except GridExhausted:
            summarize()
            log.info("The grid sampler has run every combination: stopping")
            break
        ran["failed"] += state == TrialState.FAIL
        summarize()
        log.info("%s", progress_line(study, sc, time.monotonic() - started, deadline - time.monotonic()))
        log_cost(sc, study, ran["estimate"], deadline - time.monotonic())
    else:
        log.info("timeout=%s s reached: no new trial starts", sc.timeout)
    if failed >= max_failures:
        ran["stopped"] = (f"the study has {failed} trials that raised (max_failures={max_failures}); see "
                          f"{out / 'summary.md'} for their errors")
    summarize()
    return ran


def progress_line(study: optuna.Study, sc: DictConfig, elapsed_s: float, left_s: float) -> str:
    """Where the study stands: finished of n_trials, by state, the best so far, time used and left."""
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    done = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
    line = (f"Study {sc.study_name!r}: {done}/{sc.n_trials} trials finished ({count[TrialState.COMPLETE]} complete, "
            f"{count[TrialState.PRUNED]} pruned; {count[TrialState.FAIL]} failed)")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    objs = objectives(study)  # as stored with the study: each objective's metric and direction
    if complete and len(objs) > 1:
        line += f", Pareto front of {len(study.best_trials)} trial(s)"
    elif complete:
        metric, direction = objs[0]
        best = (max if direction == "maximize" else min)(complete, key=lambda t: t.value)
        line += f", best {metric} {show_metric(best.value, metric)} (trial {best.number}, {direction})"
    line += f"; this worker {elapsed_s / 60:.1f} min"
    if math.isfinite(left_s):
        line += f", {max(left_s, 0) / 60:.1f} min left before timeout"
    return line


def _next_trial(study: optuna.Study, sc: DictConfig, max_failures: int) -> tuple[Optional[optuna.Trial], int, int]:
    """Fail stale trials, count, and ask for a trial unless the budget is taken.
    Returns (trial or None, running trials, failed trials that raised)."""
    with warnings.catch_warnings():  # fail_stale_trials is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a killed worker's RUNNING trial -> FAIL + retry
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in COUNTED for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    # Raised errors count toward max_failures; killed or interrupted trials are retried instead.
    failed = sum(t.state == TrialState.FAIL and t.user_attrs.get("raised", False) for t in trials)
    if done + running >= sc.n_trials or failed >= max_failures:
        return None, running, failed
    study.sampler = make_sampler(sc, stream=len(trials))
    with warnings.catch_warnings():  # "heartbeat is meant for optimize()": we beat ourselves
        warnings.simplefilter("ignore", UserWarning)
        return study.ask(), running, failed


def _run_one(study: optuna.Study, storage: optuna.storages.BaseStorage, trial: optuna.Trial, sc: DictConfig,
             compose: Callable[[Sequence[str]], DictConfig]) -> TrialState:
    with heartbeat(storage, study, trial, sc.heartbeat_interval):
        try:
            value = run_trial(trial, sc, compose)
        except optuna.TrialPruned as pruned:
            log.info("Trial %d pruned: %s", trial.number, pruned)
            _tell(study, trial, sc, state=TrialState.PRUNED)
            return TrialState.PRUNED
        except KeyboardInterrupt as stop:
            reason = "SIGTERM" if isinstance(stop, Terminated) else "KeyboardInterrupt"
            _set_attrs(trial, sc, error=f"interrupted ({reason})")
            _tell(study, trial, sc, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retried_from": trial.number})  # resumes next run
            log.warning("Trial %d interrupted (%s): marked FAIL and queued again for the next run", trial.number,
                        reason)
            write_summary(study, study_dir(sc))
            raise
        except StorageLostError:
            raise  # nothing can be recorded; the heartbeat path recovers the trial
        except DataChangedError as exc:  # not the trial's fault: stop, keep its configuration for the next run
            try:
                _set_attrs(trial, sc, error="stopped: the study's data changed")
                _tell(study, trial, sc, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={"retried_from": trial.number})
            except Exception:  # the storage is gone too: the heartbeat fails the trial, and it runs again
                log.warning("Trial %d could not be marked stopped; its heartbeat will fail it", trial.number)
            raise DataChangedError(f"Trial {trial.number}: {exc}") from None
        except DiskFullError as exc:  # not the trial's fault: stop, keep its configuration for the next run
            where = str(exc).split(": ", 1)[0] if "No space left on device while writing" in str(exc) else str(exc)
            try:
                _set_attrs(trial, sc, error=f"stopped: {where}")
                _tell(study, trial, sc, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={"retried_from": trial.number})
                queued = "its configuration is queued and runs again from its start"
            except Exception:  # the storage is on the full disk too: the heartbeat recovers the trial
                queued = "the trial is failed by heartbeat and run again"
            raise DiskFullError(f"Trial {trial.number}: {where.rstrip('.')}. The sweep stops here; free some space, then "
                                f"run the same command again: {queued}.") from None
        except Exception as exc:  # NaN loss, impossible combination, out of memory, ...
            _set_attrs(trial, sc, error=redact(f"{type(exc).__name__}: {exc}"), raised=True)
            _tell(study, trial, sc, state=TrialState.FAIL)
            log.error("Trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            return TrialState.FAIL
    _tell(study, trial, sc, values=value)
    return TrialState.COMPLETE


class GridExhausted(Exception):
    """The grid sampler has run every combination."""


def _tell(study: optuna.Study, trial: optuna.Trial, sc: DictConfig, **kwargs: Any) -> None:
    """``study.tell`` through storage outages. The grid sampler's "grid exhausted" call of
    study.stop(), which only works inside study.optimize, becomes :class:`GridExhausted` (the trial
    is stored before it); a trial another worker already failed as stale is left to its retry."""
    try:
        with_storage_retry(lambda: study.tell(trial, **kwargs), f"finishing trial {trial.number}", sc.storage_retry_s)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("Trial %d was failed as stale by another worker meanwhile; its retry will run", trial.number)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        raise GridExhausted() from exc
