"""Signals a sweep gets from scripts and crashes (issue 23): Ctrl-C reaches a sweep a script
started with `&` (SIGINT inherited as ignored), and workers never outlive a parent killed
outright. Real processes and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, finish, start


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_ctrl_c_reaches_a_sweep_a_script_started_in_the_background(sweep_env):
    name = sweep_env(n_trials=2, epochs=20000, pruner="{name: none}")
    script = f"'{sys.executable}' -m gru_exp.sweep sweep={name} 2>/dev/null & echo $!; wait $!; echo rc=$?"
    proc = start(["bash", "-c", script], cwd=REPO, env=dict(os.environ))
    pid = int(proc.out.wait_for(lambda line: line.strip().isdigit(), timeout=60))
    assert _wait_for(lambda: any(sweep_env.sweeps_dir.glob(f"{name}/trial_0/metrics.json")))
    os.kill(pid, signal.SIGINT)
    _, out, _ = finish(proc, timeout=120)
    assert "rc=130" in out, out


def test_workers_stop_when_their_parent_is_killed_outright(sweep_env):
    name = sweep_env(n_trials=4, epochs=20000, pruner="{name: none}")  # trials of many minutes
    parent = subprocess.Popen([sys.executable, "-m", "gru_exp.sweep", f"sweep={name}", "n_workers=2"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    workers: list[int] = []
    try:
        assert _wait_for(lambda: len(list(sweep_env.sweeps_dir.glob(f"{name}/trial_*/metrics.json"))) >= 2)
        workers = _children(parent.pid)
        assert len(workers) == 2, workers
        parent.kill()
        parent.wait(timeout=30)
        assert _wait_for(lambda: not any(_alive(w) for w in workers), timeout=30), "workers outlived their parent"
    finally:
        for w in [*workers, *_children(parent.pid)]:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
