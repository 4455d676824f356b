"""The command line as users run it, through subprocesses: errors, exit codes, multirun."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, finish, start, tiny_overrides


def run_cli(*args: str, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    env.pop("GRU_EXP_IMDB", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob(".hydra"))


@pytest.mark.parametrize("override,expected", [
    ("model.dropout=1.5", "model.dropout=1.5 must be in [0, 1)"),
    ("model.direction=up", "model.direction='up' must be one of forward, bidirectional"),
    ("trainer.epochs=0", "trainer.epochs=0 must be a positive integer"),
])
def test_bad_value_exits_2_with_one_paragraph_and_no_run_folder(tiny_archive, tmp_path, override, expected):
    out = tmp_path / "out"
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out, override))
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert run_folders(out) == []


def test_missing_archive_exits_2_and_says_how_to_set_it(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"data.path={tmp_path}/missing.tar.gz"))
    assert proc.returncode == 2
    assert "missing.tar.gz" in proc.stderr and "GRU_EXP_IMDB" in proc.stderr and "Traceback" not in proc.stderr
    assert run_folders(out) == []


def test_typo_key_fails_before_any_work(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "model.hiden_size=8"))
    assert proc.returncode != 0 and "hiden_size" in proc.stderr
    assert not out.exists()


def test_single_run_from_the_command_line(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1"))
    assert proc.returncode == 0, proc.stderr
    (run,) = run_folders(out)
    assert run.parent.parent == out / "outputs" / "runs" and "trainer.epochs-1" in run.name
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert (run / "run.log").read_text().count("epoch 1/1") >= 1 and (run / ".hydra" / "config.yaml").is_file()
    # the folder as printed pastes after trainer.resume= unquoted (no = , [ ] or spaces in it)
    printed = re.search(r"Run folder: (\S+)", proc.stdout + proc.stderr).group(1)
    assert printed == str(run)
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=2", f"trainer.resume={printed}"))
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads((max(run_folders(out), key=lambda p: p.stat().st_mtime) / "metrics.json").read_text())
    assert resumed["series"]["epoch"] == [1, 2] and resumed["resumed_from"] == str(run)


# A sweep's "reproduce" command: a dozen overrides with long float values (over 255 characters).
LONG = ["model.dropout=0.39241988019675755", "trainer.lr=0.0029328358227035407", "model.layer_dropout=0.4242336039700223",
        "model.num_layers=2", "model.direction=bidirectional", "data.seq_len=40", "model.use_lengths=true",
        "data.bucket_size=4", "trainer.grad_clip=0.5000000000000001", "trainer.eval_batch_size=32",
        "trainer.epochs=1", "trainer.batch_size=16"]


@pytest.mark.parametrize("mode", ["run", "multirun"])
def test_a_long_override_list_still_makes_valid_unique_folders(tiny_archive, tmp_path, mode):
    out = tmp_path / "out"
    flag, seeds = (["-m"], "trainer.seed=1,2") if mode == "multirun" else ([], "trainer.seed=1")
    proc = run_cli("gru_exp.train", *flag, *tiny_overrides(tiny_archive, out, *LONG, seeds))
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = run_folders(out)
    assert len(runs) == (2 if mode == "multirun" else 1)
    for run in runs:
        assert len(run.name.encode()) <= 255 and "data.bucket_size-4+data.cutoff-2" in run.name and "~" not in run.name
        assert re.search(r"--[0-9a-f]{8}$", run.name)
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert len({run.name for run in runs}) == len(runs)


def test_multirun_grid_is_checked_whole_before_any_job_then_each_job_gets_its_record(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("gru_exp.train", "-m", *tiny_overrides(tiny_archive, out, "trainer.epochs=1",
                                                           "model.hidden_size=8,16", "model.dropout=0.2,1.5"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("model.dropout=1.5 must be in [0, 1)") == 1  # one paragraph, each problem once
    assert not out.exists()  # not even a multirun folder with only multirun.yaml
    proc = run_cli("gru_exp.train", "-m", *tiny_overrides(tiny_archive, out, "trainer.epochs=1",
                                                           "model.hidden_size=8,16", "model.dropout=0.2"))
    assert proc.returncode == 0, proc.stderr
    runs = run_folders(out)
    assert len(runs) == 2 and all("model.dropout-0.2" in r.name for r in runs)
    for run in runs:
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
        assert len(list((run / "vdl").glob("vdlrecords*"))) == 1


def test_baseline_command_writes_the_reference_run(tmp_path):
    proc = run_cli("gru_exp.baseline", str(tmp_path / "bl"))
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "bl").glob("vdlrecords*"))) == 1


def test_a_multirun_whose_every_job_fails_exits_2_and_leaves_no_folder(tmp_path):
    """Failures that only show when a job runs (here: the archive is not a tar file) still make the
    exit status 2, and a grid of refused jobs leaves no folder holding only multirun.yaml; a missing
    archive is refused before any job starts."""
    out = tmp_path / "out"
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(b"not a tar archive" * 100)
    proc = run_cli("gru_exp.train", "-m", f"data.path={damaged}", f"paths.root_dir={out}", "trainer.seed=1,2")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("is not a readable IMDB archive") >= 2  # each job ran and failed
    assert not list(out.rglob("multirun.yaml")) and not list(out.rglob("*/multirun/*"))
    proc = run_cli("gru_exp.train", "-m", f"data.path={tmp_path / 'missing.tar.gz'}", f"paths.root_dir={out}",
                   "trainer.seed=1,2")
    assert proc.returncode == 2 and proc.stderr.count("no such file") == 1, proc.stderr  # before any job
    assert not list(out.rglob("multirun.yaml")) and not list(out.rglob("*/multirun/*"))


def test_the_gru_exp_command_dispatches_and_reports_its_version():
    from gru_exp.commands import version_text

    for args, code, text in ((["--version"], 0, "gru-exp 0."), (["--help"], 0, "Commands:"), ([], 2, "Commands:"),
                             (["trian"], 2, "unknown command 'trian'"), (["report", "--top", "-1", "x"], 2, "positive")):
        proc = run_cli("gru_exp", *args)
        assert proc.returncode == code and text in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
    assert version_text().split()[1] in run_cli("gru_exp.train", "--version").stdout
    assert "Experiments: cpu_quick" in run_cli("gru_exp.train", "--help").stdout
    assert "imdb_pool: model.pooling" in run_cli("gru_exp.sweep", "--help").stdout
    cfg = run_cli("gru_exp.sweep", "sweep=cpu_quick", "--cfg", "job")
    assert cfg.returncode == 0 and "study_name: cpu_quick" in cfg.stdout


@pytest.mark.parametrize("args,env,expected", [
    (["paths.output_dir=/dev/null"], {}, "paths.output_dir='/dev/null' is a file, not a folder"),
    ([], {"GRU_EXP_HOME": "/dev/null"}, "paths.root_dir='/dev/null' is a file, not a folder"),
    ([], {"GRU_EXP_HOME": "/tmp/x-${oc.env:USER,zz}"}, "holds an unresolved '${...}'"),
    (["--config-name=config", "-m", "model.hidden_size=16,0"], {}, "--config-name"),
    (["--config-dir=/nonexistent-dir"], {}, "--config-dir '/nonexistent-dir' is not a folder"),
    (["experiment=mine"], {"GRU_EXP_CONFIG_PATH": "/nonexistent-dir"}, "GRU_EXP_CONFIG_PATH names '/nonexistent-dir'"),
])
def test_unusable_paths_and_flags_are_one_paragraph_and_exit_2(tmp_path, args, env, expected):
    proc = run_cli("gru_exp.train", *args, env_extra={"GRU_EXP_HOME": str(tmp_path / "home"), **env})
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "home").exists()


def test_user_config_folders_extend_the_shipped_ones_and_never_shadow_them(tiny_archive, tmp_path):
    mine = tmp_path / "myconf"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "small.yaml").write_text("# @package _global_\nname: small\nmodel: {dropout: 0.125}\n")
    (mine / "sweeps").mkdir()
    (mine / "sweeps" / "broken.yaml").write_text("params: [unclosed\n")  # another file's typo breaks nothing
    out = tmp_path / "out"
    env = {"GRU_EXP_CONFIG_PATH": str(mine)}
    proc = run_cli("gru_exp.train", "experiment=small", *tiny_overrides(tiny_archive, out), env_extra=env)
    assert proc.returncode == 0, proc.stderr
    (record,) = out.rglob("metrics.json")
    assert '"dropout": 0.125' in record.read_text() and "_small" in record.parent.name
    # --config-dir (Hydra's flag) works the same way, for train
    proc = run_cli("gru_exp.train", "--config-dir", str(mine), "experiment=small", "--cfg", "job")
    assert proc.returncode == 0 and "dropout: 0.125" in proc.stdout, proc.stderr
    (mine / "experiment" / "cpu_quick.yaml").write_text("# @package _global_\nname: mine\n")
    proc = run_cli("gru_exp.train", "experiment=cpu_quick", *tiny_overrides(tiny_archive, out), env_extra=env)
    assert proc.returncode == 2 and "has the name of a shipped config (experiment/cpu_quick.yaml)" in proc.stderr


def test_sigterm_while_paddle_loads_is_a_clean_interruption(tiny_archive, tmp_path):
    """SIGTERM right after the run folder is made, while paddle is still being imported (seconds):
    status 130, gru-exp's message, no paddle C++ dump, and no half-made run folder left."""
    out = tmp_path / "out"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = start([sys.executable, "-m", "gru_exp.train", *tiny_overrides(tiny_archive, out)], cwd=REPO, env=env)
    proc.err.wait_for("Outputs go to", timeout=120)
    proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = finish(proc, timeout=120)
    assert code == 130, stderr
    assert "interrupted before the first epoch" in stderr and "trainer.resume=" not in stderr and "FatalError" not in stdout + stderr and "Traceback" not in stderr
    assert not list(out.rglob("run.log"))


