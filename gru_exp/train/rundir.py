"""The run folder: one run at a time, never a second run's record in it, and only what gru-exp
made removed when a run is rejected.

A run claims its folder before it writes anything there: an exclusive ``flock`` on the folder's
lock file, held while it trains (the system drops it when the process dies, so a killed run never
blocks its resume). A folder that another process holds right now (two commands started in the
same second with the same overrides), or that already holds a run record (a finished run given
as ``hydra.run.dir``) is refused with one paragraph naming it, unless the run continues that
very record (``trainer.resume=<the same folder>``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Iterator, Optional

from gru_exp.config.paths import RUN_RECORD
from gru_exp.config.values import override
from gru_exp.errors import GruExpError

RECORD_FILE = RUN_RECORD  # metrics.json (named in config.paths, which checks output folders against runs)
LAST_CKPT = "checkpoints/last.pdparams"  # after every epoch: what a resume continues
BEST_CKPT = "checkpoints/best.pdparams"  # the best eval epoch's weights
LOCK_FILE = ".run.lock"
RUN_LOG = "run.log"  # the run's log lines, from its first check on
CONFIG_RECORDS = ".hydra"  # the composed config in Hydra's layout: config.yaml, and from a command line hydra.yaml, overrides.yaml
VOCAB_FILE = "vocab.txt"  # the run's vocabulary in id order (gru_exp.data.tokens.write_vocabulary): predict reads it
RUN_MADE = ("checkpoints", "vdl", RECORD_FILE, RUN_LOG, CONFIG_RECORDS, VOCAB_FILE)  # what a run writes into its folder
NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}  # flock cannot work on this filesystem
_WARNED: set[Path] = set()
log = logging.getLogger(__name__)


class RunDirError(GruExpError):
    """The run folder is being written by another run, or already holds one."""


def _lock(run_dir: Path) -> Optional[int]:
    """A descriptor of ``run_dir``'s lock file, exclusively locked; None if another process holds it.
    On a filesystem without file locks (some network and FUSE mounts) the descriptor is returned
    unlocked, with a warning: runs there go on, only two at the same moment in one folder go unseen."""
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                os.close(fd)
                raise
            _warn_no_locks(run_dir, exc)
            return fd
        except BaseException:  # a signal between open and lock: no descriptor is left open
            os.close(fd)
            raise
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:  # else it was removed meanwhile: lock the new one
                return fd
        except FileNotFoundError:
            pass
        except BaseException:  # e.g. ESTALE on NFS: no descriptor is left open
            os.close(fd)
            raise
        os.close(fd)


def _warn_no_locks(run_dir: Path, exc: OSError) -> None:
    if run_dir.resolve().parent not in _WARNED:
        _WARNED.add(run_dir.resolve().parent)
        log.warning("File locks are not supported where %s lives (%s): runs go on unlocked, so two runs started "
                    "at the same moment into this same folder would not be told apart.", run_dir,
                    exc.strerror or exc)


def _holder(run_dir: Path) -> str:
    """Who holds ``run_dir``'s lock, as its lock file says (pid and host), else "another process"."""
    with contextlib.suppress(OSError):
        return (run_dir / LOCK_FILE).read_text(errors="replace").strip() or "another process"
    return "another process"


def _release(run_dir: Path, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run_dir / LOCK_FILE).unlink()  # before the unlock: a waiting process then locks a new file
    os.close(fd)


