"""A running trial's liveness: its heartbeat thread (a killed worker's trial is then found stale
and retried), and the machine-wide lock local workers take to count and ask for trials."""

from __future__ import annotations

import contextlib
import fcntl
import threading
from pathlib import Path
from typing import Iterator

import optuna


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
