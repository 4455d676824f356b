"""The study's storage: SQLite by default, any SQLAlchemy URL, or Optuna's journal file; opening
it with heartbeats and stale-trial retries, riding out outages, and the study folder's pointer."""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy.exc
from omegaconf import DictConfig
from optuna.storages.journal import JournalFileBackend

from gru_exp.errors import ConfigError, GruExpError
from gru_exp.files import write_json
from gru_exp.redact import redact
from gru_exp.sweep.space import make_pruner, make_sampler

log = logging.getLogger(__name__)


class StorageLostError(GruExpError):
    """The study's storage stayed unreachable for longer than ``storage_retry_s``."""


def with_storage_retry(action: Callable[[], Any], what: str, budget_s: float) -> Any:
    """Run a storage call; while the database is unreachable, retry with exponential backoff
    (1, 2, 4 ... 30 s) for at most ``budget_s`` seconds, then raise :class:`StorageLostError`."""
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


def open_study(sc: DictConfig) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    """The study (created on first use) and its storage, for heartbeats through public calls."""
    storage = make_storage(sc)
    study = optuna.create_study(study_name=sc.study_name, storage=storage, sampler=make_sampler(sc),
                                pruner=make_pruner(sc), direction=sc.objective.direction, load_if_exists=True)
    return study, storage


def write_study_pointer(sc: DictConfig, out: Path) -> None:
    """``study.json`` in the study folder: where the storage is, so reports find the study."""
    pointer = {"study_name": sc.study_name, "storage": redact(storage_url(sc))}
    target = out / "study.json"
    if not target.exists() or json.loads(target.read_text()) != pointer:
        write_json(target, pointer)
