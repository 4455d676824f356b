"""Following a submitted array from the login node: the study's progress and the tasks' queue
states until no task is left, then their final states (sacct) and an exit code like a local run's."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from omegaconf import DictConfig

log = logging.getLogger(__name__)

FINAL_BAD = ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT", "BOOT_FAIL", "DEADLINE")


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


def follow(sc: DictConfig, study: Any, jobs: Sequence[Any], array_id: str, estimate: tuple[float, float]) -> int:
    """Log the study's progress, its cost as trials end, and the tasks' queue states until no task is
    left in the queue; then the tasks' final states. Prints the study's result on stdout (as a local
    sweep does) unless the array was cancelled, and returns an exit code like a local run's."""
    code = _follow(sc, study, jobs, array_id, estimate)
    if code != 130:
        from gru_exp.sweep.storage import study_dir
        from gru_exp.sweep.summary import print_result

        print_result(study, study_dir(sc))
    return code


def _follow(sc: DictConfig, study: Any, jobs: Sequence[Any], array_id: str, estimate: tuple[float, float]) -> int:
    from gru_exp.sweep.cost import log_cost
    from gru_exp.sweep.storage import study_dir, with_storage_retry

    started, last_line, last_queue, gone = time.monotonic(), "", None, 0
    deadline = started + (sc.timeout or math.inf)
    while True:
        queue = _squeue(array_id)
        if queue is not None and queue != last_queue:
            log.info("Slurm job %s: %s", array_id, "; ".join(queue) if queue else "no task left in the queue")
            last_queue = queue
        line = with_storage_retry(lambda: _progress(study, sc, started), "reading the study's progress",
                                  sc.storage_retry_s)
        if line.split("; ")[0] != last_line.split("; ")[0]:
            log.info("%s", line)
            if last_line:  # a trial ended: what is left, measured
                log_cost(sc, study, estimate, deadline - time.monotonic())
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
