"""launcher.name=slurm on the real cluster and PostgreSQL server (see tests/test_slurm.py): the
storage password in no process's argv and no file of the study, a '%' in the study's folder
refused before anything exists, and the launcher removing only files it created."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid

import optuna
import pytest
from conftest import REPO, finish, run_sweep, start
from optuna.trial import TrialState
from test_slurm import (  # noqa: F401 (slurm_sweep: the fixture)
    NARROW_LR,
    PARTITION,
    PG_URL,
    REASON,
    job_id,
    load,
    run,
    running_trial,
    slurm_sweep,
    unique,
    wait_gone,
)

pytestmark = [pytest.mark.skipif(bool(REASON), reason=REASON), pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


def _password() -> str:
    from sqlalchemy.engine import make_url

    password = make_url(PG_URL).password
    assert password and len(password) >= 6, "GRU_EXP_TEST_PG_URL needs a password for this test"
    return password


def argvs_holding(secret: str) -> list[str]:
    """Every process's command line (ps -ww, and /proc for the full argv) that holds ``secret``."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    found = [line for line in ps.splitlines() if secret in line]
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read()
        except OSError:
            continue
        if secret.encode() in args:
            found.append(f"{entry}: {' '.join(a.decode(errors='replace') for a in args.split(bytes(1)))}")
    return found


