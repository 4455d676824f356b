"""Nothing is chosen or shown under a validation name by a test score (issue 23): a study whose
trials have no validation split, and a report of runs evaluated on the test set."""

from __future__ import annotations

import json

import pytest
from conftest import run_sweep, tiny_overrides


@pytest.mark.parametrize("base_extra,params_extra", [
    (", data.val_size=0, trainer.test_epoch=last", ""),
    ("", "  data.val_size: {type: categorical, choices: [0, 40]}\n"),
])
def test_a_study_that_would_choose_by_a_test_score_is_refused(sweep_env, capsys, base_extra, params_extra):
    """A sweep whose base (or search space) has data.val_size=0 used to optimise, prune and rank
    trials by their per-epoch test accuracy."""
    name = sweep_env(name="leak", n_trials=1, epochs=1)
    path = sweep_env.sweeps_dir.parent.parent.parent / "sweeps" / "leak.yaml"
    text = path.read_text().replace("logger.batch_loss_every=0]", f"logger.batch_loss_every=0{base_extra}]", 1)
    path.write_text(text.replace("params:\n", "params:\n" + params_extra, 1))
    assert run_sweep(f"sweep={name}") == 2
    err = capsys.readouterr().err
    assert "would choose by a test score" in err and "Traceback" not in err, err
    assert not (sweep_env.sweeps_dir / name).exists()


def test_a_report_never_shows_a_test_score_as_validation(tiny_archive, tmp_path):
    """A refit (data.val_size=0) run's best per-epoch accuracy is a test score: the report used to
    show it as "best val acc %" and rank by it."""
    from gru_exp.config.compose import compose_config
    from gru_exp.report.__main__ import main as report
    from gru_exp.train.run import run_training

    runs = tmp_path / "runs"
    overrides = tiny_overrides(tiny_archive, tmp_path / "out", "logger.visualdl=false", "logger.baseline=false")
    refit = run_training(compose_config([*overrides, "data.val_size=0", "trainer.test_epoch=last", "trainer.epochs=3",
                                         "trainer.seed=3"]), runs / "refit")
    held = run_training(compose_config([*overrides, "model.hidden_size=8"]), runs / "held")
    assert report([str(runs)]) == 0
    rows = [line for line in (runs / "report.md").read_text().splitlines() if line.startswith("| ")]
    first, second = rows[1], rows[2]  # rows[0]: the header
    assert "data.val_size=16" in first and f"{100 * held.best_eval_acc:.2f}" in first  # ranked by validation only
    assert "data.val_size=0" in second and f"| last |  |  | {100 * refit.test['acc']:.2f}" in second, second
    assert json.loads((runs / "refit" / "metrics.json").read_text())["eval_split"] == "test"


def test_the_best_epoch_is_chosen_on_the_validation_hold_out_never_on_test(tiny_cfg, tmp_path):
    """Each epoch's recorded eval loss and accuracy (what picks the best epoch, early stopping and a
    sweep's objective) are the validation hold-out's: the best and the last checkpoint, evaluated
    again on the validation split the run drew, give their epochs' recorded numbers, and on the test
    split they do not (issue #29's mutation check: evaluating each epoch on test went unnoticed)."""
    from pathlib import Path

    from gru_exp.config.values import run_config
    from gru_exp.train.checkpoints import load_checkpoint
    from gru_exp.train.loop import evaluate
    from gru_exp.train.run import build, load_data, run_training

    cfg = tiny_cfg("trainer.epochs=3", "logger.visualdl=false", "logger.baseline=false")
    run_training(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (record["eval_split"], record["n_eval"], record["n_test"]) == ("val", 16, 80)
    rc = run_config(cfg)
    splits = load_data(rc, Path(rc.data.path))
    model, _ = build(rc, splits)
    for name in ("best", "last"):
        ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / f"{name}.pdparams")
        model.set_state_dict(ckpt["model"])
        recorded = (record["series"]["eval_loss"][ckpt["epoch"] - 1], record["series"]["eval_acc"][ckpt["epoch"] - 1])
        assert evaluate(model, splits.eval, rc) == pytest.approx(recorded, rel=1e-6), name
        assert evaluate(model, splits.test, rc)[0] != pytest.approx(recorded[0], rel=1e-6), name
    assert record["best_eval_acc"] == max(record["series"]["eval_acc"])
