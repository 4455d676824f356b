"""What one Slurm array task runs on its compute node: a single local sweep worker in a child
process, and the requeue on USR2 (submitit's time-limit signal). Pickled by submitit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from gru_exp.redact import redact_all
from gru_exp.sweep.cost import WORKERS_ENV

STOP_WAIT_S = 60  # after USR2: how long the worker may take to record its trial before it is killed
STORAGE_ENV = "GRU_EXP_STORAGE"  # the launcher puts the study's storage URL there for sbatch to pass on


def _key(arg: str) -> str:
    return arg.lstrip("+~").split("=", 1)[0]


def without_storage(argv: Sequence[str]) -> list[str]:
    """``argv`` without its ``storage=`` override: the URL (and any password in it) travels in the
    job's environment (STORAGE_ENV), never in a task's argv, the submitted pickles or the logs."""
    return [a for a in argv if _key(a) != "storage"]


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command one array task runs: this sweep's overrides as a single local worker, its
    storage read from the job's environment (as local workers get theirs)."""
    kept = [a for a in without_storage(argv) if _key(a) not in ("n_workers", "launcher.name")]
    return [sys.executable, "-m", "gru_exp.sweep", *kept, "launcher.name=local", "n_workers=1",
            f"storage=${{oc.env:{STORAGE_ENV}}}"]


def _ignore_usr2() -> None:  # in the child, before exec: an ignored signal stays ignored
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class SweepTask:
    """One array task (pickled by submitit, run on a compute node): one sweep worker in a child
    process. The child ignores USR2 (submitit's timeout signal, sent to every process of the task);
    this process gets it, stops the worker like SIGTERM does, and has submitit requeue the task."""

    def __init__(self, argv: Sequence[str], n_workers: int = 0) -> None:
        self.argv = without_storage(argv)  # pickled into the study folder: no URL, no password
        self.n_workers = n_workers  # the array's tasks: the workers sharing the study (0: not known)
        self._proc: Optional[subprocess.Popen] = None

    def __getstate__(self) -> dict[str, Any]:
        return {"argv": self.argv, "n_workers": self.n_workers, "_proc": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"n_workers": 0, **state})  # a task pickled before n_workers was kept

    def __call__(self, index: int) -> int:
        if not os.environ.get(STORAGE_ENV):
            raise RuntimeError(f"{STORAGE_ENV} is not in this task's environment: the launcher sets it for sbatch, "
                               "which passes it on unless an --export option (launcher.additional_parameters, "
                               "SBATCH_EXPORT) drops it; keep ALL in --export")
        cmd = worker_command(self.argv)
        print(f"gru_exp.sweep.slurm: task {index} on {socket.gethostname()}: {' '.join(redact_all(cmd))}",
              flush=True)
        env = dict(os.environ)
        if self.n_workers:  # the worker logs the study's cost for all the tasks; the launcher logged it first
            env[WORKERS_ENV] = str(self.n_workers)
        self._proc = subprocess.Popen(cmd, env=env, preexec_fn=_ignore_usr2)  # noqa: PLW1509 (no other thread here)
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
        return submitit.helpers.DelayedSubmission(SweepTask(self.argv, self.n_workers), index)
