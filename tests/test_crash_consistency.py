"""Crash consistency of a run folder (issue 23): a real training is killed with SIGKILL at every
point between two file writes (each checkpoint and metrics.json, before and after its rename, in
every epoch and at the final record), then resumed in a new process. Every resume must score what
the uninterrupted run scores, under the same epoch, or be refused with one paragraph (exit 2).

The kill comes from the process itself at a named point (gru_exp.files.crash_point, armed by
$GRU_EXP_TEST_KILL_AT only): an outside poller cannot land between two renames reliably."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, tiny_overrides

COMPARED = ("epoch", "train_loss", "train_acc", "eval_loss", "eval_acc")
EPOCHS = 3
# (point, how many times a 3-epoch run passes it): last.pdparams once per epoch; best.pdparams at
# most once per epoch; metrics.json at the start, once per epoch, and for the final record.
POINTS = [(p, n) for p in ("last.pdparams:tmp", "last.pdparams", "best.pdparams:tmp", "best.pdparams")
          for n in range(1, EPOCHS + 1)] + [(p, n) for p in ("metrics.json:tmp", "metrics.json")
                                            for n in range(1, EPOCHS + 3)]


def train(archive: Path, out: Path, run_dir: Path, *extra: str, kill_at: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("GRU_EXP_TEST_KILL_AT", None)
    if kill_at:
        env["GRU_EXP_TEST_KILL_AT"] = kill_at
    args = tiny_overrides(archive, out, f"trainer.epochs={EPOCHS}", "logger.baseline=false", "trainer.seed=3",
                          "model.word_dropout=0.2", "trainer.lr_schedule=cosine", "trainer.warmup=0.2",
                          f"hydra.run.dir={run_dir}", *extra)
    return subprocess.run([sys.executable, "-m", "gru_exp.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def outcome(rec: dict) -> tuple:
    return (rec["status"], rec["best_epoch"], rec["test_epoch"], rec["test"],
            {k: rec["series"][k] for k in COMPARED})


@pytest.mark.slow
def test_a_kill_at_any_point_resumes_to_the_uninterrupted_result_or_is_refused(tiny_archive, tmp_path):
    out = tmp_path / "out"
    full = train(tiny_archive, out, tmp_path / "full")
    assert full.returncode == 0, full.stderr[-2000:]
    expected = outcome(record(tmp_path / "full"))
    assert expected[0] == "completed" and expected[2] == expected[1]
    seen = {"killed": 0, "resumed": 0, "refused": 0}
    for point, n in POINTS:
        killed = tmp_path / f"killed_{point}_{n}"
        proc = train(tiny_archive, out, killed, kill_at=f"{point}:{n}")
        if proc.returncode == 0:  # this run never passed the point n times (e.g. fewer new best epochs)
            assert outcome(record(killed)) == expected
            continue
        assert proc.returncode == -signal.SIGKILL, (point, n, proc.stderr[-2000:])
        seen["killed"] += 1
        resumed = train(tiny_archive, out, tmp_path / f"resumed_{point}_{n}", f"trainer.resume={killed}")
        where = f"killed at {point} pass {n}: {resumed.stderr[-1500:]}"
        if resumed.returncode == 2:
            seen["refused"] += 1
            assert "Traceback" not in resumed.stderr, where
            if (killed / "metrics.json").is_file() and record(killed)["status"] == "completed":
                assert outcome(record(killed)) == expected, where  # killed after its last word: it is whole
                assert "already has 3 epochs" in resumed.stderr, where
            else:  # killed before its first epoch was committed: nothing to continue, and it says so
                assert "is not a run folder with a finished epoch" in resumed.stderr, where
                assert not (killed / "checkpoints" / "last.pdparams").is_file(), where
            continue
        assert resumed.returncode == 0, where
        seen["resumed"] += 1
        assert outcome(record(tmp_path / f"resumed_{point}_{n}")) == expected, where
    assert seen["killed"] >= 16 and seen["resumed"] >= 10 and seen["refused"] >= 2, seen


def test_a_best_checkpoint_that_disagrees_with_the_last_is_repaired_or_refused(tiny_archive, tmp_path):
    """The kill of issue 23 made by hand, both ways. best.pdparams one epoch behind last.pdparams
    whose best epoch is its own (a kill between the two renames) is written again from
    last.pdparams, so the epoch scored is the epoch named; a best.pdparams of an epoch that
    last.pdparams does not name as best, with the named one lost, is refused (exit 2)."""
    import shutil

    import paddle

    from gru_exp.train.checkpoints import load_checkpoint

    out, constant = tmp_path / "out", ("trainer.lr_schedule=constant", "trainer.warmup=0")  # extendable runs
    for name, epochs in (("one", 1), ("two", 2)):
        assert train(tiny_archive, out, tmp_path / name, f"trainer.epochs={epochs}", *constant).returncode == 0
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pdparams")
    for case, best_epoch, best_file in (("lagging", 2, tmp_path / "one" / "checkpoints" / "best.pdparams"),
                                        ("lost", 1, tmp_path / "two" / "checkpoints" / "last.pdparams")):
        folder = tmp_path / case
        shutil.copytree(tmp_path / "two", folder)
        paddle.save({**two, "best_epoch": best_epoch}, str(folder / "checkpoints" / "last.pdparams"))
        shutil.copy2(best_file, folder / "checkpoints" / "best.pdparams")
        proc = train(tiny_archive, out, tmp_path / f"{case}_resumed", f"trainer.resume={folder}", *constant)
        if case == "lost":
            assert proc.returncode == 2 and "the best weights are lost" in proc.stderr, proc.stderr[-2000:]
            continue
        assert proc.returncode == 0, proc.stderr[-2000:]
        resumed = record(tmp_path / f"{case}_resumed")
        scored = load_checkpoint(tmp_path / f"{case}_resumed" / "checkpoints" / "best.pdparams")
        assert resumed["test_epoch"] == scored["epoch"] == resumed["best_epoch"]
