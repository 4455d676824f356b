"""``python -m gru_exp.dashboard`` as a process: bad or busy host/port refused at once (VisualDL
itself would hang forever), its VisualDL stopped with it on SIGTERM/SIGINT or when VisualDL dies,
and an unusable outputs folder or config folder as one paragraph. Real processes and signals; no
browser (tests/test_dashboard.py looks at the pages)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO

HUNG_S = 90  # far above a refusal (a second or two); the old dashboard hung here forever


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bindable(port: int) -> bool:
    """Whether a server (SO_REUSEADDR, as VisualDL's) could listen on 127.0.0.1:port now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def visualdl_pids(port: int) -> list[int]:
    """Live (not zombie) VisualDL processes started for ``port``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, ValueError):
            continue
        if state != "Z" and any(a.endswith(b"visualdl") for a in args[:2]) and str(port).encode() in args:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "outputs" / "vdl").mkdir(parents=True)  # an empty dashboard folder: VisualDL serves it
    return tmp_path


def env_for(home: Path | str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GRU_EXP_CONFIG_PATH"}
    env.update(GRU_EXP_HOME=str(home), **extra)
    return env


def run_dashboard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the dashboard; if it hangs, kill it and its VisualDL (own session) and fail."""
    proc = subprocess.Popen([sys.executable, "-m", "gru_exp.dashboard", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=HUNG_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"python -m gru_exp.dashboard {' '.join(args)} still running after {HUNG_S} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def one_paragraph(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("gru_exp.dashboard: error: "), done.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("port", ["70000", "-1", "0", "65536", "http", ""])
def test_an_invalid_port_is_refused_at_once(home, port):
    error = one_paragraph(run_dashboard(env_for(home), "--port", port))
    assert f"--port {port!r}" in error and "1 to 65535" in error, error


def test_a_busy_port_is_refused_at_once(home):
    with socket.socket() as taken:  # listens, never answers: VisualDL's own start-up check hung on it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = one_paragraph(run_dashboard(env_for(home), "--port", str(port)))
    assert f"--port {port} on 127.0.0.1 is in use" in error and "1 to 65535" in error, error
    assert not visualdl_pids(port)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "203.0.113.7", "", "bad host"])
def test_a_bad_host_is_refused_at_once(home, host):
    port = free_port()
    error = one_paragraph(run_dashboard(env_for(home), "--host", host, "--port", str(port)))
    assert f"--host {host!r}" in error and "127.0.0.1" in error, error
    assert not visualdl_pids(port)


@pytest.mark.parametrize("how", ["/dev/null", "config_path"])
def test_an_unusable_outputs_or_config_folder_is_one_paragraph(home, how):
    if how == "/dev/null":  # outputs would be /dev/null/outputs
        error = one_paragraph(run_dashboard(env_for("/dev/null")))
        assert "/dev/null is a file, not a folder" in error and "GRU_EXP_HOME" in error, error
    else:
        error = one_paragraph(run_dashboard(env_for(home, GRU_EXP_CONFIG_PATH=str(home / "no_such_conf"))))
        assert "GRU_EXP_CONFIG_PATH" in error and "no_such_conf" in error, error


def _serving(home: Path) -> tuple[subprocess.Popen, int, list[int]]:
    """The dashboard serving an empty folder; its stderr goes to ``proc.err`` (a file: a VisualDL left
    running would keep a pipe open)."""
    port = free_port()
    err = home / "dashboard.err"
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "gru_exp.dashboard", "--port", str(port)], cwd=REPO,
                                env=env_for(home), stderr=fh, start_new_session=True)
    proc.err = err
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, err.read_text()[-3000:]
        assert time.monotonic() < deadline, "the dashboard did not answer within 120 s"
        try:  # VisualDL answers, and the dashboard has seen it answer
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/alive", timeout=2) as answer:
                if answer.status == 204 and "VisualDL over" in err.read_text():
                    break
        except OSError:
            pass
        time.sleep(0.3)
    pids = visualdl_pids(port)
    assert pids, "no VisualDL process found for the port"
    return proc, port, pids


def _cleanup(proc: subprocess.Popen, pids: list[int]) -> None:
    for pid in [proc.pid, *pids]:  # only what this test started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_visualdl_and_frees_the_port(home, sig):
    proc, port, pids = _serving(home)
    try:
        proc.send_signal(sig)
        proc.wait(60)
        assert proc.returncode == 128 + sig, proc.err.read_text()[-3000:]
        assert not visualdl_pids(port), "VisualDL still running after the dashboard stopped"
        assert bindable(port)
    finally:
        _cleanup(proc, pids)


def test_visualdl_dying_ends_the_dashboard(home):
    proc, port, pids = _serving(home)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        proc.wait(60)
        assert proc.returncode == 1
        assert "VisualDL exited with status -9" in proc.err.read_text()
    finally:
        _cleanup(proc, pids)


def test_visualdl_not_answering_within_the_bound_is_stopped(home):
    from gru_exp import dashboard
    from gru_exp.errors import GruExpError

    port = free_port()
    with pytest.raises(GruExpError, match=rf"did not answer on http://127.0.0.1:{port} within 0.5 s"):
        dashboard.start(home / "outputs", port=port, timeout_s=0.5)
    assert not visualdl_pids(port)


def test_visualdl_stops_when_the_dashboard_is_killed_outright(home):
    """SIGKILL cannot be handled: VisualDL gets the parent-death signal (SIGTERM) from the kernel."""
    proc, port, pids = _serving(home)
    try:
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 60
        while (visualdl_pids(port) or not bindable(port)) and time.monotonic() < deadline:
            time.sleep(0.2)  # the kernel's parent-death SIGTERM, then VisualDL's own shutdown, take a moment
        assert not visualdl_pids(port), "VisualDL outlived its dashboard"
        assert bindable(port)
    finally:
        _cleanup(proc, pids)


