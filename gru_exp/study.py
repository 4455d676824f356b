"""Optuna studies driven directly: storage, the worker loop, one trial = compose + run_training.

A trial's sampled values become Hydra overrides on the sweep's ``base``; the trial config is what
``python -m gru_exp.train <base> <sampled>`` would run, and it is trained by the library's
:func:`~gru_exp.pipeline.run_training` with a :class:`TrialReporter` callback that reports each
epoch to Optuna and stops the run when the pruner says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import signal
import socket
import statistics
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from gru_exp.baseline import NOTEBOOK_CONFIG
from gru_exp.cli import LOG_FORMAT, log_context
from gru_exp.errors import ConfigError, GruExpError
from gru_exp.files import write_json
from gru_exp.redact import redact
from gru_exp.search_space import make_pruner, make_sampler, suggest_overrides, trial_overrides
from gru_exp.summary import write_summary
from gru_exp.training import Callback, StopRun, TrainState

log = logging.getLogger(__name__)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


class StorageLostError(GruExpError):
    """The study's storage stayed unreachable for longer than ``storage_retry_s``."""


def with_storage_retry(action: Callable[[], Any], what: str, budget_s: float) -> Any:
    """Run a storage call; while the database is unreachable, retry with exponential backoff
    (1, 2, 4 ... 30 s) for at most ``budget_s`` seconds, then raise :class:`StorageLostError`."""
    import sqlalchemy.exc

    transient = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                 optuna.exceptions.StorageInternalError)
    deadline, delay = time.monotonic() + budget_s, 1.0
    while True:
        try:
            return action()
        except transient as exc:
            short = redact(" ".join(str(exc).split()))[:200]
            if time.monotonic() + delay > deadline:
                raise StorageLostError(
                    f"The study's storage was unreachable for {budget_s:.0f} s while {what} ({short}). This "
                    "worker stops; the trial it ran is failed by heartbeat and retried when any worker runs again."
                ) from None
            log.warning("Storage unreachable while %s (%s); retrying in %.0f s", what, short, delay)
            time.sleep(delay)
            delay = min(2 * delay, 30.0)


def study_dir(sc: DictConfig) -> Path:
    return Path(sc.paths.sweeps_dir) / sc.study_name


def storage_url(sc: DictConfig) -> str:
    return sc.storage or f"sqlite:///{Path(sc.paths.sweeps_dir) / 'optuna.db'}"


def make_storage(sc: DictConfig) -> optuna.storages.BaseStorage:
    """SQLite by default, any SQLAlchemy URL, or ``journal:<file>`` for Optuna's journal file."""
    url = storage_url(sc)
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}  # drop connections a server restart broke
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 120}}  # wait for other workers' writes, don't fail
    for attempt in range(5):  # workers started together race to create the schema: the losers retry
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; we rely on them
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=sc.heartbeat_interval,
                    grace_period=sc.grace_period,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=sc.max_retry),
                )
        except Exception as exc:
            if attempt < 4 and "IntegrityError" in f"{type(exc).__name__}{exc}":
                time.sleep(0.5 * (attempt + 1))
                continue
            detail = redact(" ".join(str(exc).split()))[:400]
            raise ConfigError(
                f"storage={redact(url)!r} cannot be opened ({type(exc).__name__}: {detail}). Check the URL "
                "(dialect://user@host:port/database), that the server is running and reachable, the user and "
                "password (PGPASSWORD or the URL), and that the database driver is installed "
                "(pip install -e .[postgres] for PostgreSQL)."
            ) from None
    raise AssertionError("unreachable")


def open_study(sc: DictConfig) -> optuna.Study:
    return optuna.create_study(
        study_name=sc.study_name, storage=make_storage(sc), sampler=make_sampler(sc), pruner=make_pruner(sc),
        direction=sc.objective.direction, load_if_exists=True,
    )


