"""Checks made on the login node before an array is submitted: an RDB storage every node reaches,
and a study folder that is writable, lockable and (on a real cluster) shared by every node."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import tempfile
from pathlib import Path

from gru_exp.errors import ConfigError
from gru_exp.redact import redact

log = logging.getLogger(__name__)

# Filesystems every node of a cluster can mount (trial folders must be visible where the report runs).
SHARED_FS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "cifs", "smb3", "glusterfs", "panfs",
             "wekafs", "fuse.sshfs", "fuse.glusterfs", "fuse.juicefs", "9p", "virtiofs", "afs")


def refuse_file_storage(url: str) -> None:
    if url.startswith(("sqlite", "journal:")):
        kind = "SQLite" if url.startswith("sqlite") else "journal"
        raise ConfigError(
            f"launcher.name=slurm cannot use the {kind} storage {redact(url)!r}: the array's tasks run on other "
            "machines, which cannot reach this machine's file, and a database file on a shared filesystem breaks "
            "under concurrent writers (its file locks are unreliable on NFS and similar). Give the study an RDB "
            "server every node reaches: storage=postgresql://user@db-host:5432/db (or GRU_EXP_STORAGE, password "
            "in PGPASSWORD or ~/.pgpass; pip install -e .[postgres]); docs/scale-out.md shows the setup.")


def refuse_slurm_patterns(out: Path, study_name: str) -> None:
    """Refuse a study folder with '%' (or '\\') in its path, before anything is created: submitit
    replaces %j, %A, %a and %t in its folder by plain string replacement, with no escape, and Slurm
    expands every %-pattern in the log paths (and a backslash turns them off), so the tasks' logs
    and pickled commands would land in another folder than the study's."""
    bad = [c for c in ("%", "\\") if c in str(out)]
    if not bad:
        return
    what = (f"study_name={study_name!r}" if any(c in study_name for c in bad) else
            f"the study folder {str(out)!r} (from GRU_EXP_HOME or paths.sweeps_dir)")
    raise ConfigError(
        f"launcher.name=slurm: {what} holds {' and '.join(repr(c) for c in bad)}, which submitit and Slurm read as "
        "patterns in the array's log paths (%j becomes the job id, %A the array's, %a the task's, %t the rank; Slurm "
        "also expands %x, %u, %N and more; a backslash turns them off), so the tasks' logs and pickled commands would "
        "be written into another folder than the study's. submitit cannot escape them, so nothing was created or "
        "submitted: use a study_name and outputs folder without '%' and '\\' (letters, digits, spaces, - _ . are "
        "fine).")


def _fs_type(path: Path) -> str:
    """The filesystem type of the mount that holds ``path`` (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        real = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1].replace("\\040", " ")
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return kind


def check_study_folder(out: Path) -> Path:
    """The study folder must be writable and lockable here, and (on a real cluster) shared by every
    node: the tasks write their trial folders and logs there. Returns the folder for submitit."""
    logs = out / "slurm"
    shared = ("The array's tasks write trial folders and their logs under it, so on a cluster it must be on a "
              "filesystem every node mounts at the same path: set GRU_EXP_HOME (or paths.root_dir) to a shared "
              "folder, e.g. GRU_EXP_HOME=/shared/$USER/gru-exp.")
    try:
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds pickled command lines: this user only
        # a new file of its own (O_EXCL, a random name): the only file this check removes
        fd, probe = tempfile.mkstemp(dir=logs, prefix=f".write_probe_{socket.gethostname()}_{os.getpid()}_")
        os.close(fd)
        os.unlink(probe)
        with open(out / ".ask.lock", "a") as fh:  # the workers' ask lock (flock) must work on this filesystem
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
            except BlockingIOError:
                pass  # a running worker holds it: locks work
    except OSError as exc:
        what = ("does not support file locks (flock), which the workers need to share the study"
                if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK) else
                f"is not writable here ({exc.strerror or exc})")
        raise ConfigError(f"The study folder {out} {what}. {shared}") from None
    kind = _fs_type(out)
    if kind in SHARED_FS:
        log.info("Study folder %s is on %s, a shared filesystem: every node must mount it at this path", out, kind)
    else:
        log.warning("Study folder %s is on %s, which looks local to this machine: fine on a one-node cluster; on "
                    "several nodes each task would write its trial folders on its own node. %s", out, kind, shared)
    return logs
