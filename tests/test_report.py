"""Reports on small generated studies and run folders: files, PNGs, numbers, errors."""

from __future__ import annotations

import json
import statistics
import struct
from pathlib import Path

import optuna
import pytest
from conftest import report_table
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from gru_exp.report.__main__ import main as report

DISTS = {"trainer.lr": FloatDistribution(1e-4, 1e-2, log=True), "model.direction": CategoricalDistribution(
    ["forward", "bidirectional"])}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def fake_run(folder: Path, eval_acc: list[float], test_acc: float, hidden: int = 64, seed: int = 1,
             name: str = "run") -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "completed", "run_dir": str(folder), "epochs_done": len(eval_acc), "wall_time_s": 60.0,
        "best_eval_acc": max(eval_acc), "best_epoch": eval_acc.index(max(eval_acc)) + 1,
        "test": {"acc": test_acc, "loss": 0.3},
        "series": {"epoch": list(range(1, len(eval_acc) + 1)), "eval_acc": eval_acc,
                   "train_acc": [a + 0.05 for a in eval_acc], "train_loss": [0.5] * len(eval_acc),
                   "eval_loss": [0.4] * len(eval_acc)},
        "config": {"name": name, "model": {"hidden_size": hidden}, "trainer": {"seed": seed, "lr": 0.001}, "paths": {"x": str(folder)}},
    }
    (folder / "metrics.json").write_text(json.dumps(record))
    return record


@pytest.fixture
def study_folder(tmp_path) -> tuple[Path, optuna.Study]:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="gen", storage=storage, direction="maximize")
    study.set_metric_names(["eval_acc"])  # as every gru-exp study has (the report shows it as a percentage)
    folder = tmp_path / "gen"
    values = [0.86, 0.89, 0.88, 0.87]
    for n, value in enumerate(values):
        curve = [value - 0.03, value - 0.01, value]
        fake_run(folder / f"trial_{n}", curve, test_acc=value - 0.01)
        study.add_trial(create_trial(
            params={"trainer.lr": 10 ** (-3 - 0.2 * n), "model.direction": ["forward", "bidirectional"][n % 2]},
            distributions=DISTS, value=value, intermediate_values=dict(enumerate(curve, start=1)),
            user_attrs={"run_dir": str(folder / f"trial_{n}"), "test_acc": value - 0.01}))
    study.add_trial(create_trial(params={"trainer.lr": 0.005, "model.direction": "forward"}, distributions=DISTS,
                                 state=TrialState.PRUNED, intermediate_values={1: 0.6}, value=None))
    folder.mkdir(exist_ok=True)
    (folder / "study.json").write_text(json.dumps({"study_name": "gen", "storage": storage}))
    return folder, study


def test_study_report_writes_table_and_figures(study_folder, capsys):
    folder, study = study_folder
    assert report([str(folder)]) == 0
    assert "report.md" in capsys.readouterr().out
    for name in ("learning_curves", "best_train_vs_eval", "optimization_history", "intermediate_values",
                 "parallel_coordinates", "slice"):
        width, height = png_size(folder / f"{name}.png")
        assert 400 <= width <= 4000 and 300 <= height <= 3000, (name, width, height)
    text = (folder / "report.md").read_text()
    # 4 complete trials: no importances, and the report says why (PED-ANOVA needs 10)
    assert not (folder / "param_importances.png").exists() and "- `trainer.lr`:" not in text
    assert "Parameter importances (PED-ANOVA, for eval_acc) withheld: 4 complete trial(s); PED-ANOVA contrasts" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "trial" in line]
    best = study.best_trial
    assert rows[0].startswith(f"| 1 | trial {best.number} | COMPLETE")
    assert f"| {100 * best.value:.2f} |" in rows[0]
    assert f"{100 * (best.user_attrs['test_acc'] - 0.845):+.2f}" in rows[0]
    assert "4 complete, 1 pruned, 0 failed" in text
    ranked = [float(r.split("|")[6]) for r in rows if "COMPLETE" in r]
    assert ranked == sorted(ranked, reverse=True)


