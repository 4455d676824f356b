"""A test accuracy beside an objective says which epoch it is from: with the objective
`eval_loss, reduce: best, minimize`, trial 0's value is epoch 2's loss while its test accuracy is
the score of epoch 1 (the epoch with the best val acc); summary.md and report.md name both."""

from __future__ import annotations

import csv
import json

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial
from test_report import fake_run, report

from gru_exp.sweep.summary import write_summary


def _study(tmp_path, test_epoch="best"):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="loss", storage=storage, direction="minimize")
    study.set_metric_names(["eval_loss"])
    study.set_user_attr("gru_exp_identity", {"objectives": [{"metric": "eval_loss", "reduce": "best",
                                                             "direction": "minimize"}]})
    folder = tmp_path / "loss"
    for n, (acc, loss) in enumerate((([0.50, 0.49], [0.70, 0.6903]), ([0.80, 0.85], [0.5, 0.4]))):
        run = folder / f"trial_{n}"
        record = fake_run(run, acc, test_acc=acc[0] if n == 0 else 0.84)
        record["series"]["eval_loss"] = loss
        record["test_epoch"] = record["best_epoch"] if test_epoch == "best" else 2
        record["config"]["trainer"]["test_epoch"] = test_epoch
        (run / "metrics.json").write_text(json.dumps(record))
        study.add_trial(create_trial(params={"trainer.lr": 0.001 * (n + 1)},
                                     distributions={"trainer.lr": FloatDistribution(1e-4, 1e-2)}, value=min(loss),
                                     user_attrs={"run_dir": str(run), "test_acc": record["test"]["acc"]}))
    (folder / "study.json").write_text(json.dumps({"study_name": "loss", "storage": storage}))
    return folder, study


def _row(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_summary_names_the_epochs_of_the_objective_and_the_test_accuracy(tmp_path):
    folder, study = _study(tmp_path)
    write_summary(study, folder)
    text = (folder / "summary.md").read_text()
    assert "| test acc % (epoch with the best val acc) |" in text, text
    row = _row(text, "| 0 | COMPLETE")
    assert "| 0.6903 (epoch 2) |" in row and "| 50.00 (epoch 1) |" in row, row
    row = _row(text, "| 1 | COMPLETE")  # objective and test from the same epoch: no epochs shown
    assert "| 0.4000 |" in row and "| 84.00 |" in row, row
    assert "test accuracy 50.00% (epoch with the best val acc" not in text  # trial 1 is best here
    assert "test accuracy 84.00% (epoch with the best val acc)" in text, text
    rows = {r["number"]: r for r in csv.DictReader((folder / "trials.csv").open())}
    assert (rows["0"]["objective_epoch"], rows["0"]["test_epoch"]) == ("2", "1")
    assert (rows["1"]["objective_epoch"], rows["1"]["test_epoch"]) == ("2", "2")


def test_report_names_the_epochs_of_the_objective_and_the_test_accuracy(tmp_path):
    folder, study = _study(tmp_path)
    assert report([str(folder)]) == 0
    text = (folder / "report.md").read_text()
    assert "test acc % (mean ± std; epoch with the best val acc)" in text, text
    row = _row(text, "| 2 | trial 0 |")
    assert "| 0.6903 (epoch 2) |" in row and "| 50.00 ± 0.00 (epoch 1) |" in row, row


def test_a_last_epoch_score_is_headed_so(tmp_path):
    folder, study = _study(tmp_path, test_epoch="last")
    write_summary(study, folder)
    assert "| test acc % (last epoch) |" in (folder / "summary.md").read_text()
