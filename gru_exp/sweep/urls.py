"""Storage URLs checked before anything opens them: SQLite URI parameters, passwords a URL must
percent-encode, and storages that cannot keep a study (in-memory SQLite, read-only)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import sqlalchemy

from gru_exp.errors import ConfigError
from gru_exp.redact import redact, url_password


def check_storage_url(url: str) -> None:
    """ConfigError for a URL the database library would misread: SQLite URI parameters without a
    URI filename (:func:`sqlite_path`), or a password with characters a URL must percent-encode,
    part of which the library would take for the host (and its driver echo in errors)."""
    if url.startswith("sqlite:///"):
        sqlite_path(url)
        return
    ours = url_password(url)
    if ours is None or url.startswith("journal:"):
        return
    try:
        theirs = sqlalchemy.engine.make_url(url).password
    except (sqlalchemy.exc.ArgumentError, ValueError):
        theirs = None
    if unquote(ours) != theirs:
        raise ConfigError(
            f"storage={redact(url)!r}: its password holds characters a URL must percent-encode ('@' as %40, '#' "
            "%23, '/' %2F, '?' %3F); as written, the database library would read part of it as the host. Encode "
            "it (python -c \"import urllib.parse; print(urllib.parse.quote(input(), safe=''))\"), or leave it "
            "out of the URL and set PGPASSWORD.")


# SQLite's URI parameters: they act only on a URI filename (sqlite:///file:<path>?...&uri=true)
_SQLITE_URI_PARAMS = frozenset({"uri", "mode", "cache", "immutable", "nolock", "psow", "vfs", "modeof"})


def journal_path(url: str) -> Path:
    """The file of a ``journal:<file>`` URL (``~`` expanded), where the sweep keeps the journal."""
    return Path(url[len("journal:"):]).expanduser()


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///`` URL (query parameters such as ``?mode=ro`` and the
    ``file:`` prefix of SQLite URIs left out). ConfigError for SQLite URI parameters without a
    URI filename: SQLite would ignore them or make a file named after the whole query."""
    path, _, query = url[len("sqlite:///"):].partition("?")
    path, params = unquote(path), [p for p in query.split("&") if p]
    bare = path[len("file:"):] if path.startswith("file:") else path
    given = sorted({p.split("=")[0].lower() for p in params} & _SQLITE_URI_PARAMS - {"uri"})
    is_uri = path.startswith("file:") and any(p.lower() in ("uri=true", "uri=1") for p in params)
    if (given or path.startswith("file:")) and not is_uri:
        kept = "&".join([p for p in params if p.split("=")[0].lower() != "uri"] + ["uri=true"])
        what = f"SQLite URI parameters ({', '.join(given)}) need" if given else "a file: path needs"
        raise ConfigError(redact(
            f"storage={url!r}: {what} a URI filename, file: before the path and uri=true in the query; "
            f"without them SQLite ignores the parameters or makes a stray file named after the query. Write "
            f"sqlite:///file:{bare}?{kept} (sqlite:///file:<path>?mode=ro&uri=true is read-only), or leave the "
            "parameters out."))
    return Path(bare)


def optuna_tables() -> dict[str, set[str]]:
    """The tables Optuna's RDBStorage makes (and alembic's, which its migrations add), with their
    columns."""
    from optuna.storages._rdb.models import BaseModel  # not at import time: config checks use this module too

    tables = {name: {c.name for c in table.columns} for name, table in BaseModel.metadata.tables.items()}
    return {**tables, "alembic_version": {"version_num"}}


def storage_url(sc: Any) -> str:
    """The sweep's storage: ``storage``, else SQLite under ``paths.sweeps_dir``."""
    return sc.storage or f"sqlite:///{Path(sc.paths.sweeps_dir) / 'optuna.db'}"


def check_persistent(url: str) -> None:
    """ConfigError for a storage a sweep cannot keep a study in: in-memory SQLite (``sqlite://``,
    ``:memory:``, ``mode=memory``: the study would vanish when the worker exits, after reporting
    success), a read-only SQLite URI (``mode=ro``, ``immutable=1``: fine for reports, not for trials),
    or a journal storage without a file name; and a SQLite file of someone else's tables
    (:func:`check_study_database`)."""
    why = "it is an in-memory SQLite database" if in_memory(url) else ""
    if not why and url.startswith("sqlite:///"):
        params = _query(url)
        if params.get("mode") == "ro" or params.get("immutable") in ("1", "true"):
            why = "it is opened read-only, so it cannot be written"
    elif url.startswith("journal:") and (not url[len("journal:"):].strip() or journal_path(url).is_dir()):
        why = "it names no journal file"
    if why:
        raise ConfigError(
            f"storage={redact(url)!r} cannot keep a study: {why}, so the trials would be lost when this command "
            "exits while it reports success. Give a storage that persists: sqlite:///<path to a file>, "
            "journal:<path to a file>, or a database server URL (postgresql://user@host/db); or leave storage unset "
            "for outputs/sweeps/optuna.db.")
    check_study_database(url)


