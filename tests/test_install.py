"""Installed like any Python tool: build the sdist and the wheel (the wheel from the sdist, so the
sdist is complete), check their metadata and contents, install the wheel into a fresh virtual
environment and, from an empty folder outside the repository, run a tiny real training, a 2-trial
sweep over the user's own search space and a report. Nothing may be written outside that folder
(HOME and TMPDIR point into it and must stay empty) and the repository must not change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, report_table

from synthetic_imdb import make_imdb_archive

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # 45 s here; a cold pip cache downloads paddle


def run(cmd: list, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def repo_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # From a copy of the tracked files: the build never writes build/ or egg-info into the checkout.
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    run([sys.executable, "-m", "build", "--outdir", out, src], cwd=src, env=os.environ.copy())
    run([sys.executable, "-m", "twine", "check", "--strict", *sorted(out.iterdir())], cwd=out, env=os.environ.copy())
    return out


def test_the_wheel_carries_the_configs_and_nothing_else(dist):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("gru_exp/conf/config.yaml", "gru_exp/conf/sweep.yaml", "gru_exp/conf/hydra/default.yaml",
                   "gru_exp/conf/experiment/cpu_quick.yaml", "gru_exp/sweeps/cpu_quick.yaml", "gru_exp/commands.py"):
        assert needed in names
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "gru_exp").rglob("*.py")}
    assert sources <= set(names), f"modules missing from the wheel (pyproject packages?): {sources - set(names)}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    top = {n.split("/")[0] for n in names}
    assert top == {"gru_exp", wheel.name.split("-py3")[0] + ".dist-info"}, top  # no tests, outputs, docs
    assert not [n for n in names if n.endswith((".tar.gz", ".pdparams", ".db", ".pyc")) or "vdlrecords" in n]
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "gru-exp = gru_exp.commands:main" in entry
    (sdist,) = dist.glob("*.tar.gz")
    members = {m.split("/", 1)[1] for m in tarfile.open(sdist).getnames() if "/" in m}
    assert {"LICENSE", "conf/config.yaml", "sweeps/imdb_pool.yaml", "tests/conftest.py"} <= members


def test_an_installed_wheel_trains_sweeps_and_reports_from_an_empty_folder(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=os.environ.copy())
    py, tool = venv / "bin" / "python", venv / "bin" / "gru-exp"
    # paddlepaddle comes from the `cpu` extra; pip's cache makes this an install, not a download.
    run([py, "-m", "pip", "install", "--quiet", f"{wheel}[cpu]"], cwd=tmp_path, env=os.environ.copy())
    run([py, "-m", "pip", "check"], cwd=tmp_path, env=os.environ.copy())

    work = tmp_path / "work"  # the user's project folder: empty but for their own configs and data
    (work / "home").mkdir(parents=True)
    (work / "tmp").mkdir()
    archive = make_imdb_archive(work / "data" / "aclImdb_v1.tar.gz", n_per_class=40, seed=0)
    (work / "myconf" / "experiment").mkdir(parents=True)
    (work / "myconf" / "experiment" / "tiny.yaml").write_text(
        "# @package _global_\nname: tiny\ndata: {cutoff: 2, val_size: 16}\nmodel: {embedding_size: 16, hidden_size: 16}\n"
        "trainer: {batch_size: 16, epochs: 2, progress_every_s: 0}\n")
    (work / "myconf" / "sweeps").mkdir()
    (work / "myconf" / "sweeps" / "mine.yaml").write_text(
        "study_name: mine\nbase: [experiment=tiny, trainer.epochs=1]\nn_trials: 2\nsampler: {name: random, seed: 0}\n"
        "pruner: {name: none}\nparams:\n  trainer.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRU_EXP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(work / "home"), TMPDIR=str(work / "tmp"), GRU_EXP_IMDB=str(archive),
               GRU_EXP_CONFIG_PATH=str(work / "myconf"), PATH=f"{venv / 'bin'}:{env['PATH']}")
    before = repo_state()

    version = run([tool, "--version"], cwd=work, env=env).stdout
    assert version.startswith("gru-exp 0.") and "paddle 3." in version
    helptext = run([tool, "train", "--help"], cwd=work, env=env).stdout
    assert "yours: tiny" in helptext and "GRU_EXP_HOME" in helptext and "Examples:" in helptext
    spaces = run([tool, "sweep", "--help"], cwd=work, env=env).stdout.splitlines()
    assert any(line.startswith("  mine (") and line.endswith(": trainer.lr") for line in spaces), spaces

    train = run([tool, "train", "experiment=tiny"], cwd=work, env=env)
    assert f"Outputs go to {work / 'outputs'}" in train.stderr
    (record,) = (work / "outputs" / "runs").glob("*/*/metrics.json")
    assert '"status": "completed"' in record.read_text()
    run([py, "-m", "gru_exp.sweep", "sweep=mine"], cwd=work, env=env)
    study = work / "outputs" / "sweeps" / "mine"
    assert sorted(p.name for p in study.glob("trial_*")) == ["trial_0", "trial_1"]
    report = run([tool, "report", study], cwd=work, env=env)
    assert f"Report: {study / 'report.md'}" in report.stdout
    import optuna

    trials = optuna.load_study(study_name="mine", storage=f"sqlite:///{work / 'outputs' / 'sweeps' / 'optuna.db'}").trials
    text = (study / "report.md").read_text()
    assert "Study `mine`: 2 complete, 0 pruned, 0 failed, 0 running trials." in text, text
    rows = report_table(text)  # both trials, best first, each with the study's value and its run's test score
    assert [r["run"] for r in rows] == [f"trial {t.number}" for t in sorted(trials, key=lambda t: -t.value)]
    for row in rows:
        trial = trials[int(row["run"].split()[1])]
        record = json.loads((study / f"trial_{trial.number}" / "metrics.json").read_text())
        assert row["state"] == "COMPLETE" and float(row["trainer.lr"]) == pytest.approx(trial.params["trainer.lr"], rel=1e-3)
        assert row["eval_acc % (maximize)"] == f"{100 * trial.value:.2f}"
        assert row["test acc % (mean ± std; epoch with the best val acc)"] == f"{100 * record['test']['acc']:.2f} ± 0.00"
    assert (study / "learning_curves.png").stat().st_size > 5_000

    # $GRU_EXP_HOME moves the outputs, wherever the command runs.
    elsewhere = tmp_path / "elsewhere"
    run([tool, "baseline"], cwd=work, env={**env, "GRU_EXP_HOME": str(elsewhere)})
    assert list((elsewhere / "outputs" / "baseline" / "notebook").glob("vdlrecords*"))

    assert sorted(p.name for p in work.iterdir()) == ["data", "home", "myconf", "outputs", "tmp"]
    assert not list((work / "tmp").iterdir())
    # HOME holds only what paddle and VisualDL create when imported (an empty dataset folder, VisualDL's
    # settings); gru-exp itself (and matplotlib, pointed at outputs/cache) writes nothing there.
    written = sorted(str(p.relative_to(work / "home")) for p in (work / "home").rglob("*") if p.is_file())
    assert written == [".visualdl/conf/config.json"], written
    assert not list((work / "home" / ".cache" / "paddle").rglob("*.*"))
    assert repo_state() == before
