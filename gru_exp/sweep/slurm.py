"""Sweeps on a Slurm cluster: the workers as one job array, submitted through submitit.

``python -m gru_exp.sweep launcher.name=slurm launcher.partition=debug n_workers=4`` checks the
sweep here, creates the study once, checks the study folder, then submits an array of
``n_workers`` tasks. Each task runs ``python -m gru_exp.sweep <the same overrides>
launcher.name=local n_workers=1`` in a child process: exactly the command a local worker runs
(:func:`gru_exp.sweep.worker.run_worker`: heartbeats, the ask lock, SIGTERM handling, summaries).
With ``launcher.wait=true`` this process then prints the study's progress lines, as local workers
do, until the array ends; ``launcher.wait=false`` returns once the array is queued.

What happens when a task stops early:

- ``scancel <job>_<task>``, preemption, or the whole array cancelled: Slurm sends SIGTERM to the
  task's processes; the worker marks its trial FAIL ("interrupted (SIGTERM)") and queues its
  configuration again, which another task (or the next run of the same command) picks up.
- SIGKILL, a node failure, out of memory: the trial stops sending heartbeats; after
  ``grace_period`` another task fails it and retries it (``max_retry``).
- The wall-time limit: Slurm sends USR2 ``signal_delay_s`` (90 s) before it; submitit calls
  :meth:`SweepTask.checkpoint`, which stops the worker as SIGTERM does and has submitit requeue the
  task (at most ``launcher.max_num_timeout`` times); the requeued task runs a fresh worker.

The study lives in the RDB server, so the same command resumes a study whose array ended or was
cancelled. SQLite and journal files are refused: tasks run on other machines.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from gru_exp.errors import ConfigError
from gru_exp.redact import redact, redact_all

log = logging.getLogger(__name__)

# Filesystems every node of a cluster can mount (trial folders must be visible where the report runs).
SHARED_FS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "cifs", "smb3", "glusterfs", "panfs",
             "wekafs", "fuse.sshfs", "fuse.glusterfs", "fuse.juicefs", "9p", "virtiofs", "afs")
FINAL_BAD = ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT", "BOOT_FAIL", "DEADLINE")
STOP_WAIT_S = 60  # after USR2: how long the worker may take to record its trial before it is killed


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command one array task runs: this sweep's overrides as a single local worker."""
    def key(arg: str) -> str:
        return arg.lstrip("+~").split("=", 1)[0]

    kept = [a for a in argv if key(a) not in ("n_workers", "launcher.name")]
    return [sys.executable, "-m", "gru_exp.sweep", *kept, "launcher.name=local", "n_workers=1"]


