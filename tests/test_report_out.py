"""Where a report may go (``--out``) and which report.md it may replace: never a folder gru-exp
owns (a run or trial folder or one inside it, another study's folder, a best_so_far or baseline
folder, the dashboard folder), never a user's report.md that merely starts like a report."""

from __future__ import annotations

import json

import pytest
from test_report import fake_run, report, study_folder  # noqa: F401 - a fixture


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRU_EXP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("where", ["other_study", "trial", "trial_checkpoints", "best_so_far", "study_baseline",
                                   "dashboard", "baseline_dir"])
def test_out_into_a_folder_gru_exp_owns_is_refused_and_nothing_written(study_folder, home, tmp_path, capsys,  # noqa: F811
                                                                         where):
    folder, _ = study_folder
    other = tmp_path / "other"
    other.mkdir()
    (other / "study.json").write_text(json.dumps({"study_name": "other", "storage": "sqlite:///x.db"}))
    (other / "report.md").write_text("# Report: other\nReference: the notebook's test accuracy\n")
    out = {"other_study": other, "trial": folder / "trial_1", "trial_checkpoints": folder / "trial_1" / "checkpoints",
           "best_so_far": folder / "best_so_far", "study_baseline": folder / "baseline",
           "dashboard": home / "outputs" / "vdl", "baseline_dir": home / "outputs" / "baseline" / "notebook"}[where]
    before = {p: files_under(p) for p in (tmp_path, home)}
    capsys.readouterr()
    assert report([str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gru_exp.report: error: --out {out} ") and "\n" not in err and "Nothing was written" in err
    assert {p: files_under(p) for p in (tmp_path, home)} == before


def test_out_the_reported_study_or_a_new_folder_is_allowed(study_folder, home, tmp_path):  # noqa: F811
    folder, _ = study_folder
    assert report([str(folder), "--out", str(folder)]) == 0
    assert report([str(folder), "--out", str(tmp_path / "mine" / "rep")]) == 0
    assert (tmp_path / "mine" / "rep" / "report.md").is_file()


def test_a_users_file_starting_like_a_report_is_not_replaced(tmp_path, home):
    run = tmp_path / "runs" / "a"
    fake_run(run, [0.80, 0.85], test_acc=0.84)
    out = tmp_path / "notes"
    out.mkdir()
    mine = "# Report: my thoughts on GRUs\n\nnot a table\n"
    (out / "report.md").write_text(mine)
    assert report([str(run), "--out", str(out)]) == 2
    assert (out / "report.md").read_text() == mine and [p.name for p in out.iterdir()] == ["report.md"]


def test_own_reports_are_replaced_marked_or_written_before_the_mark(tmp_path, home):
    run = tmp_path / "runs" / "a"
    fake_run(run, [0.80, 0.85], test_acc=0.84)
    out = tmp_path / "rep"
    assert report([str(run), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    from gru_exp.report.tables import REPORT_MARK

    assert text.splitlines()[1] == REPORT_MARK
    assert report([str(run), "--out", str(out)]) == 0  # marked: replaced
    old = "\n".join(line for line in text.splitlines() if line != REPORT_MARK) + "\n"  # as written before the mark
    (out / "report.md").write_text(old)
    assert report([str(run), "--out", str(out)]) == 0 and (out / "report.md").read_text() == text
    (out / "report.md").write_text(old.replace(f"# Report: {out}", "# Report: elsewhere", 1))  # another title
    assert report([str(run), "--out", str(out)]) == 2


def test_a_file_of_the_users_under_a_figures_name_beside_an_earlier_report_is_never_replaced(home, tmp_path, capsys):
    """An earlier gru-exp report.md in --out makes only the figures it shows gru-exp's (adversarial
    finding: a user's slice.png beside it was replaced by a study report's figure)."""
    fake_run(tmp_path / "runs" / "a", [0.80, 0.85], test_acc=0.84)
    out = tmp_path / "rep"
    assert report([str(tmp_path / "runs" / "a"), "--out", str(out)]) == 0
    (out / "slice.png").write_bytes(b"MY SLICE NOTES")
    (out / "learning_curves.png").write_bytes(b"old figure of the earlier report")  # shown by report.md: gru-exp's
    assert report([str(tmp_path / "runs" / "a"), "--out", str(out)]) == 2
    assert "slice.png" in capsys.readouterr().err
    assert (out / "slice.png").read_bytes() == b"MY SLICE NOTES"
    (out / "slice.png").unlink()
    assert report([str(tmp_path / "runs" / "a"), "--out", str(out)]) == 0  # its own figures are replaced
    assert (out / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
