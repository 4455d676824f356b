"""Jobs that never train never import paddle: ``report`` (on run folders and on a study),
``baseline``, ``dashboard`` and every command's ``--help`` run in processes where ``import paddle``
fails (a folder first on PYTHONPATH whose ``paddle`` package raises ImportError)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, run_sweep, tiny_overrides

BLOCKED = "paddle is blocked for this test"


@pytest.fixture(scope="module")
def no_paddle(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that cannot import paddle (checked: the test could fail)."""
    folder = tmp_path_factory.mktemp("no_paddle")
    (folder / "paddle").mkdir()
    (folder / "paddle" / "__init__.py").write_text(f"raise ImportError({BLOCKED!r})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run([sys.executable, "-c", "import paddle"], env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and BLOCKED in probe.stderr
    return env


def run(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert BLOCKED not in proc.stderr, proc.stderr[-2000:]
    return proc


@pytest.mark.parametrize("command", [["gru_exp", "--help"], ["gru_exp.train", "--help"], ["gru_exp.sweep", "--help"],
                                     ["gru_exp.report", "--help"], ["gru_exp.baseline", "--help"],
                                     ["gru_exp.dashboard", "--help"], ["gru_exp", "--version"],
                                     ["gru_exp.predict", "--help"], ["gru_exp", "predict", "--help"],
                                     ["gru_exp.export", "--help"], ["gru_exp", "export", "--help"]])
def test_help_needs_no_paddle(no_paddle, command):
    proc = run(no_paddle, *command)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()


def test_training_says_how_to_install_paddle_when_it_is_missing(no_paddle, tiny_archive, tmp_path):
    """The control: the one job that needs paddle says so in one paragraph (exit 2), nothing written."""
    proc = subprocess.run([sys.executable, "-m", "gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "home")],
                          env=no_paddle, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "install" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "home").rglob("metrics.json"))


def test_report_baseline_and_dashboard_need_no_paddle(no_paddle, tiny_archive, tmp_path, sweep_env):
    home = tmp_path / "home"
    trained = subprocess.run([sys.executable, "-m", "gru_exp.train", "-m", "trainer.seed=1,2",
                              *tiny_overrides(tiny_archive, home, "trainer.epochs=1")],
                             cwd=REPO, capture_output=True, text=True, timeout=600)  # with paddle
    assert trained.returncode == 0, trained.stderr[-2000:]
    runs = trained.stdout.split()
    assert len(runs) == 2
    assert run_sweep(f"sweep={sweep_env(n_trials=2, epochs=1)}") == 0  # a study, with paddle

    by_runs = run(no_paddle, "gru_exp.report", *runs, "--out", str(home / "outputs" / "by_runs"))
    assert by_runs.returncode == 0, by_runs.stderr[-2000:]
    assert "| " in (home / "outputs" / "by_runs" / "report.md").read_text()
    env = {**no_paddle, "GRU_EXP_HOME": os.environ["GRU_EXP_HOME"]}  # the sweep's outputs (sweep_env)
    by_study = run(env, "gru_exp.report", "study_name=s")
    assert by_study.returncode == 0, by_study.stderr[-2000:]
    assert "| " in next(sweep_env.sweeps_dir.rglob("report.md")).read_text(), by_study.stderr[-2000:]

    baseline = run({**no_paddle, "GRU_EXP_HOME": str(home)}, "gru_exp.baseline")
    assert baseline.returncode == 0, baseline.stderr[-2000:]
    assert list((home / "outputs" / "baseline").rglob("vdlrecords*"))

    port = _free_port()
    dash = subprocess.Popen([sys.executable, "-m", "gru_exp.dashboard", "--port", str(port)],
                            env={**no_paddle, "GRU_EXP_HOME": str(home)}, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, served = time.monotonic() + 120, False
        while time.monotonic() < deadline and dash.poll() is None and not served:
            try:
                served = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
            except OSError:
                time.sleep(0.5)
        assert served, "the dashboard did not serve within 120 s"
    finally:
        dash.send_signal(signal.SIGTERM)
        out, err = dash.communicate(timeout=60)
    assert BLOCKED not in err, err[-2000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