def test_an_answer_from_another_program_is_not_taken_for_its_own_visualdl(home):
    """A server of another program answering VisualDL's /alive on the port (the port was free when
    checked, then taken): refused, its VisualDL stopped, never announced as served."""
    import http.server
    import threading

    from gru_exp import dashboard
    from gru_exp.errors import GruExpError

    class Alive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Alive)
    port = other.server_address[1]
    threading.Thread(target=other.serve_forever, daemon=True).start()
    proc, error = None, ""
    try:
        proc = dashboard.start(home / "outputs", port=port, timeout_s=60)
    except GruExpError as exc:
        error = str(exc)
    finally:
        if proc is not None:
            dashboard.stop(proc)
        other.shutdown()
        other.server_close()
    assert proc is None, "an answer of another program was taken for its VisualDL"
    assert f"--port {port} on 127.0.0.1 was taken by another program" in error, error
    assert not visualdl_pids(port)


def test_two_dashboards_on_one_port_one_serves_the_other_is_refused(home):
    """Both started at the same moment on one free port: one serves, the other exits 2 with one
    paragraph naming the port taken by another program (it never announces the URL)."""
    port = free_port()
    procs = []
    for n in (1, 2):
        err = home / f"dashboard{n}.err"
        with open(err, "w") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "gru_exp.dashboard", "--port", str(port)], cwd=REPO,
                                    env=env_for(home), stderr=fh, start_new_session=True)
        proc.err = err
        procs.append(proc)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 150
        while not all(p.poll() is not None or "VisualDL over" in p.err.read_text() for p in procs):
            assert time.monotonic() < deadline, [p.err.read_text()[-2000:] for p in procs]
            time.sleep(0.5)
        time.sleep(3)  # a dashboard that announced the URL is still serving: not stopped right after
        pids = visualdl_pids(port)
        serving = [p for p in procs if p.poll() is None and "VisualDL over" in p.err.read_text()]
        refused = [p for p in procs if p.poll() is not None]
        assert len(serving) == 1 and len(refused) == 1, [(p.poll(), p.err.read_text()[-2000:]) for p in procs]
        err = refused[0].err.read_text()
        assert refused[0].returncode == 2 and "VisualDL over" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[-1].startswith("gru_exp.dashboard: error: --port") and "another program" in lines[-1], err
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/alive", timeout=5) as answer:
            assert answer.status == 204
    finally:
        for proc in procs:
            _cleanup(proc, [])
        _cleanup(procs[0], pids + visualdl_pids(port))


def _studies_served(proc: subprocess.Popen, port: int):
    """optuna-dashboard's answer to /api/studies once it serves (None if it never did within HUNG_S)."""
    deadline = time.monotonic() + HUNG_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            time.sleep(0.5)
    return None


def _study(home: Path, name: str = "board") -> Path:
    import optuna

    db = home / "outputs" / "sweeps" / "optuna.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{db}")
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, distributions={
        "x": optuna.distributions.FloatDistribution(0, 2)}, value=0.5))
    return db


def test_optuna_dashboard_serves_the_sweeps_storage_and_stops_with_the_command(home):
    """gru-exp dashboard --optuna: optuna-dashboard over the default SQLite storage of the sweeps,
    the storage URL in its environment (not in ps), stopped with the command (#27)."""
    db = _study(home)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gru_exp.dashboard", "--optuna", "--port", str(port)], cwd=REPO,
                            env={**os.environ, "GRU_EXP_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        studies = _studies_served(proc, port)
        assert studies is not None and '"board"' in studies, studies
        for entry in Path("/proc").iterdir():  # the storage's path never stands in a command line
            try:
                args = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            assert str(db).encode() not in args or entry.name == str(os.getpid())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-2000:]
    assert bindable(port)


def test_optuna_dashboard_without_a_study_is_refused_and_creates_nothing(home):
    proc = subprocess.run([sys.executable, "-m", "gru_exp.dashboard", "--optuna", "--port", str(free_port())],
                          cwd=REPO, env={**os.environ, "GRU_EXP_HOME": str(home)}, capture_output=True, text=True,
                          timeout=HUNG_S)
    assert proc.returncode == 2 and "does not exist yet: run a sweep first" in proc.stderr, proc.stderr[-2000:]
    assert not (home / "outputs" / "sweeps").exists()


@pytest.mark.parametrize("storage", ["journal:{j}", "sqlite:///{notadb}"])
def test_optuna_dashboard_reads_a_journal_and_refuses_an_unreadable_storage_in_one_paragraph(home, tmp_path, storage):
    """--storage journal:<file> (the sweeps' own syntax) is shown; a file that is not a study
    database is one paragraph, exit 2, and is never written (second adversarial pass)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "j.log"
    optuna.create_study(study_name="jj", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    notadb = tmp_path / "notadb.db"
    notadb.write_bytes(b"not a db\n")
    url = storage.format(j=journal, notadb=notadb)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gru_exp.dashboard", "--optuna", "--storage", url, "--port", str(port)],
                            cwd=REPO, env={**os.environ, "GRU_EXP_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if url.startswith("sqlite"):
            _, err = proc.communicate(timeout=HUNG_S)
            assert proc.returncode == 2 and "cannot be read as a study storage" in err and "Traceback" not in err, err
            assert notadb.read_bytes() == b"not a db\n"
            return
        studies = _studies_served(proc, port)
        assert studies is not None and '"jj"' in studies
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
