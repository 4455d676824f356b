"""Logging: one line format for consoles and files, per-trial context prefixes, the CLI handler,
and a run's log file, which also holds what was logged before its folder could be written."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Iterator

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's default, for every file and CLI log
_LOG_CONTEXT: contextvars.ContextVar[str] = contextvars.ContextVar("gru_exp_log_context", default="")


class _ContextFilter(logging.Filter):
    """Adds ``record.context`` (e.g. "[trial 3] "), so interleaved workers' lines say whose they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = _LOG_CONTEXT.get()
        return True


@contextlib.contextmanager
def log_context(label: str) -> Iterator[None]:
    """Prefix every console line logged inside the block with ``[label]``."""
    token = _LOG_CONTEXT.set(f"[{label}] ")
    try:
        yield
    finally:
        _LOG_CONTEXT.reset(token)


def setup_cli_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT.replace("%(message)s", "%(context)s%(message)s")))
    logging.basicConfig(level=level, handlers=[handler])


@contextlib.contextmanager
def file_log(path: Path, new: bool = False) -> Iterator[None]:
    """Copy this process's log lines into ``path`` for the duration; ``new``: a file this call
    makes (FileExistsError, the file untouched, when one is there: never appended to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="x" if new else "a")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


class RunLog:
    """A run's log lines from the moment it starts, kept in memory until :meth:`open` names the
    file (the run's folder is written only after every check passed), then written there as they
    come: the file holds the whole run, checks and data loading included."""

    def __init__(self) -> None:
        self._memory = logging.handlers.MemoryHandler(capacity=1 << 20, flushLevel=logging.CRITICAL + 1)
        self._memory.setFormatter(logging.Formatter(LOG_FORMAT))
        self._file: logging.FileHandler | None = None
        logging.getLogger().addHandler(self._memory)

    def open(self, path: Path) -> None:
        """From now on log into ``path`` (appended: a resumed run continues its log), the lines so far first."""
        self._file = logging.FileHandler(path)
        self._file.setFormatter(logging.Formatter(LOG_FORMAT))
        self._memory.setTarget(self._file)
        self._memory.flush()
        logging.getLogger().removeHandler(self._memory)
        logging.getLogger().addHandler(self._file)

    def close(self) -> None:
        root = logging.getLogger()
        for handler in (self._memory, self._file):
            if handler is not None:
                root.removeHandler(handler)
                handler.close()