def test_study_by_name_and_storage(study_folder, tmp_path):
    folder, study = study_folder
    out = tmp_path / "elsewhere"
    assert report(["study_name=gen", f"storage=sqlite:///{tmp_path / 'optuna.db'}", "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "Study `gen`: 4 complete, 1 pruned, 0 failed, 0 running trials." in text
    rows = report_table(text)
    # one row per trial, ranked by value, each with the study's own numbers (the fixture's values,
    # and test accuracy 1 point below each) and the pruned trial last, empty
    assert [(r["rank"], r["run"], r["state"]) for r in rows] == [
        ("1", "trial 1", "COMPLETE"), ("2", "trial 2", "COMPLETE"), ("3", "trial 3", "COMPLETE"),
        ("4", "trial 0", "COMPLETE"), ("5", "trial 4", "PRUNED")]
    for row, value in zip(rows, (0.89, 0.88, 0.87, 0.86)):
        trial = study.trials[int(row["run"].split()[1])]
        assert trial.value == value and row["model.direction"] == trial.params["model.direction"]
        assert float(row["trainer.lr"]) == pytest.approx(trial.params["trainer.lr"], rel=1e-3)
        assert row["eval_acc % (maximize)"] == f"{100 * value:.2f}"
        assert row["test acc % (mean ± std; epoch with the best val acc)"] == f"{100 * value - 1:.2f} ± 0.00"
        assert row["test − 84.50"] == f"{100 * value - 1 - 84.50:+.2f}" and row["runs"] == "1"
    assert rows[-1]["eval_acc % (maximize)"] == "" and rows[-1]["runs"] == "0"
    # beside the notebook's reference, the linear peers measured on the same split, pinned as published
    assert ("Linear peers on the same split (benchmarks/peers.py, docs/results.md section 10), test accuracy: "
            "TF-IDF uni+bigrams + logistic regression 90.65%; NB log-count ratios on binarized uni+bi+trigrams + "
            "logistic regression 91.50%.") in text


def test_run_folders_are_grouped_over_seeds(tmp_path):
    a1 = fake_run(tmp_path / "runs" / "a1", [0.85, 0.88], 0.87, hidden=64, seed=1)
    a2 = fake_run(tmp_path / "runs" / "a2", [0.86, 0.87], 0.86, hidden=64, seed=2)
    fake_run(tmp_path / "runs" / "b", [0.80, 0.82], 0.81, hidden=128, seed=1)
    assert report([str(tmp_path / "runs")]) == 0
    text = (tmp_path / "runs" / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    tests = [a1["test"]["acc"], a2["test"]["acc"]]
    expected = f"{100 * statistics.fmean(tests):.2f} ± {100 * statistics.stdev(tests):.2f}"
    assert "| 64 |" in rows[0] and expected in rows[0] and "| 2 |" in rows[0]
    assert "| 128 |" in rows[1]
    assert png_size(tmp_path / "runs" / "learning_curves.png")[0] >= 400


def test_seed_groups_are_compared_in_std_units(tmp_path):
    for seed, test in ((1, 0.890), (2, 0.886), (3, 0.894)):  # leads on validation
        fake_run(tmp_path / "best" / f"s{seed}", [0.88, 0.90], test, hidden=128, seed=seed, name="best")
    for seed, test in ((1, 0.862), (2, 0.870), (3, 0.866)):
        fake_run(tmp_path / "nb" / f"s{seed}", [0.86, 0.87], test, hidden=256, seed=seed, name="nb")
    fake_run(tmp_path / "nb" / "single", [0.80], 0.80, hidden=64, name="one")  # one seed: not compared
    assert report([str(tmp_path / "best"), str(tmp_path / "nb"), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    lead = statistics.fmean([0.890, 0.886, 0.894])
    other, other_std = statistics.fmean([0.862, 0.870, 0.866]), statistics.stdev([0.862, 0.870, 0.866])
    spread = max(other_std, statistics.stdev([0.890, 0.886, 0.894]))
    assert "Test accuracy over seeds, `best` (89.00 ± 0.40) against:" in text
    line = next(line for line in text.splitlines() if line.startswith("- `"))
    assert line.startswith("- `nb` (86.60 ± 0.40): ")
    assert f"{100 * (lead - other):+.2f} points = {(lead - other) / spread:.1f}x the larger std" in line
    assert sum(line.startswith("- `") for line in text.splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["{tmp}/empty"], "No runs with a finished epoch"),
    (["{tmp}/missing"], "no such folder"),
    (["study_name=nope", "storage=sqlite:///{tmp}/optuna.db"], "study_name='nope' is not in"),
    (["study_name=gen", "storage=sqlite:///{tmp}/absent.db"], "no such SQLite file"),
    (["study_name=gen", "storage=sqlite://"], "is an in-memory database: it holds no study"),
    ([], "Nothing to report"),
])
def test_errors_are_one_clear_line(study_folder, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    assert report([a.format(tmp=tmp_path) for a in args]) == 2
    assert message in capsys.readouterr().err


def test_groups_sharing_an_experiment_name_are_told_apart_by_what_differs(tmp_path):
    for seed in (1, 2):
        fake_run(tmp_path / "short" / f"s{seed}", [0.86, 0.87], 0.86, hidden=256, seed=seed, name="nb")
        fake_run(tmp_path / "long" / f"s{seed}", [0.86, 0.88], 0.87, hidden=512, seed=seed, name="nb")
        fake_run(tmp_path / "best" / f"s{seed}", [0.88, 0.90], 0.89, hidden=128, seed=seed, name="best")
    assert report([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "`nb (model.hidden_size=256)`" in text and "`nb (model.hidden_size=512)`" in text
    assert "`best`" in text and "`best (" not in text


def test_a_run_folder_with_equals_signs_in_its_name_is_a_folder_not_an_option(tmp_path):
    """Run folders made before 0.2 are named `<time>_<name>_key=value,key=value`: given as a target,
    an existing folder is reported, whatever characters its name holds."""
    folder = tmp_path / "runs" / "00-51-00_oldrun_data.cutoff=2,trainer.epochs=2"
    fake_run(folder, [0.85, 0.88], 0.87, hidden=64, seed=1)
    assert report([str(folder)]) == 0
    assert "1 configuration(s), 1 run(s)" in (folder / "report.md").read_text()
    assert report([str(tmp_path / "runs" / "no_such=folder")]) == 2  # not a folder: still an unknown option


def test_runs_on_different_archives_are_never_one_configuration(tmp_path):
    """Same config, seeds 1 and 2, two data archives: two configurations told apart by the archive's
    SHA-256, no mean ± std over them; records without it (older runs) group as before."""
    for seed, sha in ((1, "a" * 64), (2, "b" * 64)):
        fake_run(tmp_path / "runs" / f"s{seed}", [0.80, 0.85], test_acc=0.84, seed=seed)
        path = tmp_path / "runs" / f"s{seed}" / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "archive_sha256": sha}))
    assert report([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "2 configuration(s), 2 run(s)." in text
    assert "data.archive_sha256" in text and "aaaaaaaaaaaa" in text and "bbbbbbbbbbbb" in text
    for seed in (1, 2):
        fake_run(tmp_path / "old" / f"s{seed}", [0.80, 0.85], test_acc=0.84, seed=seed)  # no archive_sha256
    assert report([str(tmp_path / "old"), "--out", str(tmp_path / "out_old")]) == 0
    assert "1 configuration(s), 2 run(s)." in (tmp_path / "out_old" / "report.md").read_text()


def _generated_study(tmp_path, values, name="imp"):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_metric_names(["eval_acc"])
    folder = tmp_path / name
    for n, value in enumerate(values):
        curve = [value - 0.02, value]
        fake_run(folder / f"trial_{n}", curve, test_acc=value - 0.01)
        study.add_trial(create_trial(
            params={"trainer.lr": 10 ** (-2 - 0.15 * n), "model.direction": ["forward", "bidirectional"][n % 2]},
            distributions=DISTS, value=value, intermediate_values=dict(enumerate(curve, start=1)),
            user_attrs={"run_dir": str(folder / f"trial_{n}"), "test_acc": value - 0.01}))
    (folder / "study.json").write_text(json.dumps({"study_name": name, "storage": storage}))
    return folder


def test_importances_from_ten_complete_trials_name_their_evaluator(tmp_path):
    folder = _generated_study(tmp_path, [0.80 + 0.01 * n for n in range(10)])
    assert report([str(folder)]) == 0
    text = (folder / "report.md").read_text()
    assert "Parameter importances (PED-ANOVA, Optuna's evaluator, over complete trials, for eval_acc):" in text
    assert "- `trainer.lr`:" in text and "withheld" not in text and "fANOVA" not in text
    assert (folder / "param_importances.png").is_file()


def test_importances_are_withheld_when_every_objective_value_is_the_same(tmp_path):
    folder = _generated_study(tmp_path, [0.85] * 12)
    assert report([str(folder)]) == 0
    text = (folder / "report.md").read_text()
    assert "withheld: all 12 complete trials have the same eval_acc (0.85): there is no difference" in text
    assert "- `trainer.lr`:" not in text and not (folder / "param_importances.png").exists()


def test_the_report_gives_each_configurations_test_roc_auc(tmp_path):
    folder = _generated_study(tmp_path, [0.8, 0.9], name="auc")
    for n, auc in enumerate((0.91, 0.97)):
        record = json.loads((folder / f"trial_{n}" / "metrics.json").read_text())
        record["test"]["auc"] = auc
        (folder / f"trial_{n}" / "metrics.json").write_text(json.dumps(record))
    assert report([str(folder)]) == 0
    text = (folder / "report.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| rank |"))
    assert header.rstrip(" |").endswith("test ROC AUC")
    assert next(line for line in text.splitlines() if line.startswith("| 1 |")).endswith("| 0.9700 |")
