"""Reports that count right: a study folder copied or moved elsewhere (the rsync workflow of
docs/scale-out.md) is read where it is, never through the absolute paths its trials recorded,
and each run is counted once however often its folder is reached."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, report_table


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600)


def row_of(report: str, number: int) -> list[str]:
    row = next(ln for ln in report.splitlines() if re.match(rf"\| \d+ \| trial {number} \|", ln))
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.fixture
def study(sweep_env):
    name = sweep_env(name="s", n_trials=2, epochs=1)
    proc = cli("gru_exp.sweep", f"sweep={name}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep_env.sweeps_dir / name


def test_a_copied_study_folder_is_read_where_it_is_not_where_the_trials_ran(study, tmp_path):
    copy = tmp_path / "elsewhere" / "s"
    shutil.copytree(study, copy)
    record = json.loads((copy / "trial_0" / "metrics.json").read_text())
    record["test"]["acc"] = 0.1234  # this copy's own number, unlike the original's
    (copy / "trial_0" / "metrics.json").write_text(json.dumps(record))
    proc = cli("gru_exp.report", str(copy))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "12.34 ± 0.00" in row_of((copy / "report.md").read_text(), 0)

    shutil.move(study, tmp_path / "gone")  # the machine the trials ran on is not this one
    proc = cli("gru_exp.report", str(copy))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (copy / "report.md").read_text()
    for row in report_table(report):  # validation and test accuracy from the copy, not empty (by column name)
        val = next(v for k, v in row.items() if k.startswith("best val acc"))
        test = next(v for k, v in row.items() if k.startswith("test acc"))
        assert re.fullmatch(r"\d+\.\d\d ± \d\.\d\d", val) and re.fullmatch(r"\d+\.\d\d ± \d\.\d\d", test), row


def test_a_trial_missing_from_the_folder_given_is_empty_not_read_from_another_copy(study, tmp_path):
    copy = tmp_path / "partial" / "s"
    shutil.copytree(study, copy)
    shutil.rmtree(copy / "trial_1")  # not rsynced yet; the original still exists on this machine
    proc = cli("gru_exp.report", str(copy))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 trial(s) have no run folder under" in proc.stderr
    assert row_of((copy / "report.md").read_text(), 1)[-5] == "0"  # runs: none read


def test_each_run_is_counted_once(study, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(study / "trial_0", target_is_directory=True)
    out = tmp_path / "rep"
    proc = cli("gru_exp.report", "--out", str(out), str(study), str(study / "trial_0"), str(study / "trial_0"),
               str(link))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 configuration(s), 2 run(s)." in (out / "report.md").read_text()


def test_a_copied_study_is_not_counted_as_more_seeds(study, tmp_path):
    """`rsync -a $S/ copy/; report $S copy`: each run once (its recorded host, pid, folder and wall
    time are the same in the copy), said in a log line naming both folders."""
    copy = tmp_path / "copy"
    shutil.copytree(study, copy, symlinks=True)
    out = tmp_path / "rep"
    proc = cli("gru_exp.report", "--out", str(out), str(study), str(copy))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (out / "report.md").read_text()
    assert "2 configuration(s), 2 run(s)." in text, text
    for trial in ("trial_0", "trial_1"):
        assert f"{copy / trial} holds a copy of the run in {study / trial}" in proc.stderr, proc.stderr[-3000:]


def test_copied_run_folders_count_once_and_other_runs_still_count(tmp_path):
    from test_report import fake_run, report

    for seed in (1, 2):
        fake_run(tmp_path / "runs" / f"s{seed}", [0.80, 0.85], test_acc=0.80 + seed / 100, seed=seed)
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    out = tmp_path / "rep"
    assert report([str(tmp_path / "runs"), str(tmp_path / "copy"), "--out", str(out)]) == 0
    assert "1 configuration(s), 2 run(s)." in (out / "report.md").read_text()
