"""Helpers shared by the command-line shells: composing the config outside ``@hydra.main`` (from
conf/ or a private snapshot of it), logging for plain CLIs, and cleaning up a run folder that
never started."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

from omegaconf import DictConfig

from gru_exp import config

log = logging.getLogger(__name__)


def compose_config(overrides: Sequence[str], config_name: str = "config",
                   config_dir: Optional[str] = None) -> DictConfig:
    """The config ``python -m gru_exp.train <overrides>`` would run (without Hydra's run dir),
    composed from ``config_dir`` (default: the package's conf/)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config.register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir or config.CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


@contextlib.contextmanager
def conf_snapshot() -> Iterator[str]:
    """A private copy of conf/ for a process that composes configs for hours (a sweep worker):
    editing conf/ meanwhile (a new key, a changed experiment) can neither break nor silently
    change its later trials. The schema it validates against was loaded at start, as was this copy."""
    with tempfile.TemporaryDirectory(prefix="gru_exp_conf_") as tmp:
        target = Path(tmp) / "conf"
        shutil.copytree(config.CONF_DIR, target)
        yield str(target)


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


def discard_unstarted_run(run_dir: Path, stop_at: Path) -> None:
    """Remove a run folder that holds no result yet (no metrics.json), and its empty parents up to
    ``stop_at``, so a rejected command leaves nothing that looks like a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or (run_dir / "metrics.json").exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    while parent != stop_at and stop_at in parent.parents and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
