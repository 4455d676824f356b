"""Atomic file writes: readers (other workers, reports, dashboards) see the old file or the new
one, never a half-written one. Each write passes two named crash points (see :func:`crash_point`)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a per-process temporary file beside ``path``, then rename it over ``path``."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a per-process temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        crash_point(f"{path.name}:tmp")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # this call's own temporary file (disk full, a signal): never left behind
        raise
    crash_point(path.name)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


CRASH_ENV = "GRU_EXP_TEST_KILL_AT"  # tests only: "<point>:<n>[:INT|TERM]" = SIGKILL (or SIGINT/SIGTERM) at the n-th pass
_passes: dict[str, int] = {}


def crash_point(point: str) -> None:
    """A place where a kill may land between two writes (e.g. ``last.pdparams:tmp``: the new
    checkpoint is written, not yet renamed). A test hook: with ``$GRU_EXP_TEST_KILL_AT`` set to
    ``<point>:<n>`` this process kills itself with SIGKILL the n-th time it passes ``point`` (with
    ``:INT`` or ``:TERM`` appended it sends itself that signal instead, as Ctrl-C or a scheduler
    would), so the crash-consistency test (tests/test_crash_consistency.py) can stop a real
    training at every point; without it this does nothing."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    _passes[point] = _passes.get(point, 0) + 1
    where, _, how = wanted.partition(f"{point}:{_passes[point]}")
    if not where and how in ("", ":INT", ":TERM"):
        os.kill(os.getpid(), {"": signal.SIGKILL, ":INT": signal.SIGINT, ":TERM": signal.SIGTERM}[how])
