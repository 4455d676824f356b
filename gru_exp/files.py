"""Atomic file writes: readers (other workers, reports, dashboards) see the old file or the new
one, never a half-written one. Each write passes two named crash points (see :func:`crash_point`).
A folder gru-exp rewrites (the baseline run, a study's best-so-far curve) is replaced whole, and
only while it is still gru-exp's (:func:`replace_own_folder`); SIGTERM can be turned into an
exception for a block (:func:`sigterm_raises`) so its ``finally`` removes its temporary files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a per-process temporary file beside ``path``, then rename it over ``path``."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file of its own beside ``path`` (a unique name: never someone
    else's file), then rename it over ``path``."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.chmod(0o666 & ~current_umask())  # a file like any other (mkstemp makes it private)
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``kill``), raised like Ctrl-C inside :func:`sigterm_raises`."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (a KeyboardInterrupt), so ``finally``
    blocks run and remove what the command wrote so far; the earlier handler is restored after."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def new_folder_beside(target: Path, what: str) -> Path:
    """A new folder of this process's own beside ``target`` (a unique name nobody else holds:
    ``.<name>.<what>-XXXXXXXX``), with the permissions of any folder the user makes (not
    mkdtemp's private ones), to be renamed to ``target`` when complete."""
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.{what}-", dir=target.parent))
    folder.chmod(0o777 & ~current_umask())
    return folder


def current_umask() -> int:
    """This process's umask: from /proc on Linux (reading it with os.umask means setting it for a
    moment, a race with other threads), else os.umask set back at once."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    umask = os.umask(0)
    os.umask(umask)
    return umask


def replace_own_folder(new: Path, target: Path, ours: Callable[[Path], bool]) -> bool:
    """Move the folder ``new`` to ``target``, replacing the folder there only while ``ours`` says
    gru-exp wrote it (regular files only). The earlier folder is first renamed to a private name
    beside it and checked again there, where nothing else writes: a file someone added after the
    caller's own check is never removed; the earlier folder goes back as it was (also when this is
    interrupted before ``new`` is in place) and ``new`` stays for the caller to discard. Returns
    whether ``new`` is now at ``target`` (False too when another process put its own folder there
    meanwhile, or ``target`` stopped being a folder)."""
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))  # empty: a folder renames over it
    placed = False
    try:
        try:
            os.replace(target, aside)
        except FileNotFoundError:
            pass
        except OSError:  # a file or link there now: not gru-exp's to move
            return False
        if any(aside.iterdir()) and not ours(aside):
            return False  # changed since the caller's check: back as it was (finally)
        try:
            os.rename(new, target)
        except OSError:  # another process put its folder there in between: keep it
            return False
        placed = True
        return True
    finally:
        if not placed and any(aside.iterdir()):
            with contextlib.suppress(OSError):  # else it stays aside, kept with a warning (below)
                os.rename(aside, target)
        _remove_own(aside, ours)


def _remove_own(aside: Path, ours: Callable[[Path], bool]) -> None:
    """Remove ``aside`` (a folder :func:`replace_own_folder` made) and the files it holds when they
    are gru-exp's; anything else there is kept, with a warning naming the folder."""
    if not aside.is_dir():
        return
    entries = list(aside.iterdir())
    if entries and not ours(aside):
        log.warning("Kept %s: it holds files gru-exp did not write (%s); move them where they belong.", aside,
                    ", ".join(sorted(p.name for p in entries))[:200])
        return
    for entry in entries:
        entry.unlink()
    try:
        aside.rmdir()
    except OSError:  # a file appeared in it after the listing: not this call's to remove
        log.warning("Kept %s: a file appeared in it while gru-exp removed its earlier run.", aside)
