"""A report that cannot be written where it is asked to go: one paragraph, exit 2, no traceback,
nothing left behind. A real read-only folder: a read-only bind mount (root ignores chmod 555; needs
root and a container that allows mounts, as CI; skipped otherwise, saying why)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO
from test_report import fake_run


@pytest.fixture
def read_only(tmp_path):
    """A folder holding two runs, mounted read-only."""
    folder = tmp_path / "runs"
    for seed in (1, 2):
        fake_run(folder / f"run_{seed}", [0.80, 0.85], test_acc=0.84, seed=seed)
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
    ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True)
    if ro.returncode != 0:
        subprocess.run(["umount", str(folder)], check=False)
        pytest.skip(f"cannot remount read-only here: {ro.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_report_into_a_read_only_folder_is_one_paragraph(read_only):
    before = sorted(p.name for p in read_only.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "gru_exp.report", str(read_only)], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip()
    assert err.startswith("gru_exp.report: error: The report cannot be written into") and "--out" in err, err
    assert "Read-only file system" in err and "Traceback" not in err and err.count("\n") == 0, err
    assert sorted(p.name for p in read_only.rglob("*")) == before


def test_the_same_runs_report_elsewhere_with_out(read_only, tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "gru_exp.report", "--out", str(out), str(read_only)], cwd=REPO,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 configuration(s), 2 run(s)." in (out / "report.md").read_text()


def test_a_report_never_replaces_files_it_did_not_write(tmp_path):
    from test_report import report

    folder = tmp_path / "run"
    fake_run(folder, [0.80, 0.85], test_acc=0.84)
    assert report([str(folder)]) == 0  # its own report.md and figures: replaced by the next report
    first = (folder / "report.md").read_text()
    assert report([str(folder)]) == 0 and (folder / "report.md").read_text() == first
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]

    (folder / "report.md").write_text("my own notes\n")  # a user's file of that name
    proc = subprocess.run([sys.executable, "-m", "gru_exp.report", str(folder)], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "which gru-exp did not write" in proc.stderr and "--out" in proc.stderr, proc.stderr
    assert (folder / "report.md").read_text() == "my own notes\n"

    other = tmp_path / "other"
    fake_run(other, [0.80, 0.85], test_acc=0.84)
    (other / "learning_curves.png").write_bytes(b"mine")  # a figure's name, no gru-exp report beside it
    assert report([str(other)]) == 2
    assert (other / "learning_curves.png").read_bytes() == b"mine" and not (other / "report.md").exists()
