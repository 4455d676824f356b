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

import contextlib
import fcntl
import logging
import math
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from gru_exp.config.knobs import defaults
from gru_exp.config.sweep import show_metric
from gru_exp.notebook import NOTEBOOK_CONFIG
from gru_exp.redact import redact
from gru_exp.sweep.objective import _set_attrs, run_trial
from gru_exp.sweep.space import can_take, make_sampler
from gru_exp.sweep.storage import (
    StorageLostError,
    claim_study_dir,
    open_study,
    study_dir,
    with_storage_retry,
)
from gru_exp.sweep.summary import objectives, write_best_so_far, write_summary

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, study: optuna.Study, trial: optuna.Trial,
              interval: int) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` s, so a killed worker's trial is found stale."""
    if not hasattr(storage, "record_heartbeat"):
        yield
        return
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), trial.number)
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; grace_period absorbs it
                storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True, name="optuna-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def local_lock(path: Path) -> Iterator[None]:
    """An exclusive lock among this machine's workers (count the trials, then ask for one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


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
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    started = time.monotonic()
    deadline = started + sc.timeout if sc.timeout else math.inf
    max_failures = sc.max_failures if sc.max_failures is not None else sc.n_trials
    ran: dict[str, Any] = {"trials": 0, "failed": 0, "stopped": ""}
    failed = 0

    def summarize() -> None:
        with_storage_retry(lambda: write_summary(study, out), "writing the summary", sc.storage_retry_s)
        with_storage_retry(lambda: write_best_so_far(study, out, Path(sc.paths.output_dir)), "writing the summary",
                           sc.storage_retry_s)

    try:
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
        else:
            log.info("timeout=%s s reached: no new trial starts", sc.timeout)
        if failed >= max_failures:
            ran["stopped"] = (f"the study has {failed} trials that raised (max_failures={max_failures}); see "
                              f"{out / 'summary.md'} for their errors")
        summarize()
    finally:
        signal.signal(signal.SIGTERM, previous)
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
            reason = "SIGTERM" if isinstance(stop, _Terminated) else "KeyboardInterrupt"
            _set_attrs(trial, sc, error=f"interrupted ({reason})")
            _tell(study, trial, sc, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retried_from": trial.number})  # resumes next run
            log.warning("Trial %d interrupted (%s): marked FAIL and queued again for the next run", trial.number,
                        reason)
            write_summary(study, study_dir(sc))
            raise
        except StorageLostError:
            raise  # nothing can be recorded; the heartbeat path recovers the trial
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