def write_study_pointer(sc: DictConfig, out: Path) -> None:
    """``study.json`` in the study folder: where the storage is, so reports find the study."""
    pointer = {"study_name": sc.study_name, "storage": redact(storage_url(sc))}
    target = out / "study.json"
    if not target.exists() or json.loads(target.read_text()) != pointer:
        write_json(target, pointer)


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
        series = [getattr(h, self.metric) for h in state.history]
        if self.reduce == "last":
            return series[-1]
        return max(series) if self.direction == "maximize" else min(series)

    def on_epoch_end(self, state: TrainState) -> None:
        value = self.running_value(state)
        self.values.append(value)
        e = len(self.values)
        mean = statistics.fmean([run[e - 1] for run in self.earlier if len(run) >= e] + [value])
        step = self.repeat * self.epochs + e
        what = f"reporting epoch {e} of trial {self.trial.number}"
        with_storage_retry(lambda: self.trial.report(mean, step=step), what, self.storage_retry_s)
        if step < self.last_step and with_storage_retry(self.trial.should_prune, what, self.storage_retry_s):
            raise StopRun("pruned", f"pruned after epoch {e} of repeat {self.repeat + 1} (objective {mean:.4f})")


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial: optuna.Trial, interval: int) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` s, so a killed worker's trial is found stale."""
    if not hasattr(storage, "record_heartbeat"):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; grace_period absorbs it
                storage.record_heartbeat(trial._trial_id)
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
def file_log(path: Path) -> Iterator[None]:
    """Copy this process's log lines into ``path`` for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


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


def _set_attrs(trial: optuna.Trial, sc: DictConfig, **attrs: Any) -> None:
    for key, value in attrs.items():
        with_storage_retry(lambda: trial.set_user_attr(key, value), f"recording trial {trial.number}",
                           sc.storage_retry_s)


def run_trial(trial: optuna.Trial, sc: DictConfig, compose: Callable[[Sequence[str]], DictConfig]) -> float:
    """Train the trial's configuration ``repeats`` times; the objective is the mean."""
    from gru_exp.pipeline import run_training

    overrides = trial_overrides(sc.base, suggest_overrides(trial, sc.params))
    first_seed = int(compose(overrides).trainer.seed)
    trial_dir = study_dir(sc) / f"trial_{trial.number}"
    command = "python -m gru_exp.train " + " ".join(overrides)
    _set_attrs(trial, sc, command=command, run_dir=str(trial_dir), host=socket.gethostname(), pid=os.getpid())
    values, tests, curves, epochs_run, wall = [], [], [], 0, 0.0
    with file_log(trial_dir / "trial.log"), log_context(f"trial {trial.number}"):
        log.info("Trial %d: %s", trial.number, redact(command))
        for repeat in range(sc.repeats):
            seed = first_seed + repeat
            run_dir = trial_dir / f"seed_{seed}" if sc.repeats > 1 else trial_dir
            cfg = compose(overrides + [f"paths.{k}={v}" for k, v in sc.paths.items() if k != "baseline_dir"] + [
                f"trainer.seed={seed}", f"paths.baseline_dir={study_dir(sc) / 'baseline'}", f"name=trial_{trial.number}",
            ])
            reporter = TrialReporter(trial, repeat, cfg.trainer.epochs, curves, sc.objective.metric,
                                     sc.objective.reduce, sc.objective.direction, sc.storage_retry_s, sc.repeats)
            label = f"trial {trial.number}" + (f" seed {seed}" if sc.repeats > 1 else "") + ": " + " ".join(
                o for o in overrides if o.split("=", 1)[0] in sc.params)
            with file_log(run_dir / "run.log") if sc.repeats > 1 else contextlib.nullcontext():
                result = run_training(cfg, run_dir, callbacks=[reporter], display_name=label)
            curves.append(reporter.values)
            epochs_run += result.epochs_done
            wall += result.record.get("wall_time_s", 0.0)
            _set_attrs(trial, sc, epochs_run=epochs_run, wall_time_s=wall)
            if result.status == "pruned":
                raise optuna.TrialPruned(result.record.get("stop_reason", "pruned"))
            values.append(reporter.values[-1])
            tests.append(result.test.get("acc", math.nan))
    mean = statistics.fmean(values)
    _set_attrs(trial, sc, values=values, std=statistics.stdev(values) if len(values) > 1 else 0.0,
               test_acc=statistics.fmean(tests), test_acc_std=statistics.stdev(tests) if len(tests) > 1 else 0.0)
    log.info("Trial %d: objective %.4f over %d seed(s)", trial.number, mean, len(values))
    return mean


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def run_worker(sc: DictConfig, compose: Callable[[Sequence[str]], DictConfig]) -> dict[str, int]:
    """Run trials until the study holds ``n_trials`` finished (COMPLETE or PRUNED) trials."""
    study = open_study(sc)
    out = study_dir(sc)
    out.mkdir(parents=True, exist_ok=True)
    write_study_pointer(sc, out)
    if sc.enqueue_baseline and not any(t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)):
        values = {k: v for k, v in NOTEBOOK_CONFIG.items() if k in sc.params}
        study.enqueue_trial(values, user_attrs={"baseline": True}, skip_if_exists=True)
        log.info("Enqueued the notebook's configuration as a trial: %s", values)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    started = time.monotonic()
    deadline = started + sc.timeout if sc.timeout else math.inf
    max_failures = sc.max_failures if sc.max_failures is not None else sc.n_trials
    ran = {"trials": 0, "failed": 0}
    failed = 0

    def summarize() -> None:
        with_storage_retry(lambda: write_summary(study, out), "writing the summary", sc.storage_retry_s)

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
                state = _run_one(study, trial, sc, compose)
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
            log.warning("Stopping: the study has %d failed trials (max_failures=%d)", failed, max_failures)
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
    if complete:
        best = (max if sc.objective.direction == "maximize" else min)(complete, key=lambda t: t.value)
        line += f", best {best.value:.4f} (trial {best.number})"
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


def _run_one(study: optuna.Study, trial: optuna.Trial, sc: DictConfig,
             compose: Callable[[Sequence[str]], DictConfig]) -> TrialState:
    with heartbeat(study._storage, trial, sc.heartbeat_interval):
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