@contextlib.contextmanager
def claimed_run_dir(run_dir: Path, resume_dir: Optional[Path] = None) -> Iterator[Path]:
    """``run_dir`` made if needed and held by this run until the block ends; RunDirError when
    another process holds it or it holds a run record that this run does not continue."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = _lock(run_dir)
    except OSError as exc:
        raise RunDirError(f"The run folder {run_dir} cannot be written ({exc.strerror or exc}); check "
                          "paths.output_dir, hydra.run.dir or GRU_EXP_HOME.") from None
    if fd is None:
        raise RunDirError(f"The run folder {run_dir} is in use by another training right now ({_holder(run_dir)}), "
                          "started at the same moment with the same overrides or given the same hydra.run.dir; this run "
                          "would mix its record with that one's. Start it again a second later, or give it its "
                          "own folder with hydra.run.dir=<new folder>.")
    taken = other_run_problem(run_dir, resume_dir)
    if taken:
        _release(run_dir, fd)
        raise RunDirError(taken)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    try:
        yield run_dir
    finally:
        _release(run_dir, fd)


def display_name_of(run_dir: Path, output_dir: Path) -> str:
    """The run's folder relative to the outputs, e.g. runs/2026-11-27/04-11-11_cpu_quick."""
    output_dir, resolved = Path(output_dir).resolve(), Path(run_dir).resolve()
    return str(resolved.relative_to(output_dir)) if output_dir in resolved.parents else Path(run_dir).name


def other_run_problem(run_dir: Path, resume_dir: Optional[Path] = None, new: bool = False) -> Optional[str]:
    """Why ``run_dir`` cannot take a new run: it holds another run's record, which this run does
    not continue (``trainer.resume`` is that folder), or another run's checkpoints or VisualDL
    records; with ``new`` (checked before anything is written) any entry at all. None when it can."""
    run_dir = Path(run_dir)
    continues = resume_dir is not None and Path(resume_dir).resolve() == run_dir.resolve()
    if continues:
        return None
    if (run_dir / RECORD_FILE).exists():
        if not (run_dir / LAST_CKPT).is_file():  # stopped before its first epoch ended, or keeps no last checkpoint
            return (f"The run folder {run_dir} already holds a run ({RECORD_FILE}) with nothing to continue from (no "
                    f"{LAST_CKPT}: it stopped before its first epoch finished, or kept no last checkpoint); a new run "
                    "never writes into it. Give this run another folder (hydra.run.dir=<new folder>), or remove that "
                    "folder yourself if you no longer need it.")
        return (f"The run folder {run_dir} already holds a run ({RECORD_FILE} and its checkpoints); a new run never "
                f"writes into it. Give this run another folder (hydra.run.dir=<new folder>), or continue that run "
                f"with {override('trainer.resume', str(run_dir))}.")
    try:
        found = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE) if run_dir.is_dir() else []
    except OSError:
        return None  # unreadable: the claim reports it
    foreign = found if new else [n for n in found if n in RUN_MADE]
    if foreign:
        return (f"The run folder {run_dir} already holds {len(found)} entr{'y' if len(found) == 1 else 'ies'} "
                f"(e.g. {foreign[0]!r}) that this run did not make; a run writes only into a new or empty folder, so "
                "nothing there is overwritten. Give it another folder (hydra.run.dir=<new folder>).")
    return None


def in_use_problem(run_dir: Path) -> Optional[str]:
    """Why ``run_dir`` cannot be used now: another process holds its lock (a run training there);
    None when it is free or does not exist."""
    run_dir = Path(run_dir)
    if not (run_dir / LOCK_FILE).is_file():
        return None
    try:
        fd = _lock(run_dir)
    except OSError:
        return None  # the run's own claim reports it
    if fd is None:
        return (f"The run folder {run_dir} is in use by a training running there now ({_holder(run_dir)}); nothing was "
                "written. Wait until it ends (or stop it), then continue it with trainer.resume.")
    _release(run_dir, fd)
    return None


def remove_new_empty(run_dir: Path, existed: frozenset[Path]) -> None:
    """After a job refused before it wrote anything: the empty folder made for it (Hydra makes a
    job's folder before the job starts), then its parents that this command made and that it leaves
    empty. A folder in ``existed`` (there before this command: see train/precheck.py) or with
    anything in it stays, and so do its parents."""
    folder = Path(os.path.abspath(run_dir))
    if not any(parent in existed for parent in folder.parents):
        return  # a folder the checks never saw (named by what only Hydra's launcher knows): left as it is
    with contextlib.suppress(OSError):
        while folder not in existed and folder != folder.parent:
            folder.rmdir()  # only an empty folder can go
            folder = folder.parent