def one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("gru_exp.sweep: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]


def test_the_storage_password_is_in_no_argv_and_no_file(slurm_sweep, monkeypatch):
    """The URL given as storage= (GRU_EXP_STORAGE unset): the tasks get it from the job's
    environment, never in argv (ps), the submitted script, submitit's pickles or any log."""
    password = _password()
    name = slurm_sweep(name=unique("slsecret"), n_trials=2, epochs=12, params=NARROW_LR, pruner="{name: none}")
    monkeypatch.delenv("GRU_EXP_STORAGE")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    proc = run(f"sweep={name}", f"storage={PG_URL}", "n_workers=2", "launcher.wait=false", timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "storage= on this command line shows its password" in proc.stderr  # the user's own argv: a warning
    assert password not in proc.stdout + proc.stderr
    array_id = job_id(proc.stdout)  # the launcher is gone: what runs now are the tasks and their workers
    try:
        running_trial(name)
        assert argvs_holding(password) == []
        jobs = subprocess.run(["scontrol", "show", "job", "-dd", array_id], capture_output=True, text=True).stdout
        assert array_id in jobs and password not in jobs
        wait_gone(array_id)
    finally:
        subprocess.run(["scancel", array_id], capture_output=True)
    trials = load(name).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2, [t.state for t in trials]
    folder = slurm_sweep.sweeps_dir / name
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name.endswith("_submitted.pkl") for p in files) and any(p.name.endswith("_log.out") for p in files)
    assert [p for p in files if password.encode() in p.read_bytes()] == []


def test_a_percent_in_the_study_folder_is_refused_before_anything(slurm_sweep, capsys):
    """submitit would read %j in study_name=..._a%jb as the job id and write the logs and pickles
    into another folder: refused, one paragraph, exit 2, no study, no folder, no job."""
    base = slurm_sweep(name=unique("slpct"))
    name = f"{base}_a%jb"
    try:
        code = run_sweep(f"sweep={base}", f"study_name={name}", "launcher.name=slurm",
                         f"launcher.partition={PARTITION}", "launcher.wait=false")
    finally:
        subprocess.run(["scancel", "--name", f"gru_sweep_{name}"], capture_output=True)
    error = one_error(capsys.readouterr().err)
    assert code == 2 and f"study_name={name!r} holds '%'" in error and "%j becomes the job id" in error, error
    sweeps = slurm_sweep.sweeps_dir
    assert not sweeps.exists() or not list(sweeps.glob(f"{base}*")), list(sweeps.iterdir())
    assert name not in optuna.get_all_study_names(PG_URL)


def test_the_folder_check_removes_only_its_own_probe(slurm_sweep, capsys):
    """A file named as the write probe once was (host and pid) is someone else's: left alone."""
    name = slurm_sweep(name=unique("slprobe"))
    logs = slurm_sweep.sweeps_dir / name / "slurm"
    logs.mkdir(parents=True)
    theirs = logs / f".write_probe_{socket.gethostname()}_{os.getpid()}"
    theirs.write_text("not the launcher's")
    assert run_sweep(f"sweep={name}", "launcher.name=slurm", "launcher.partition=no_such_partition") == 2
    assert "Slurm refused the job array" in one_error(capsys.readouterr().err)
    assert theirs.read_text() == "not the launcher's"
    assert [p.name for p in logs.iterdir()] == [theirs.name]


def test_a_refused_submission_removes_only_its_own_files(slurm_sweep, tmp_path, monkeypatch, capsys):
    """While sbatch runs, another launcher of the same study writes a temporary pickle (named as
    submitit names them) into the study's slurm/ folder: the refused submission removes its own
    files only. The other launcher is simulated by a wrapper that writes that file and then runs
    the real sbatch: a real second launcher cannot be timed to land inside this submission."""
    name = slurm_sweep(name=unique("slown"))
    logs = slurm_sweep.sweeps_dir / name / "slurm"
    other = logs / f"{uuid.uuid4().hex}.pkl"
    wrapper = tmp_path / "bin" / "sbatch"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho other > "{other}"\nexec {shutil.which("sbatch")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    assert run_sweep(f"sweep={name}", "launcher.name=slurm", "launcher.partition=no_such_partition") == 2
    assert "invalid partition" in one_error(capsys.readouterr().err).lower()
    assert other.read_text() == "other\n"
    assert list(logs.iterdir()) == [other]  # and nothing of the refused submission


@pytest.mark.parametrize("how", ["additional_parameters", "SBATCH_EXPORT"])
def test_an_export_that_keeps_the_environment_from_the_tasks_is_refused(slurm_sweep, monkeypatch, capsys, how):
    """The tasks read the storage URL from the job's environment: an sbatch --export without ALL
    is refused before anything is created or submitted."""
    name = slurm_sweep(name=unique("slexport"))
    extra = ["+launcher.additional_parameters.export=NONE"] if how == "additional_parameters" else []
    if how == "SBATCH_EXPORT":
        monkeypatch.setenv("SBATCH_EXPORT", "NONE")
    try:
        code = run_sweep(f"sweep={name}", "launcher.name=slurm", f"launcher.partition={PARTITION}",
                         "launcher.wait=false", *extra)
    finally:
        subprocess.run(["scancel", "--name", f"gru_sweep_{name}"], capture_output=True)
    error = one_error(capsys.readouterr().err)
    assert code == 2 and "'NONE' would keep this environment from the tasks" in error and how in error, error
    assert name not in optuna.get_all_study_names(PG_URL)
    assert not (slurm_sweep.sweeps_dir / name).exists()


def test_sigterm_to_the_following_launcher_stops_following_and_says_the_array_runs_on(slurm_sweep):
    """Paddle, imported by the launcher's checks, replaced its SIGTERM handler: a C++ "FatalError:
    Termination signal" dump, and no word that the array keeps running."""
    from test_slurm import launcher

    name = slurm_sweep(name=unique("follow"), n_trials=1, epochs=20000, pruner="{name: none}")
    proc = start(launcher(f"sweep={name}", "n_workers=1"), cwd=REPO, env=dict(os.environ), stderr=subprocess.STDOUT)
    submitted: list[str] = []

    def following(line: str) -> bool:  # a queue line after the submission: it is following the array
        if "Submitted Slurm job" in line:
            submitted.append(line)
            return False
        return bool(submitted) and "Slurm job " in line

    proc.out.wait_for(following, timeout=300)
    import time

    time.sleep(8)  # a few rounds of following (the tester's case: 10 s in)
    proc.send_signal(signal.SIGTERM)
    code, out, _ = finish(proc, timeout=120)
    assert code == 130, out[-3000:]
    assert "keeps running" in out and "FatalError" not in out and "Traceback" not in out, out[-3000:]
    subprocess.run(["scancel", job_id(out)], capture_output=True)