def test_a_terminal_gets_an_in_place_progress_bar_and_a_pipe_does_not(tiny_archive, tmp_path):
    """On a terminal (a real pseudo-terminal here) the epoch's bar redraws in place with \\r; the run
    through a pipe (the other tests, sweep workers, files) has only the periodic log lines."""
    import pty

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "gru_exp.train", *tiny_overrides(tiny_archive, out)]
    import fcntl
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "HYDRA_FULL_ERROR": "0"}, stdin=secondary,
                            stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 300
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([primary], [], [], left)[0]:
            proc.kill()
            raise AssertionError("the run did not end within 300 s: " + b"".join(chunks).decode(errors="replace")[-2000:])
        try:
            data = os.read(primary, 65536)
        except OSError:  # the terminal closed: the run ended
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    seen = b"".join(chunks).decode(errors="replace")
    assert re.search(r"epoch 2/2: +\d+%.*step", seen) and "\r" in seen, seen[-2000:]
    piped = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "piped"))
    assert piped.returncode == 0 and "step/s]" not in piped.stderr
    assert not re.search(r"epoch \d/2: +\d+%", piped.stderr)


def test_a_long_name_with_many_overrides_still_makes_a_valid_run_folder(tiny_archive, tmp_path):
    """A 100-character run name plus eight overrides went past the 255-byte file-name limit (a
    traceback from Hydra making the folder); the part after the time is now cut with a hash."""
    out = tmp_path / "out"
    extra = ["name=" + "x" * 100, "trainer.lr=0.00123", "trainer.seed=7", "model.dropout=0.25", "data.seq_len=57",
             "trainer.eval_batch_size=32", "model.num_layers=1", "model.direction=forward", "trainer.epochs=1"]
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out)[:-4], "trainer.batch_size=16", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = run_folders(out)
    assert len(folder.name.encode()) <= 255 and folder.name.split("_", 1)[1].startswith("x" * 100)
    assert re.search(r"--[0-9a-f]{8}$", folder.name) and "~" not in folder.name and (folder / "metrics.json").is_file()
    resumed = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out)[:-4], "trainer.batch_size=16", *extra[:-1],
                      "trainer.epochs=2", f"trainer.resume={folder}")  # the printed folder, unquoted
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_a_new_run_into_a_finished_runs_folder_is_refused_before_hydra_touches_it(tiny_archive, tmp_path):
    """hydra.run.dir=<a finished run>: refused (exit 2) before Hydra writes its .hydra/ and run.log
    there, so the finished run's config and log stay byte for byte; continuing it is allowed."""
    out = tmp_path / "out"
    assert run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out)).returncode == 0
    (done,) = run_folders(out)
    before = {p: p.read_bytes() for p in done.rglob("*") if p.is_file() and p.suffix != ".lock"}
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out), "model.hidden_size=8",
                   f"hydra.run.dir='{done}'")
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in done.rglob("*") if p.is_file() and p.suffix != ".lock"} == before
    resumed = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out), "trainer.epochs=3",
                      f"trainer.resume='{done}'", f"hydra.run.dir='{done}'")
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_a_finished_runs_folder_is_protected_wherever_hydra_gets_its_name(tiny_archive, tmp_path):
    """The folder a job will write to is resolved as Hydra resolves it before Hydra touches it: from
    an experiment file, from an interpolation (also of Hydra's own job name), and for each job of a
    multirun with a fixed hydra.sweep.dir, jobs and values as Hydra's sweeper makes them (a key given
    twice counts once; 1e-3 names the folder as 0.001). A finished run there is refused (exit 2)
    and stays byte for byte; a bad hydra.* override is one paragraph; a folder named by what only
    Hydra's launcher knows (${hydra.job.id}) is left to the run's own claim."""
    out = tmp_path / "out"

    def files(folder: Path) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock"}

    pinned = "hydra.run.dir=${paths.output_dir}/pinned_${hydra.job.name}"
    assert run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out), pinned).returncode == 0
    (done,) = (out / "outputs").glob("pinned_*")
    before = files(done)
    assert (done / "metrics.json").is_file()
    mine = tmp_path / "myconf"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "pinned.yaml").write_text(f"# @package _global_\nhydra:\n  run:\n    dir: {done}\n")
    for extra, env in [(["experiment=pinned"], {"GRU_EXP_CONFIG_PATH": str(mine)}),
                       ([pinned, "model.hidden_size=8"], None)]:
        proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out), *extra, env_extra=env)
        assert proc.returncode == 2 and f"The run folder {done} already holds a run" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and files(done) == before
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out), "hydra/launcher=nope")
    assert proc.returncode == 2 and "hydra/launcher" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    grid = ["-m", f"hydra.sweep.dir={tmp_path / 'grid'}", *tiny_overrides(tiny_archive, out), "trainer.lr=1e-3",
            "trainer.seed=1,2", "model.hidden_size=8,12", "model.hidden_size=16"]
    assert run_cli("gru_exp.train", *grid).returncode == 0
    jobs = sorted(p.parent for p in (tmp_path / "grid").rglob("metrics.json"))
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1"] and "trainer.lr-0.001" in jobs[0].name
    before = {job: files(job) for job in jobs}
    proc = run_cli("gru_exp.train", *grid)
    assert proc.returncode == 2 and f"hydra.sweep.dir='{tmp_path / 'grid'}' already holds" in proc.stderr, proc.stderr
    assert {job: files(job) for job in jobs} == before
    by_id = run_cli("gru_exp.train", "-m", f"hydra.sweep.dir={tmp_path / 'grid2'}",
                    "hydra.sweep.subdir=job_${hydra.job.id}", *grid[2:])
    assert by_id.returncode == 0, by_id.stderr


