"""Checks made on the login node before an array is submitted: an RDB storage every node reaches,
and a study folder that is writable, lockable and (on a real cluster) shared by every node."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
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
        probe = logs / f".write_probe_{socket.gethostname()}_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
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
