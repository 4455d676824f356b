"""Sweeps submitted to a real Slurm cluster (launcher.name=slurm) against a real PostgreSQL server.

Needs a cluster that answers ``sinfo`` (CI: ``SLURM_UP_ACCOUNTING=1 bash .ci/slurm-up.sh``, one node,
partition ``debug``) and GRU_EXP_TEST_PG_URL (see tests/test_postgres.py). Without them the tests
skip, unless GRU_EXP_REQUIRE_SLURM=1 (CI), where they fail instead. The whole file takes a few
minutes on 2 cores: tiny data and models, heartbeat_interval 1, grace_period 3.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import REPO, finish, pg_unreachable, run_sweep, secret_leaks, start
from optuna.trial import TrialState

PG_URL = os.environ.get("GRU_EXP_TEST_PG_URL", "")
PARTITION = os.environ.get("SLURM_UP_PARTITION", "debug")
NARROW_LR = "  trainer.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}"  # learns, never NaN


def _problem() -> str:
    if shutil.which("sinfo") is None:
        return "no Slurm here (sinfo not on PATH); CI starts one with .ci/slurm-up.sh"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T", "-p", PARTITION], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo does not answer: {exc}"
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"sinfo does not list partition {PARTITION!r}: {(proc.stderr or proc.stdout).strip()[:200]}"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -e .[slurm])"
    return pg_unreachable(PG_URL)


def _no_accounting() -> str:
    """Why ``sacct`` (slurmdbd: the final states of an array's tasks) does not answer, or ""."""
    try:
        proc = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sacct does not answer: {exc}"
    return "" if proc.returncode == 0 else f"sacct fails (slurmdbd down?): {(proc.stderr or proc.stdout).strip()[:200]}"


REASON = _problem()
REQUIRED = os.environ.get("GRU_EXP_REQUIRE_SLURM") == "1"
if REASON and REQUIRED:
    raise RuntimeError(f"GRU_EXP_REQUIRE_SLURM=1 but {REASON}")
# CI starts the cluster with accounting (SLURM_UP_ACCOUNTING=1 in .ci/run), so there the final-state
# check never switches itself off; elsewhere it runs whenever sacct answers.
NO_ACCOUNTING = "" if REASON else _no_accounting()
if NO_ACCOUNTING and REQUIRED:
    raise RuntimeError(f"GRU_EXP_REQUIRE_SLURM=1 (CI starts slurmdbd) but {NO_ACCOUNTING}")
pytestmark = [pytest.mark.skipif(bool(REASON), reason=REASON), pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def load(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=PG_URL)


@pytest.fixture
def slurm_sweep(sweep_env, monkeypatch):
    """sweep_env, the storage set to PostgreSQL, and every job of the test's studies cancelled afterwards."""
    names: list[str] = []

    def write(**kwargs) -> str:
        names.append(sweep_env(**kwargs))
        return names[-1]

    write.sweeps_dir = sweep_env.sweeps_dir
    monkeypatch.setenv("GRU_EXP_STORAGE", PG_URL)
    yield write
    for name in names:
        subprocess.run(["scancel", "--name", f"gru_sweep_{name}"], capture_output=True)
    # The storage password reached no file (task logs, submitit's pickles of the task and its result,
    # run folders) and no attribute stored with the studies, whatever the test did to the tasks.
    from sqlalchemy.engine import make_url

    home = sweep_env.sweeps_dir.parents[1]
    assert secret_leaks(make_url(PG_URL).password, home, PG_URL, tuple(names)) == []


def launcher(*args: str) -> list[str]:
    return [sys.executable, "-m", "gru_exp.sweep", *args, "launcher.name=slurm", f"launcher.partition={PARTITION}",
            "launcher.poll_s=1"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(launcher(*args), cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                          timeout=timeout)


def job_id(output: str) -> str:
    found = re.search(r"Submitted Slurm job (\d+): ", output)
    assert found, output[-3000:]
    return found.group(1)


def queued(array_id: str) -> list[str]:
    proc = subprocess.run(["squeue", "-h", "-r", "-j", array_id, "-o", "%i"], capture_output=True, text=True)
    return proc.stdout.split() if proc.returncode == 0 else []


def wait_gone(array_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while queued(array_id):
        assert time.monotonic() < deadline, f"Slurm job {array_id} still queued after {timeout} s"
        time.sleep(1)


def running_trial(name: str, timeout: float = 180, min_epochs: int = 3) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = [t for t in load(name).trials
                       if t.state == TrialState.RUNNING and len(t.intermediate_values) >= min_epochs]
        except KeyError:
            running = []
        if running:
            return running[0]
        time.sleep(0.3)
    raise AssertionError("no trial got going")


def task_of(pid: int) -> str:
    """The array task (<job>_<task>) a worker process belongs to (same node: read its environment)."""
    env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"


def task_log(study_folder: Path, task: str) -> Path:
    """The log of array task ``<job>_<task>``: slurm/<submission>/<job>_<task>/<job>_<task>_0_log.out."""
    (found,) = study_folder.glob(f"slurm/*/{task}/{task}_0_log.out")
    return found


def test_file_storages_are_refused_before_any_submission(sweep_env, capsys, monkeypatch):
    monkeypatch.delenv("GRU_EXP_STORAGE", raising=False)
    name = sweep_env(name=unique("slsqlite"))
    for storage in ([], [f"storage=journal:{sweep_env.sweeps_dir / 'j.log'}"]):  # default SQLite, then a journal
        assert run_sweep(f"sweep={name}", "launcher.name=slurm", *storage) == 2
        err = capsys.readouterr().err
        kind = "journal" if storage else "SQLite"
        assert f"launcher.name=slurm cannot use the {kind} storage" in err and "postgresql://" in err, err
        assert "Traceback" not in err
    assert not (sweep_env.sweeps_dir / name).exists()


def test_a_bad_partition_is_one_clear_error(slurm_sweep, capsys):
    name = slurm_sweep(name=unique("slpart"))
    assert run_sweep(f"sweep={name}", "launcher.name=slurm", "launcher.partition=no_such_partition") == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("gru_exp.sweep: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err  # one paragraph, exit 2
    assert "Slurm refused the job array" in errors[0] and "invalid partition" in errors[0].lower(), err
    assert "launcher.partition" in errors[0]
    assert not subprocess.run(["squeue", "-h", "--name", f"gru_sweep_{name}"], capture_output=True, text=True).stdout
    logs = slurm_sweep.sweeps_dir / name / "slurm"
    assert not [p for p in logs.iterdir()], list(logs.iterdir())  # no pickles left behind
    assert not load(name).trials


def test_an_array_finishes_exactly_n_trials_with_folders_records_and_a_report(slurm_sweep):
    from sqlalchemy.engine import make_url

    name = slurm_sweep(name=unique("slarray"), n_trials=4, epochs=2)
    started = time.monotonic()
    proc = run(f"sweep={name}", "n_workers=2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    array_id = job_id(out)
    trials = load(name).trials
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    folder = slurm_sweep.sweeps_dir / name
    for t in trials:
        assert (folder / f"trial_{t.number}" / "metrics.json").is_file()
        assert list((folder / f"trial_{t.number}" / "vdl").glob("vdlrecords*"))
    assert re.search(rf"Study '{name}': 4/4 trials finished \(\d complete, \d pruned; 0 failed\)", out), out[-3000:]
    if not NO_ACCOUNTING:  # the final states come from sacct (slurmdbd), which answered when this file loaded
        assert "Unable to connect to database" not in out, out[-3000:]
        assert re.search(rf"Slurm job {array_id} ended: COMPLETED: {array_id}_0, {array_id}_1", out), out[-3000:]
    # What it costs, before anything is queued; stdout is the study's result alone, as a local sweep's
    assert re.search(rf"Cost of study '{name}': 4 trial\(s\) to run \(of 4\) x 2 epoch\(s\).* on 2 worker\(s\)",
                     proc.stderr.split("Submitted Slurm job")[0]), proc.stderr[-3000:]
    (line,) = proc.stdout.splitlines()
    where, number, value = line.split("\t")
    best = load(name).best_trial
    assert (os.path.realpath(where), int(number), float(value)) == (str(folder.resolve()), best.number, best.value), line
    for task in (0, 1):  # each task ran the same worker loop as a local worker, and logged beside the study
        log = task_log(folder, f"{array_id}_{task}").read_text()
        assert "launcher.name=local n_workers=1" in log and "Worker done:" in log, log[-2000:]
        # its cost lines count the array's two tasks, measured as trials end
        assert re.search(r"Cost of study .* x \d+ s per epoch \(measured .* on 2 worker\(s\)", log), log[-2000:]
    assert make_url(PG_URL).password not in out
    report = subprocess.run([sys.executable, "-m", "gru_exp.report", str(folder), f"storage={PG_URL}"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "COMPLETE" in (folder / "report.md").read_text()
    print(f"array of 2 tasks, 4 trials: {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("how", ["scancel", "sigkill", "usr2"])
def test_a_killed_task_trial_is_recovered_by_the_other_task(slurm_sweep, how):
    """``scancel <job>_<task>`` (Slurm's SIGTERM: the worker fails its trial and queues it again),
    SIGKILL of the worker (out of memory, a dead node: nothing recorded, the trial goes stale after
    grace_period and is retried), ``scancel --signal=USR2`` (submitit's time-limit signal: the worker
    stops as on SIGTERM, submitit requeues the task): no finished trial is lost either way."""
    name = slurm_sweep(name=unique(f"slkill{how}"), n_trials=2, epochs=60, params=NARROW_LR, pruner="{name: none}")
    proc = run(f"sweep={name}", "n_workers=2", "launcher.wait=false", timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    array_id = job_id(proc.stdout)  # wait=false: back at once, the array runs on
    assert queued(array_id)
    victim = running_trial(name)
    task = task_of(victim.user_attrs["pid"])
    if how == "sigkill":  # (scancel --signal=KILL is a plain cancel to Slurm: SIGTERM first)
        os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    else:
        subprocess.run(["scancel", *(["--signal=USR2"] if how == "usr2" else []), task], check=True)
    wait_gone(array_id)
    trials = load(name).trials
    zombie = trials[victim.number]
    assert zombie.state == TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retried_from") == victim.number
               or optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == zombie.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if how == "sigkill":  # no chance to record anything: the heartbeat path
        assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retries[0]) == victim.number
    else:
        assert "interrupted (SIGTERM)" in zombie.user_attrs["error"]
    log = task_log(slurm_sweep.sweeps_dir / name, task).read_text()
    if how == "usr2":
        assert "Requeued job" in log and log.count("launcher.name=local n_workers=1") == 2, log[-3000:]


def test_cancelling_the_array_leaves_a_study_the_same_command_resumes(slurm_sweep):
    name = slurm_sweep(name=unique("slcancel"), n_trials=2, epochs=40, params=NARROW_LR, pruner="{name: none}")
    cmd = launcher(f"sweep={name}", "n_workers=2")
    follower = start(cmd, cwd=REPO, env=dict(os.environ), stderr=subprocess.STDOUT)
    running_trial(name)
    array_id = job_id(follower.out.wait_for("Submitted Slurm job", timeout=60))
    subprocess.run(["scancel", array_id], check=True)
    code, out, _ = finish(follower, timeout=120)
    assert code == 130, out[-3000:]
    assert f"Slurm job {array_id} was cancelled" in out and "run the same command to resume" in out, out[-3000:]
    trials = load(name).trials
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all("interrupted (SIGTERM)" in t.user_attrs["error"] for t in interrupted)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    again = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    trials = load(name).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert {tuple(t.params.items()) for t in interrupted} <= {tuple(t.params.items()) for t in trials
                                                             if t.state == TrialState.COMPLETE}