def _ignore_usr2() -> None:  # in the child, before exec: an ignored signal stays ignored
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class SweepTask:
    """One array task (pickled by submitit, run on a compute node): one sweep worker in a child
    process. The child ignores USR2 (submitit's timeout signal, sent to every process of the task);
    this process gets it, stops the worker like SIGTERM does, and has submitit requeue the task."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self._proc: Optional[subprocess.Popen] = None

    def __getstate__(self) -> dict[str, Any]:
        return {"argv": self.argv, "_proc": None}

    def __call__(self, index: int) -> int:
        cmd = worker_command(self.argv)
        print(f"gru_exp.sweep.slurm: task {index} on {socket.gethostname()}: {' '.join(redact_all(cmd))}",
              flush=True)
        self._proc = subprocess.Popen(cmd, preexec_fn=_ignore_usr2)  # noqa: PLW1509 (no other thread here)
        # Poll instead of wait(): a signal handler (checkpoint) must be able to wait for the child.
        while self._proc.poll() is None:
            time.sleep(0.5)
        code = self._proc.returncode
        if code not in (0, 130):  # 130: SIGTERM (scancel, preemption): the trial is queued again
            raise RuntimeError(f"the sweep worker exited with code {code}; see its lines above")
        return code

    def checkpoint(self, index: int) -> Any:
        """submitit calls this on USR2 (time limit near, or preemption): stop the worker cleanly
        (its trial FAIL and queued again), then return what the requeued task runs."""
        import submitit

        proc = self._proc
        if proc is not None and proc.poll() is None:
            print("gru_exp.sweep.slurm: USR2 (time limit near, or preemption): stopping the worker, then requeueing",
                  flush=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:  # its trial is then failed by heartbeat and retried
                proc.kill()
                proc.wait()
        return submitit.helpers.DelayedSubmission(SweepTask(self.argv), index)


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


def _executor(sc: DictConfig, logs: Path) -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError("launcher.name=slurm needs submitit: pip install -e .[slurm]") from None
    missing = [cmd for cmd in ("sbatch", "srun", "squeue") if shutil.which(cmd) is None]
    if missing:
        raise ConfigError(f"launcher.name=slurm needs Slurm's commands, but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not on PATH: run this on the cluster's login node.")
    lc = sc.launcher
    params: dict[str, Any] = {
        "name": f"gru_sweep_{sc.study_name}", "timeout_min": int(lc.timeout_min),
        "cpus_per_task": int(lc.cpus_per_task),
        "slurm_array_parallelism": int(lc.array_parallelism or sc.n_workers),
        "slurm_stderr_to_stdout": True,  # one log per task
    }
    optional = {"slurm_partition": lc.partition, "slurm_account": lc.account, "slurm_qos": lc.qos,
                "mem_gb": lc.mem_gb, "slurm_gpus_per_task": lc.gpus_per_task or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    extra = OmegaConf.to_container(lc.additional_parameters, resolve=True)
    if extra:
        params["slurm_additional_parameters"] = extra
    ex = submitit.AutoExecutor(folder=str(logs / "%j"), cluster="slurm", slurm_max_num_timeout=int(lc.max_num_timeout))
    try:
        ex.update_parameters(**params)
    except ValueError as exc:
        raise ConfigError(f"launcher: submitit refuses these parameters: {' '.join(str(exc).split())[:400]}") from None
    return ex


def _submit(ex: Any, task: SweepTask, n: int, logs: Path) -> list[Any]:
    """Submit the array; sbatch's refusal (bad partition, account, QOS, limits) is one ConfigError."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    before = set(logs.iterdir())
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr; it is in the error
            return ex.map_array(task, list(range(n)))
    except (FailedJobError, FailedSubmissionError) as exc:
        for path in set(logs.iterdir()) - before:  # the refused submission's pickles and script
            if path.is_file() or path.is_symlink():
                path.unlink()
        hint = ("check launcher.partition, account, qos, timeout_min, mem_gb, cpus_per_task, gpus_per_task and "
                   "additional_parameters against `sinfo -s` and `sacctmgr show assoc user=$USER`")
        lines = [line.strip().removeprefix("sbatch: error: ") for line in str(exc).splitlines() if line.strip()]
        message = "; ".join(dict.fromkeys(lines)) or type(exc).__name__
        raise ConfigError(f"Slurm refused the job array (sbatch: {message}). Nothing was submitted and no trial "
                          f"started; {hint}, then run the same command again.") from None


def _squeue(array_id: str) -> Optional[list[str]]:
    """The array's tasks still known to the controller, as "id STATE reason" lines (None: squeue failed)."""
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-j", array_id, "-o", "%i %T %r"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:  # "Invalid job id": the controller has forgotten the finished array
        return [] if "Invalid job id" in proc.stderr else None
    return sorted(line.strip().removesuffix(" None") for line in proc.stdout.splitlines() if line.strip())


def _final_states(jobs: Sequence[Any]) -> dict[str, str]:
    """Each task's final state from sacct (through submitit), waiting a little for accounting to catch up."""
    deadline = time.monotonic() + 20
    while True:
        jobs[0].watcher.update()
        states = {j.job_id: j.watcher.get_state(j.job_id, mode="cache") for j in jobs}
        settled = all(s.split()[0] not in ("RUNNING", "PENDING", "UNKNOWN", "REQUEUED", "COMPLETING")
                      for s in states.values())
        if settled or time.monotonic() > deadline:
            return states
        time.sleep(2)


def _log_tail(job: Any, lines: int = 12) -> str:
    path = job.paths.stdout
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return f"(no log at {path})"


def _progress(study: Any, sc: DictConfig, started: float) -> str:
    """The workers' progress line (finished of n_trials by state, the best so far), timed from submission."""
    from gru_exp.sweep.worker import progress_line

    line = progress_line(study, sc, time.monotonic() - started, math.inf)
    return re.sub(r"; this worker ([\d.]+) min", r"; \1 min since submission", line)


