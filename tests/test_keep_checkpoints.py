"""trainer.keep_checkpoints: what a finished run keeps, only after it was scored and recorded, only
files it wrote; a sweep's trials keep their best weights only."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import paddle
import pytest
from conftest import run_sweep as sweep

from gru_exp.train.loop import Callback, TrainState
from gru_exp.train.run import run_training

BEST, LAST = "checkpoints/best.pdparams", "checkpoints/last.pdparams"


def files(run_dir) -> list[str]:
    folder = run_dir / "checkpoints"
    return sorted(f"checkpoints/{p.name}" for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("keep, test_epoch, kept, best_has_optimizer", [
    ("all", "best", [BEST, LAST], False), ("all", "last", [BEST, LAST], False),
    ("last", "last", [LAST], None),  # last with the best epoch scored is refused (tests/test_keep_scored.py)
    ("best", "best", [BEST], False), ("best", "last", [LAST], None),  # best: the scored weights
    ("none", "best", [], None), ("none", "last", [], None)])
def test_a_finished_run_keeps_what_keep_checkpoints_says_after_its_test_score(tiny_cfg, tmp_path, keep, test_epoch,
                                                                              kept, best_has_optimizer):
    run_dir = tmp_path / f"{keep}_{test_epoch}"  # scoring reads best.pdparams or last.pdparams: both before removal
    record = run_training(tiny_cfg(f"trainer.keep_checkpoints={keep}", f"trainer.test_epoch={test_epoch}"), run_dir)
    assert record.status == "completed" and record.test["acc"] is not None
    assert files(run_dir) == kept
    assert (run_dir / "metrics.json").is_file()
    if best_has_optimizer is not None:  # only last.pdparams, which a resume reads, holds the optimizer
        assert bool(paddle.load(str(run_dir / BEST))["optimizer"]) == best_has_optimizer
    if LAST in kept:
        assert paddle.load(str(run_dir / LAST))["optimizer"]
    if keep == "none":
        assert not (run_dir / "checkpoints").exists()


class _Fail(Callback):
    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == 2:
            raise RuntimeError("boom")


def test_a_failed_run_keeps_everything_to_resume_from(tiny_cfg, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        run_training(tiny_cfg("trainer.keep_checkpoints=none", "trainer.epochs=3"), tmp_path / "r", callbacks=[_Fail()])
    assert files(tmp_path / "r") == [BEST, LAST]


def test_only_files_this_run_wrote_are_removed(tiny_cfg, tmp_path):
    run_training(tiny_cfg("trainer.epochs=1"), tmp_path / "part")
    before = {name: (tmp_path / "part" / name).read_bytes() for name in files(tmp_path / "part")}
    resumed = run_training(tiny_cfg("trainer.epochs=2", "trainer.keep_checkpoints=none",
                                    f"trainer.resume={tmp_path / 'part'}"), tmp_path / "resumed")
    assert resumed.status == "completed" and resumed.epochs_done == 2
    assert files(tmp_path / "resumed") == []
    assert {name: (tmp_path / "part" / name).read_bytes() for name in files(tmp_path / "part")} == before


def test_sweep_trials_keep_their_best_weights_only_unless_the_base_says_otherwise(sweep_env):
    name = sweep_env(n_trials=2, epochs=2, pruner="{name: none}")
    assert sweep(f"sweep={name}") == 0
    for n in (0, 1):
        assert files(sweep_env.sweeps_dir / name / f"trial_{n}") == [BEST]
    name = sweep_env(name="kept", n_trials=1, epochs=1, pruner="{name: none}")
    space = Path(os.environ["GRU_EXP_SWEEPS_PATH"]) / f"{name}.yaml"
    space.write_text(space.read_text().replace("base: [", "base: [trainer.keep_checkpoints=all, "))
    assert sweep(f"sweep={name}") == 0
    assert files(sweep_env.sweeps_dir / name / "trial_0") == [BEST, LAST]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    assert "trainer.keep_checkpoints=all" in study.trials[0].user_attrs["command"]


def test_resuming_a_run_that_kept_no_last_checkpoint_says_why(tiny_cfg, tmp_path):
    from gru_exp.errors import ConfigError

    run_training(tiny_cfg("trainer.keep_checkpoints=best", "trainer.epochs=1"), tmp_path / "r")
    with pytest.raises(ConfigError, match="keeps no last.pdparams: train it again"):
        run_training(tiny_cfg("trainer.epochs=2", f"trainer.resume={tmp_path / 'r'}"), tmp_path / "more")
    assert not (tmp_path / "more").exists()
