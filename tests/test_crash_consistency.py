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
import time
from pathlib import Path

import pytest
from conftest import REPO, finish, start, tiny_overrides

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


def kills_resume_or_refuse(archive: Path, tmp_path: Path, points: list[tuple[str, int]], *extra: str,
                           how: str = "") -> dict[str, int]:
    """Kill a training at each point (SIGKILL, or ``how`` = ":INT"/":TERM"), resume it into a new
    folder with the same command, and check the outcome against an uninterrupted run."""
    out = tmp_path / "out"
    full = train(archive, out, tmp_path / "full", *extra)
    assert full.returncode == 0, full.stderr[-2000:]
    expected = outcome(record(tmp_path / "full"))
    assert expected[0] == "completed" and expected[2] in (expected[1], len(expected[4]["epoch"]))
    seen = {"killed": 0, "resumed": 0, "refused": 0}
    for point, n in points:
        name = f"{point}_{n}{how.replace(':', '_')}"
        killed = tmp_path / f"killed_{name}"
        proc = train(archive, out, killed, *extra, kill_at=f"{point}:{n}{how}")
        if proc.returncode == 0:  # this run never passed the point n times (e.g. fewer new best epochs)
            assert outcome(record(killed)) == expected
            continue
        signum = {"": signal.SIGKILL, ":INT": None, ":TERM": None}[how]
        assert proc.returncode == (-signum if signum else 130), (point, n, proc.stderr[-2000:])
        seen["killed"] += 1
        if how and (killed / "metrics.json").is_file():  # a signal Python handles: the record is never ahead
            rec, kept = record(killed), killed / "checkpoints" / "last.pdparams"
            assert rec["status"] in ("interrupted", "completed"), rec["status"]
            if rec["epochs_done"]:
                import paddle  # noqa: F401

                from gru_exp.train.checkpoints import load_checkpoint

                assert load_checkpoint(kept)["epoch"] == rec["epochs_done"], (point, n)
        resumed = train(archive, out, tmp_path / f"resumed_{name}", *extra, f"trainer.resume={killed}")
        where = f"killed at {point} pass {n}{how}: {resumed.stderr[-1500:]}"
        if resumed.returncode == 2:
            seen["refused"] += 1
            assert "Traceback" not in resumed.stderr, where
            if (killed / "metrics.json").is_file() and record(killed)["status"] == "completed":
                assert outcome(record(killed)) == expected, where  # killed after its last word: it is whole
                assert "already has" in resumed.stderr, where
            else:  # killed before its first epoch was committed: nothing to continue, and it says so
                assert "is not a run folder with a finished epoch" in resumed.stderr, where
                assert not (killed / "checkpoints" / "last.pdparams").is_file(), where
            continue
        assert resumed.returncode == 0, where
        seen["resumed"] += 1
        assert outcome(record(tmp_path / f"resumed_{name}")) == expected, where
        assert (tmp_path / f"resumed_{name}" / "checkpoints" / "last.pdparams").is_file()  # self-contained
    return seen


@pytest.mark.slow
def test_a_kill_at_any_point_resumes_to_the_uninterrupted_result_or_is_refused(tiny_archive, tmp_path):
    seen = kills_resume_or_refuse(tiny_archive, tmp_path, POINTS)
    assert seen["killed"] >= 16 and seen["resumed"] >= 10 and seen["refused"] >= 2, seen


@pytest.mark.slow
@pytest.mark.parametrize("how", [":INT", ":TERM"])
def test_ctrl_c_or_sigterm_while_a_checkpoint_is_written_leaves_a_resumable_run(tiny_archive, tmp_path, how):
    """A signal Python handles, landing while last.pdparams or metrics.json is written: the record
    used to say the epoch was done while last.pdparams still held the one before, and the resume
    the command printed was refused ("do not belong together")."""
    points = [(p, n) for p in ("last.pdparams:tmp", "best.pdparams:tmp") for n in (2, 3)] + [("metrics.json:tmp", 5)]
    seen = kills_resume_or_refuse(tiny_archive, tmp_path, points, how=how)
    assert seen["killed"] >= 3 and seen["resumed"] >= 3, seen


@pytest.mark.slow
def test_an_early_stopped_or_last_epoch_run_killed_before_its_record_resumes_to_the_same_score(tiny_archive, tmp_path):
    """Early stopping (a learning rate too small to change anything: the run stops after epoch 2 on
    patience 1) killed before its final record used to train on past the stop when resumed and
    score another epoch; a trainer.test_epoch=last run resumed into a new folder with no epoch
    left had no last.pdparams to score."""
    stopping = ("trainer.lr=1e-12", "trainer.patience=1", "trainer.lr_schedule=constant", "trainer.warmup=0")
    seen = kills_resume_or_refuse(tiny_archive, tmp_path / "stop", [("metrics.json:tmp", 4), ("metrics.json", 4),
                                                                     ("metrics.json:tmp", 3)], *stopping)
    assert seen["resumed"] >= 2, seen
    assert record(tmp_path / "stop" / "full")["epochs_done"] == 2  # it did stop early
    again = train(tiny_archive, tmp_path / "out", tmp_path / "again", *stopping,
                  f"trainer.resume={tmp_path / 'stop' / 'full'}")  # the completed, early-stopped run itself
    assert again.returncode == 0 and outcome(record(tmp_path / "again")) == outcome(record(tmp_path / "stop" / "full"))
    seen = kills_resume_or_refuse(tiny_archive, tmp_path / "last", [("metrics.json:tmp", 5)], "trainer.test_epoch=last")
    assert seen["resumed"] == 1, seen


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


def test_ctrl_c_reaches_a_training_a_script_started_in_the_background(tmp_path):
    """A non-interactive shell starts `cmd &` with SIGINT ignored; the training used to inherit that
    and run on through Ctrl-C (kill -INT). It now stops as interrupted, resumable."""
    from synthetic_imdb import make_imdb_archive

    archive = make_imdb_archive(tmp_path / "med.tar.gz", n_per_class=300, seed=0)
    run_dir = tmp_path / "bg"
    args = " ".join(f"'{a}'" for a in tiny_overrides(archive, tmp_path / "out", "trainer.epochs=400",
                                                     "logger.baseline=false", f"hydra.run.dir={run_dir}"))
    script = f"'{sys.executable}' -m gru_exp.train {args} 2>/dev/null & echo $!; wait $!; echo rc=$?"
    proc = start(["bash", "-c", script], cwd=REPO)
    pid = int(proc.out.wait_for(lambda line: line.strip().isdigit(), timeout=60))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run_dir / "checkpoints" / "last.pdparams").is_file():
        time.sleep(0.1)
    os.kill(pid, signal.SIGINT)
    _, out, _ = finish(proc, timeout=120)
    assert "rc=130" in out, out
    assert record(run_dir)["status"] == "interrupted"


def test_sigterm_leaves_an_interrupted_resumable_run(tiny_archive, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    args = tiny_overrides(tiny_archive, out, "trainer.epochs=400", "model.hidden_size=32")
    proc = start([sys.executable, "-m", "gru_exp.train", *args], cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while True:  # wait for a finished epoch
        records = list(out.rglob("metrics.json"))
        if records and json.loads(records[0].read_text() or "{}").get("epochs_done", 0) >= 1:
            break
        assert time.monotonic() < deadline and proc.poll() is None, proc.err.text()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=60)
    assert code == 130, err
    record = json.loads(records[0].read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] >= 1
    assert "trainer.resume=" in err and "Traceback" not in err