def _follow(sc: DictConfig, study: Any, jobs: Sequence[Any], array_id: str) -> int:
    """Print the study's progress and the tasks' queue states until no task is left in the queue;
    then the tasks' final states, and an exit code like a local run's."""
    from gru_exp.sweep.storage import study_dir, with_storage_retry

    started, last_line, last_queue, gone = time.monotonic(), "", None, 0
    while True:
        queue = _squeue(array_id)
        if queue is not None and queue != last_queue:
            log.info("Slurm job %s: %s", array_id, "; ".join(queue) if queue else "no task left in the queue")
            last_queue = queue
        line = with_storage_retry(lambda: _progress(study, sc, started), "reading the study's progress",
                                  sc.storage_retry_s)
        if line.split("; ")[0] != last_line.split("; ")[0]:
            log.info("%s", line)
            last_line = line
        gone = gone + 1 if queue == [] else 0
        if gone >= 2:  # twice empty: not a requeue in between
            break
        time.sleep(sc.launcher.poll_s if gone == 0 else min(sc.launcher.poll_s, 2.0))
    states = _final_states(jobs)
    summary: dict[str, list[str]] = {}
    for job_id, state in states.items():
        summary.setdefault(state.split()[0], []).append(job_id)
    log.info("Slurm job %s ended: %s", array_id,
             "; ".join(f"{s}: {', '.join(ids)}" for s, ids in sorted(summary.items())))
    log.info("%s", _progress(study, sc, started))
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    raised = sum(t.state.name == "FAIL" and t.user_attrs.get("raised", False) for t in trials)
    max_failures = sc.max_failures if sc.max_failures is not None else sc.n_trials
    if done >= sc.n_trials:
        log.info("Study done. Summary: %s", study_dir(sc) / "summary.md")
        return 0
    if raised >= max_failures:
        print(f"gru_exp.sweep: stopped early: the study has {raised} trials that raised (max_failures="
              f"{max_failures}); see {study_dir(sc) / 'summary.md'} for their errors", file=sys.stderr)
        return 1
    bad = [j for j in jobs if states[j.job_id].split()[0] in FINAL_BAD]
    if bad:
        print(f"gru_exp.sweep: {len(bad)} Slurm task(s) ended {states[bad[0].job_id]}; the log of {bad[0].job_id} "
              f"({bad[0].paths.stdout}) ends with:\n{_log_tail(bad[0])}\nThe study is consistent: fix the cause and "
              "run the same command to resume.", file=sys.stderr)
        return 1
    if any(s.startswith("CANCELLED") for s in states.values()):
        print(f"gru_exp.sweep: Slurm job {array_id} was cancelled with {done}/{sc.n_trials} trials finished; the study "
              "is consistent: run the same command to resume.", file=sys.stderr)
        return 130
    log.info("The array ended with %d/%d trials finished (timeout=%s s)", done, sc.n_trials, sc.timeout)
    return 0


def launch(sc: DictConfig, argv: Sequence[str]) -> int:
    """Submit the sweep's workers as a Slurm job array; with launcher.wait, follow it to its end."""
    from gru_exp.sweep.storage import claim_study_dir, open_study, storage_url

    refuse_file_storage(storage_url(sc))
    study, _ = open_study(sc)  # schema and study created once, before the tasks race to do it
    out = claim_study_dir(sc, study)
    logs = check_study_folder(out)
    ex = _executor(sc, logs)
    submitted = time.monotonic()
    jobs = _submit(ex, SweepTask(argv), int(sc.n_workers), logs)
    array_id = jobs[0].job_id.split("_")[0]
    lc = sc.launcher
    where = jobs[0].paths.stdout if len(jobs) == 1 else f"{logs}/{array_id}_<task>/{array_id}_<task>_0_log.out"
    print(f"Submitted Slurm job {array_id}: {len(jobs)} task(s) of study {sc.study_name!r} (partition "
          f"{lc.partition or 'default'}, {lc.cpus_per_task} CPU{'s' if lc.cpus_per_task > 1 else ''}"
          f"{f', {lc.gpus_per_task} GPU(s)' if lc.gpus_per_task else ''} and {lc.timeout_min} min each). "
          f"Logs: {where}", flush=True)
    log.info("Follow: squeue -j %s; stop: scancel %s (the study stays consistent; the same command resumes it)",
             array_id, array_id)
    log.info("Study %r in %s; run folders in %s (submitted in %.1f s)", sc.study_name, redact(storage_url(sc)), out,
             time.monotonic() - submitted)
    if not lc.wait:
        return 0
    try:
        return _follow(sc, study, jobs, array_id)
    except KeyboardInterrupt:
        print(f"gru_exp.sweep: stopped following; Slurm job {array_id} keeps running (squeue -j {array_id}; "
              f"scancel {array_id} stops it, and the same command resumes the study)", file=sys.stderr)
        return 130
