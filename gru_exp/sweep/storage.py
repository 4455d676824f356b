"""The study's storage: SQLite by default, any SQLAlchemy URL, or Optuna's journal file; opening
it with heartbeats and stale-trial retries, riding out outages, and the study folder's pointer."""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import optuna
import sqlalchemy.exc
from omegaconf import DictConfig
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection

from gru_exp.config.sweep import objective_list
from gru_exp.errors import ConfigError, DiskFullError, GruExpError
from gru_exp.redact import redact
from gru_exp.sweep.identity import IDENTITY_ATTR, check_identity, store_identity
from gru_exp.sweep.space import make_pruner, make_sampler, space_problems
from gru_exp.sweep.study_file import STUDY_FILE, read_pointer, study_dir, write_pointer
from gru_exp.sweep.urls import check_persistent, check_storage_url, journal_path, sqlite_path, storage_url

log = logging.getLogger(__name__)
UID_WAIT_S = 30.0  # how long a worker waits for the worker that created the study to give it its id


class StorageLostError(GruExpError):
    """The study's storage stayed unreachable for longer than ``storage_retry_s``."""


class StorageFullError(DiskFullError):
    """The study's database has no space left (SQLite "database or disk is full"): not an outage,
    so it is reported at once instead of retried."""


def _full(exc: BaseException) -> bool:
    """Whether a storage error (or the database error Optuna wrapped in it) says the disk is full."""
    seen: Optional[BaseException] = exc
    for _ in range(5):
        if seen is None:
            return False
        text = str(seen).lower()
        if "disk is full" in text or "no space left" in text or "disk full" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
            if _full(exc):
                raise StorageFullError(
                    f"No space left on device for the study's storage while {what} ({short}). Free some space, "
                    "then run the same command again: the study resumes (a trial left running is failed by "
                    "heartbeat and run again).") from None
            if time.monotonic() + delay > deadline:
                raise StorageLostError(
                    f"The study's storage was unreachable for {budget_s:.0f} s while {what} ({short}). This "
                    "worker stops; the trial it ran is failed by heartbeat and retried when any worker runs again."
                ) from None
            log.warning("Storage unreachable while %s (%s); retrying in %.0f s", what, short, delay)
            time.sleep(delay)
            delay = min(2 * delay, 30.0)


def make_storage(sc: DictConfig) -> optuna.storages.BaseStorage:
    """SQLite by default, any SQLAlchemy URL, or ``journal:<file>`` for Optuna's journal file."""
    url = storage_url(sc)
    check_storage_url(url)
    check_persistent(url)
    try:
        if url.startswith("journal:"):
            path = journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:///"):
            sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"storage={redact(url)!r}: its folder cannot be made ({type(exc).__name__}: "
                          f"{exc.strerror or exc}). Give a path whose folders are folders and writable.") from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}  # drop connections a server restart broke
    if url.startswith("sqlite:///"):
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
            text = f"{type(exc).__name__}{exc}"
            if attempt < 4 and ("IntegrityError" in text or "already exists" in text):  # another made it first
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
    """The study (created on first use) and its storage, for heartbeats through public calls.

    A new study gets a unique id (user attribute ``gru_exp_uid``) and the names of its objectives;
    the study folder records the id, so a second study of the same name (another storage, an
    emptied database) can never write into this one's trial folders. Only the worker whose
    ``create_new_study`` succeeds gives the id (the database decides, once); workers that start the
    same new study at that moment wait for it instead of writing ids of their own."""
    _, problem = _foreign_folder(sc, study_dir(sc), None)
    if problem:  # before the study is created: a refused sweep leaves no new study in its storage
        raise ConfigError(problem)
    storage = make_storage(sc)
    objectives = objective_list(sc)
    sampler, pruner = make_sampler(sc), make_pruner(sc)
    try:
        try:  # looked up first: a journal storage records even a duplicate create, so a refused resume would write
            storage.get_study_id_from_name(sc.study_name)
            created = False
        except KeyError:
            try:
                storage.create_new_study([StudyDirection[str(o.direction).upper()] for o in objectives], sc.study_name)
                created = True
            except optuna.exceptions.DuplicatedStudyError:
                created = False
        study = optuna.load_study(study_name=sc.study_name, storage=storage, sampler=sampler, pruner=pruner)
        has_uid = False
        if not created:  # checked before anything is written: a refused resume leaves the study as it was
            _check_objectives(study, sc, objectives)
            has_uid = _has_uid(study)  # waits for the worker that has just created it
        ident = check_identity(study, sc, storage_url(sc))
        changed = [] if created else space_problems(study, sc.params)
        if changed:
            raise ConfigError(f"study_name={sc.study_name!r} in {redact(storage_url(sc))} cannot go on with this search "
                              f"space: {'; '.join(changed)}. Give the space the study was searched with, or another "
                              "study_name for a new study. Nothing was written.")
        if created or not has_uid:
            _first_open(study, sc, ident, created)
        elif IDENTITY_ATTR not in study.user_attrs:
            store_identity(study, ident, first_resume=True)
    except ValueError as exc:  # e.g. the stored study has another number of objectives
        raise ConfigError(f"study_name={sc.study_name!r} in {redact(storage_url(sc))} cannot be opened as this "
                          f"sweep asks: {exc}. Use another study_name for another set of objectives.") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError) as exc:
        cause = exc.__cause__ or exc  # Optuna wraps the database's own error
        detail = redact(" ".join(str(cause).split()))[:300]
        raise ConfigError(f"storage={redact(storage_url(sc))!r} cannot be written ({type(exc).__name__}: {detail}). "
                          "Check that the database (file and folder) is writable by this user.") from None
    return study, storage