def test_a_run_into_a_folder_an_earlier_command_used_is_refused_and_leaves_it_byte_for_byte(tiny_archive, tmp_path):
    """hydra.run.dir=<a folder an earlier command used> (its .hydra/ and run.log, no result): a run
    writes only into a new or empty folder, so it is refused (exit 2) before Hydra rewrites .hydra/
    or appends to the log. The folder is given with a ``..`` in it, which Hydra removes from the
    path and the up-front check must too."""
    folder = tmp_path / "used"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- name=earlier\n")
    (folder / "run.log").write_text("the earlier command's log\n")
    given = tmp_path / "elsewhere" / ".." / "used"
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", f"hydra.run.dir={given}"))
    assert proc.returncode == 2 and "that this run did not make" in proc.stderr and "Traceback" not in proc.stderr
    assert (folder / ".hydra" / "overrides.yaml").read_text() == "- name=earlier\n"
    assert (folder / "run.log").read_text() == "the earlier command's log\n"
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "run.log"]

def test_stdout_carries_each_run_folder_and_gru_exp_has_a_dashboard_command(tiny_archive, tmp_path):
    """Scripts capture a run's folder from stdout (one line per run; logs stay on stderr); `gru-exp
    dashboard` is a command of its own (issue 27)."""
    out = tmp_path / "out"
    proc = run_cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = proc.stdout.splitlines()
    assert (Path(folder) / "metrics.json").is_file() and Path(folder).is_absolute()
    grid = run_cli("gru_exp.train", "-m", *tiny_overrides(tiny_archive, out, "trainer.epochs=1", "trainer.seed=1,2"))
    assert grid.returncode == 0 and len(grid.stdout.splitlines()) == 2, grid.stdout
    assert all((Path(f) / "metrics.json").is_file() for f in grid.stdout.splitlines())
    listed = run_cli("gru_exp", "--help")
    assert "dashboard" in listed.stdout
    bad = run_cli("gru_exp", "dashboard", "--port", "70000")
    assert bad.returncode == 2 and "70000" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
