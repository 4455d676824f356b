"""Logging: one line format for consoles and files, per-trial context prefixes, the CLI handler."""

from __future__ import annotations

import contextlib
import contextvars
import logging
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