def _check_objectives(study: optuna.Study, sc: DictConfig, objectives: list) -> None:
    """A stored study continues only with the objectives it was made for: the same directions in the
    same order and, when it recorded them, the same metrics (else its trials' values would be read as
    another metric's, and "best" would turn upside down)."""
    wanted = [f"{o.metric} ({str(o.direction).lower()})" for o in objectives]
    names = study.metric_names or [str(o.metric) for o in objectives]
    stored = [f"{name} ({d.name.lower()})" for name, d in zip(names, study.directions)]
    if len(names) != len(study.directions):
        stored = [d.name.lower() for d in study.directions]
    if stored != wanted:
        raise ConfigError(f"study_name={sc.study_name!r} in {redact(storage_url(sc))} was made for the objectives "
                          f"[{', '.join(stored)}], this sweep asks for [{', '.join(wanted)}]. A study keeps its "
                          "objectives: use another study_name for these, or the sweep file it was started with.")


def _has_uid(study: optuna.Study) -> bool:
    """Whether the study has its id, waiting up to UID_WAIT_S while another worker that has just
    created it gives it one (its identity comes first). False for a study from before ids (it has
    trials or other attributes)."""
    deadline = time.monotonic() + UID_WAIT_S
    while "gru_exp_uid" not in study.user_attrs:
        if set(study.user_attrs) - {IDENTITY_ATTR} or study.get_trials(deepcopy=False) or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _first_open(study: optuna.Study, sc: DictConfig, ident: dict, created: bool) -> None:
    """The study's identity, then its id (other workers wait for the id, so they find the identity
    there), then what the sweep searches."""
    if IDENTITY_ATTR not in study.user_attrs:
        store_identity(study, ident, first_resume=not created)
    if "gru_exp_uid" not in study.user_attrs:
        study.set_user_attr("gru_exp_uid", uuid.uuid4().hex)
    study.set_user_attr("base", list(sc.base))
    study.set_user_attr("params", sorted(sc.params))
    with warnings.catch_warnings():  # set_metric_names is "experimental"; optuna-dashboard shows them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([str(o.metric) for o in objective_list(sc)])


# What a study writes into its folder besides trial_<n>/ (summary, trials table, best configuration,
# the notebook baseline's and the best-so-far curve's VisualDL folders).
STUDY_OUTPUTS = frozenset({"summary.md", "trials.csv", "best.yaml", "conf", "baseline", "best_so_far"})


def _foreign_folder(sc: DictConfig, out: Path, uid: Optional[str]) -> tuple[Optional[dict], Optional[str]]:
    """``out``'s study.json (None without one) and, when the folder is another study's or holds
    files a study writes without being a study's, why this study may not use it. Without ``uid``
    (before the study is opened) only what is known then: another storage's folder, files without
    a study.json."""
    storage = redact(storage_url(sc))
    try:
        owner = read_pointer(out)
    except ValueError:
        owner = {"storage": f"unreadable {STUDY_FILE}"}
    if owner is None and out.is_dir() and any(out.glob("trial_*")):
        owner = {"storage": f"unknown (no {STUDY_FILE})"}
    if owner is None and out.is_dir():  # no study.json: files a study writes here would be someone else's
        found = sorted(p.name for p in out.iterdir() if p.name in STUDY_OUTPUTS)
        if found:
            return owner, (f"The folder {out} holds {', '.join(found)} but no {STUDY_FILE}: it is not the folder of a "
                           f"study gru-exp made, and this study ({sc.study_name!r}) would write over them. Use another "
                           "study_name, or move that folder away first.")
    if owner is None or (uid is not None and owner.get("uid") == uid):
        return owner, None
    adopt = "uid" not in owner and owner.get("study_name") == sc.study_name and owner.get("storage") == storage
    if adopt or (uid is None and owner.get("storage") == storage):  # adopted / decided once the study's id is known
        return owner, None
    return owner, (f"The folder {out} holds the trials of another study named {sc.study_name!r} (storage "
                   f"{owner.get('storage')}, id {owner.get('uid', 'none')}); this study (storage {storage}"
                   f"{f', id {uid}' if uid else ''}) would overwrite them. Use another study_name, or move that folder "
                   "away first.")


def claim_study_dir(sc: DictConfig, study: optuna.Study) -> Path:
    """The study's folder, made or checked: refused with a clear error when it belongs to another
    study (another storage or an emptied database with the same study name), so no trial folder
    is ever overwritten. Writes ``study.json``: the study's id and where its storage is."""
    out = study_dir(sc)
    uid = study.user_attrs["gru_exp_uid"]
    pointer = {"study_name": sc.study_name, "storage": redact(storage_url(sc)), "uid": uid}
    owner, problem = _foreign_folder(sc, out, uid)
    if problem:
        raise ConfigError(problem)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if owner != pointer:
            write_pointer(out, **pointer)
    except OSError as exc:
        raise ConfigError(f"The study folder {out} cannot be written ({exc.strerror or exc}); check paths.sweeps_dir "
                          "or GRU_EXP_HOME.") from None
    return out
