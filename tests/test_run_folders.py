"""The run folder is claimed by one run: never shared, never overwritten, never deleted when it
was not ours, and runs go on where the filesystem has no file locks. Rows of docs/reliability.md."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, finish, start, tiny_overrides

from gru_exp.errors import GruExpError


def cli(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def contents(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def finished_run(tiny_cfg, tmp_path) -> Path:
    from gru_exp.train.run import run_training

    run_training(tiny_cfg("trainer.epochs=1", "logger.visualdl=false"), tmp_path / "done")
    return tmp_path / "done"


# -- the run folder (rows 136, 137, 198, 199) ------------------------------------------------------------------

def test_a_rejected_run_never_deletes_a_folder_it_did_not_make(tiny_archive, tmp_path):
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "notes.txt").write_text("keep")
    (precious / "sub" / "data.csv").write_text("1,2")
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", f"hydra.run.dir={precious}",
                                                 f"data.path={tmp_path / 'missing.tar.gz'}"))
    assert proc.returncode == 2 and "that this run did not make" in proc.stderr, proc.stderr
    assert {p.relative_to(precious).as_posix() for p in precious.rglob("*")} == {"notes.txt", "sub", "sub/data.csv"}


def test_a_refused_jobs_folder_goes_only_while_empty(tmp_path):
    from gru_exp.train.rundir import remove_new_empty

    existed = frozenset({tmp_path, *tmp_path.parents})  # what the checks saw before the command
    made = tmp_path / "out" / "runs" / "day" / "run"
    made.mkdir(parents=True)
    (tmp_path / "out" / "other.txt").write_text("x")
    remove_new_empty(made, existed)
    assert not (tmp_path / "out" / "runs").exists()  # the folder Hydra made, and its empty parents
    assert (tmp_path / "out" / "other.txt").is_file()
    kept = tmp_path / "kept"
    (kept / ".hydra").mkdir(parents=True)
    (kept / "notes.txt").write_text("x")
    remove_new_empty(kept, existed)
    assert sorted(p.name for p in kept.iterdir()) == [".hydra", "notes.txt"]
    mine = tmp_path / "mine"  # an empty folder of the user's, there before the command
    (mine / "a" / "b").mkdir(parents=True)
    remove_new_empty(mine / "a" / "b", existed | {mine})
    assert mine.is_dir() and not (mine / "a").exists()
    unseen = tmp_path / "elsewhere" / "x"
    unseen.mkdir(parents=True)
    remove_new_empty(unseen, frozenset())  # nothing known of what existed: nothing removed
    assert unseen.is_dir()


def test_a_finished_run_is_never_overwritten_by_a_new_run(finished_run, tiny_archive, tmp_path):
    before = {p: b for p, b in contents(finished_run).items() if ".hydra" not in p.parts and p.name != "run.log"}
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.epochs=1",
                                                 "trainer.seed=5", f"hydra.run.dir={finished_run}"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"The run folder {finished_run} already holds a run" in proc.stderr
    assert f"trainer.resume={finished_run}" in proc.stderr
    assert {p: contents(finished_run)[p] for p in before} == before


def test_a_run_folder_that_another_process_holds_is_refused(tiny_cfg, tmp_path):
    from gru_exp.train.run import run_training
    from gru_exp.train.rundir import RunDirError

    folder = tmp_path / "shared"
    holder = subprocess.Popen(  # another training that claimed the folder a moment ago and is still loading
        [sys.executable, "-c", "import sys; from gru_exp.train.rundir import claimed_run_dir\n"
         f"with claimed_run_dir({str(folder)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([holder.stdout], [], [], 60)[0], "the holder did not claim the folder within 60 s"
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=re.escape(f"The run folder {folder} is in use by another training "
                                                        f"right now (pid {holder.pid} on ")):
            run_training(tiny_cfg("trainer.epochs=1"), folder)
        assert not (folder / "metrics.json").exists()
    finally:
        holder.communicate("", timeout=60)
    assert issubclass(RunDirError, GruExpError)  # the entry points exit 2 with its message
    run_training(tiny_cfg("trainer.epochs=1"), folder)  # free again once the holder is gone


@pytest.mark.slow
def test_two_trainings_started_together_into_one_folder_never_share_a_record(tiny_archive, tmp_path):
    folder = tmp_path / "same"
    procs = [start([sys.executable, "-m", "gru_exp.train",
                    *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.epochs=3", f"trainer.seed={seed}",
                                    f"hydra.run.dir={folder}")], cwd=REPO)
             for seed in (1, 2)]
    results = [finish(p, timeout=600)[::2] for p in procs]  # (exit status, stderr), both drained all along
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(e for code, e in results if code == 2)
    assert "in use by another training" in err or "already holds a run" in err
    winner = procs[[code for code, _ in results].index(0)]
    record = json.loads((folder / "metrics.json").read_text())
    assert record["pid"] == winner.pid and record["epochs_done"] == 3 and record["status"] == "completed"


# -- a filesystem without file locks (review of #12) -----------------------------------------------------------

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_runs_go_on_unlocked_where_the_filesystem_has_no_file_locks(tmp_path, monkeypatch, caplog):
    """Some network and FUSE mounts answer flock with ENOLCK or EOPNOTSUPP. No such mount can be
    made here without privileges, so flock itself stands in: every run must still work there (with a
    warning), a rejected one must still be cleaned up, and no descriptor may leak. Any other error
    is the folder's fault: refused in one paragraph, again without a leaked descriptor."""
    import errno
    import fcntl

    from gru_exp.train import rundir

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    before = _open_fds()
    with caplog.at_level("WARNING"), rundir.claimed_run_dir(tmp_path / "run") as folder:
        (folder / "metrics.json").write_text("{}")
    assert _open_fds() == before
    assert "File locks are not supported" in caplog.text and "runs go on unlocked" in caplog.text

    def broken(fd, op):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(rundir.RunDirError, match="cannot be written \\(Input/output error\\)"):
        with rundir.claimed_run_dir(tmp_path / "other"):
            pass
    assert _open_fds() == before


def test_a_run_killed_before_its_first_epoch_is_refused_both_ways_without_sending_the_user_in_circles(
        tiny_archive, tmp_path):
    """Killed before its first epoch ended, a run folder was refused as a new run's folder ("continue
    that run with trainer.resume=D") and as trainer.resume=D ("not a run folder with a finished
    epoch"): each refusal sent the user to the other (adversarial pass 5)."""
    run = tmp_path / "killed"
    args = tiny_overrides(tiny_archive, tmp_path / "out", f"hydra.run.dir={run}")
    proc = cli("gru_exp.train", *args, env={"GRU_EXP_TEST_KILL_AT": "metrics.json:1"})
    assert proc.returncode != 0 and (run / "metrics.json").is_file(), proc.stderr[-2000:]
    again = cli("gru_exp.train", *args)
    assert again.returncode == 2 and "nothing to continue from" in again.stderr, again.stderr[-2000:]
    assert "trainer.resume" not in again.stderr
    resumed = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", f"trainer.resume={run}"))
    assert resumed.returncode == 2 and "stopped before its first epoch finished" in resumed.stderr, resumed.stderr
    finished = tmp_path / "finished"
    assert cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.epochs=1",
                                                 f"hydra.run.dir={finished}")).returncode == 0
    report = cli("gru_exp.report", str(run), str(finished), "--out", str(tmp_path / "report"),
                 env={"GRU_EXP_HOME": str(tmp_path / "home")})
    assert report.returncode == 0 and f"without a finished epoch left out: {run}" in report.stderr, report.stderr
