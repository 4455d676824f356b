"""Sweeps against a real PostgreSQL server (127.0.0.1), as on many machines sharing one study.

The server comes from GRU_EXP_TEST_PG_URL (postgresql://user:password@127.0.0.1:5432/db), which
.ci/run sets after starting Debian's PostgreSQL; GRU_EXP_TEST_PG_CTL (e.g. "pg_ctlcluster 15 main")
lets tests stop and start it. Without a reachable server the tests skip, unless GRU_EXP_REQUIRE_PG=1
(CI), where they fail instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import REPO, finish, pg_unreachable, secret_leaks, start, studies_under
from optuna.trial import TrialState

PG_URL = os.environ.get("GRU_EXP_TEST_PG_URL", "")
PG_CTL = os.environ.get("GRU_EXP_TEST_PG_CTL", "")


REASON = pg_unreachable(PG_URL)
if REASON and os.environ.get("GRU_EXP_REQUIRE_PG") == "1":
    raise RuntimeError(f"GRU_EXP_REQUIRE_PG=1 but {REASON}")
pytestmark = [pytest.mark.skipif(bool(REASON), reason=REASON), pytest.mark.slow]


def password() -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).password or ""


def load(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=PG_URL)


def popen(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "GRU_EXP_STORAGE": PG_URL, **(env_extra or {})}
    return start([sys.executable, "-m", "gru_exp.sweep", *args], cwd=REPO, env=env, stderr=subprocess.STDOUT)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def wait_running(name: str, timeout: float = 120) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = [t for t in load(name).trials if t.state == TrialState.RUNNING and t.intermediate_values]
        except KeyError:
            running = []
        if running:
            return running[0]
        time.sleep(0.3)
    raise AssertionError("no trial started")


def no_password_in(folder: Path, *texts: str) -> None:
    secret = password()
    assert secret, "the test server needs a password for this check"
    for text in texts:
        assert secret not in text
    assert secret_leaks(secret, folder) == []


@pytest.fixture(autouse=True)
def _password_never_stored(tmp_path):
    """After every test here (killed workers, outages, refusals included): the server's password is
    in no file the test's commands wrote (weights, logs and pickles too) and in no attribute of the
    studies they made, as stored in the database."""
    yield
    home = tmp_path / "home"
    assert secret_leaks(password(), tmp_path, PG_URL, studies_under(home)) == []


def test_two_workers_finish_exactly_n_trials_and_never_write_the_password(sweep_env, tmp_path):
    name = sweep_env(name=unique("pg2"), n_trials=6, epochs=2)
    # The URL on the command line (the user's choice): the workers this command starts get it through
    # their environment, never in their argv, which every local user can read (ps).
    proc = popen(f"sweep={name}", "n_workers=2", f"storage={PG_URL}", env_extra={"GRU_EXP_STORAGE": "unused"})
    worker_argvs: dict[int, str] = {}
    parent_argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().replace("\0", " ")
    deadline = time.monotonic() + 300
    while proc.poll() is None and len(worker_argvs) < 2 and time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == proc.pid:
                    argv = (stat.parent / "cmdline").read_bytes().decode().replace("\0", " ")
                    # Between fork and exec (while preexec_fn runs) a child still shows the parent's
                    # own argv, the user's command line: only the exec'd worker's argv is checked.
                    if "gru_exp.sweep" in argv and argv != parent_argv:
                        worker_argvs[int(stat.parent.name)] = argv
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.2)
    _, out, _ = finish(proc, timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert len(worker_argvs) == 2 and all("n_workers=1" in a and password() not in a for a in worker_argvs.values())
    trials = load(name).trials
    assert len(trials) == 6 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    # every trial ran in one of the two workers this command started (not necessarily both: one may
    # take every trial while the other still loads paddle)
    assert {t.user_attrs["pid"] for t in trials} <= set(worker_argvs) and all(t.user_attrs["host"] for t in trials)
    no_password_in(tmp_path / "home", out)


def test_killed_worker_is_recovered_on_postgres(sweep_env):
    name = sweep_env(name=unique("pgkill"), n_trials=2, epochs=40, pruner="{name: none}")
    worker = popen(f"sweep={name}")
    victim = wait_running(name)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    rerun = popen(f"sweep={name}")
    _, out, _ = finish(rerun, timeout=600)
    assert rerun.returncode == 0, out[-3000:]
    trials = load(name).trials
    assert trials[victim.number].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert any(t.system_attrs.get("failed_trial") == victim.number for t in trials)


def test_a_server_that_does_not_answer_is_one_paragraph_that_never_shows_the_password(sweep_env, tmp_path):
    """The same URL with a port nobody listens on (an outage from the first connection): the
    error names the storage, masked, and nothing written holds the password."""
    from sqlalchemy.engine import make_url

    name = sweep_env(name=unique("pgdown"), n_trials=1, epochs=1, storage_retry_s=2)
    down = make_url(PG_URL).set(port=1).render_as_string(hide_password=False)
    assert password() in down
    proc = popen(f"sweep={name}", env_extra={"GRU_EXP_STORAGE": down})
    code, out, _ = finish(proc, timeout=180)
    assert code == 2, out[-3000:]
    assert ":***@127.0.0.1:1/" in out and "Traceback" not in out, out[-3000:]
    no_password_in(tmp_path / "home", out)


def test_wrong_password_is_rejected_before_any_training(sweep_env, tmp_path):
    from sqlalchemy.engine import make_url

    name = sweep_env(name=unique("pgbad"))
    bad = make_url(PG_URL).set(password="not-the-password").render_as_string(hide_password=False)
    proc = popen(f"sweep={name}", env_extra={"GRU_EXP_STORAGE": bad})
    _, out, _ = finish(proc, timeout=120)
    assert proc.returncode == 2
    assert "cannot be opened" in out and "password" in out and "not-the-password" not in out
    assert "Traceback" not in out
    assert not list((tmp_path / "home").rglob("trial_*"))


@pytest.mark.skipif(not PG_CTL, reason="GRU_EXP_TEST_PG_CTL is not set: the test cannot stop the server")
def test_a_short_outage_is_survived_and_a_long_one_fails_cleanly_then_recovers(sweep_env):
    ctl = PG_CTL.split()
    # Short outage (4 s) while a trial runs: the worker retries, the trial completes.
    name = sweep_env(name=unique("pgout"), n_trials=1, epochs=60, pruner="{name: none}")
    worker = popen(f"sweep={name}")
    wait_running(name)
    subprocess.run([*ctl, "stop"], check=True)
    time.sleep(4)
    subprocess.run([*ctl, "start"], check=True)
    _, out, _ = finish(worker, timeout=600)
    assert worker.returncode == 0, out[-3000:]
    assert "Storage unreachable" in out
    assert [t.state for t in load(name).trials] == [TrialState.COMPLETE]

    # Long outage with a 3 s retry budget: the worker stops cleanly, the next run recovers the trial.
    name = sweep_env(name=unique("pglong"), n_trials=1, epochs=60, pruner="{name: none}", storage_retry_s=3)
    worker = popen(f"sweep={name}")
    victim = wait_running(name)
    subprocess.run([*ctl, "stop"], check=True)
    try:
        _, out, _ = finish(worker, timeout=120)
    finally:
        subprocess.run([*ctl, "start"], check=True)
    assert worker.returncode == 2 and "unreachable for 3 s" in out and "Traceback" not in out
    rerun = popen(f"sweep={name}")
    _, out, _ = finish(rerun, timeout=600)
    assert rerun.returncode == 0, out[-3000:]
    trials = load(name).trials
    assert trials[victim.number].state == TrialState.FAIL
    assert [t.state for t in trials[victim.number + 1:]] == [TrialState.COMPLETE]


def test_a_password_in_the_query_string_never_reaches_a_log_or_file(sweep_env, tmp_path):
    """libpq takes ?password=...: the same redaction masks it there as in user:password@."""
    import json

    from sqlalchemy.engine import URL, make_url

    u = make_url(PG_URL)
    in_query = URL.create(u.drivername, u.username, None, u.host, u.port, u.database,
                          {"password": u.password}).render_as_string(hide_password=False)
    assert "?password=" in in_query and ":" + password() + "@" not in in_query
    name = sweep_env(name=unique("pgq"), n_trials=1, epochs=1)
    proc = popen(f"sweep={name}", env_extra={"GRU_EXP_STORAGE": in_query})
    _, out, _ = finish(proc, timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert [t.state for t in load(name).trials] == [TrialState.COMPLETE]
    no_password_in(tmp_path / "home", out)
    pointer = json.loads((tmp_path / "home" / "outputs" / "sweeps" / name / "study.json").read_text())
    assert "password=***" in pointer["storage"]


def test_a_resume_with_another_reduce_is_refused_on_postgres_and_changes_nothing(sweep_env):
    """The study's identity lives in the shared database: a machine that resumes it with
    objective.reduce=last instead of best is refused, the password never shown."""
    name = unique("ident")
    base = sweep_env(n_trials=1, epochs=1)
    first = popen(f"sweep={base}", f"study_name={name}")
    _, out, _ = finish(first, timeout=600)
    assert first.returncode == 0, out[-3000:]
    attrs, trials = load(name).user_attrs, load(name).trials
    again = popen(f"sweep={base}", f"study_name={name}", "objective.reduce=last", "n_trials=2")
    _, out, _ = finish(again, timeout=600)
    assert again.returncode == 2, out[-3000:]
    assert "objective.reduce='best'" in out and "objective.reduce='last'" in out and "Traceback" not in out
    assert password() not in out
    assert load(name).user_attrs == attrs and len(load(name).trials) == len(trials) == 1