def check_study_database(url: str) -> None:
    """ConfigError for an existing file a study cannot be kept in without writing into someone
    else's data: a SQLite database of tables Optuna did not make (an application's, another
    tool's), or a ``journal:`` file that is not Optuna's journal (notes, a key, a JSONL data file).
    A new or empty file, or a study storage (also one Optuna is making right now: some of its
    tables), passes; a file that is not SQLite is left to the opening, which reports it."""
    if url.startswith("journal:"):
        path = journal_path(url)
        if path.is_file() and path.stat().st_size and not _is_journal(path):
            raise ConfigError(
                f"storage={redact(url)!r}: {path} is not an Optuna journal file (its first line is not a journal "
                "record); a sweep never appends to a file it did not make. Give a new file (storage=journal:<new "
                "file>) or the journal file of the study.")
        return
    if not url.startswith("sqlite:///") or in_memory(url):
        return
    path = sqlite_path(url)
    if not path.is_file() or path.stat().st_size == 0:
        return
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            foreign = _foreign_tables(db)
    except sqlite3.Error:
        return  # not a database (or locked): opening it reports that
    if foreign:
        raise ConfigError(
            f"storage={redact(url)!r}: {path} is a SQLite database of other tables ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}), not a study storage; a sweep never adds its tables to a database "
            "it did not make. Give a new file (storage=sqlite:///<new file>) or another paths.sweeps_dir.")


def _foreign_tables(db: Any) -> list[str]:
    """The tables of SQLite connection ``db`` that Optuna did not make: none in a study database
    (it has Optuna's ``version_info``); else each table whose name or columns are not Optuna's."""
    tables = sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if "version_info" in tables:
        return []
    known = optuna_tables()
    return [t for t in tables if t not in known
            or not {row[0] for row in db.execute("SELECT name FROM pragma_table_info(?)", (t,))} <= known[t]]


def _is_journal(path: Path) -> bool:
    """Whether ``path`` starts with an Optuna journal record (one JSON object with an op_code)."""
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def _query(url: str) -> dict[str, str]:
    query = url.partition("?")[2]
    return {p.split("=")[0].lower(): p.partition("=")[2].lower() for p in query.split("&") if p}


def in_memory(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database (``sqlite://``, ``:memory:``, ``mode=memory``),
    which holds nothing once its process ends."""
    if not url.startswith("sqlite:"):
        return False
    if not url.startswith("sqlite:///"):
        return True
    path = unquote(url[len("sqlite:///"):].partition("?")[0])
    bare = path[len("file:"):] if path.startswith("file:") else path
    return bare in ("", ":memory:") or _query(url).get("mode") == "memory"


def readonly_storage(storage: str) -> Any:
    """The study storage at ``storage`` opened without creating tables or migrating (safe beside
    running workers, and never writing into a file that is not a study database); GruExpError, one
    paragraph, for an in-memory URL or a missing file."""
    import optuna  # not at import time: config checks use this module too
    from optuna.storages.journal import JournalFileBackend

    check_storage_url(storage)
    if in_memory(storage):
        raise ConfigError(f"storage={redact(storage)!r} is an in-memory database: it holds no study once the sweep "
                          "that used it has ended. Give the storage the study was run with.")
    check_study_database(storage)  # a file of someone else's: one paragraph, not the reader's traceback
    if storage.startswith("journal:"):
        path = journal_path(storage)  # the file the sweep wrote: ~ expanded as there
        if not path.is_file():
            raise ConfigError(f"storage={redact(storage)!r}: no such journal file.")
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if storage.startswith("sqlite:///") and not sqlite_path(storage).is_file():
        raise ConfigError(f"storage={redact(storage)!r}: no such SQLite file.")
    return optuna.storages.RDBStorage(storage, skip_table_creation=True, skip_compatibility_check=True)
