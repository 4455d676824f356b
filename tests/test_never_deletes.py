"""Nothing lost: every command removes or overwrites only what it created, and a refused command
leaves every file it found byte for byte (issue 23). Real CLI processes on real folders."""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import REPO, tiny_overrides


def cli(*args: str, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files aside) with its bytes, and every folder."""
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        if p.name != ".run.lock":
            out[p.relative_to(root).as_posix()] = p.read_bytes() if p.is_file() and not p.is_symlink() else b"<dir>"
    return out


def user_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("precious")
    (root / "sub" / "vdlrecords.1.log").write_text("a user's own VisualDL records")
    return root


def test_baseline_command_never_empties_a_folder_of_the_users(tmp_path):
    """`gru-exp baseline <folder>` used to delete everything in <folder> and exit 0."""
    folder = user_folder(tmp_path / "mine")
    before = tree(folder)
    proc = cli("gru_exp.baseline", str(folder))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'notes.txt'" in proc.stderr and "never removes" in proc.stderr
    assert tree(folder) == before
    only_records = tmp_path / "vdl_run"  # a VisualDL run of the user's: records only, no gru-exp mark
    only_records.mkdir()
    (only_records / "vdlrecords.2.log").write_text("theirs")
    assert cli("gru_exp.baseline", str(only_records)).returncode == 2
    assert (only_records / "vdlrecords.2.log").read_text() == "theirs"


def test_baseline_command_writes_a_new_folder_and_replaces_only_its_own(tmp_path):
    target = tmp_path / "base"
    for _ in range(2):  # new, then its own earlier baseline replaced
        proc = cli("gru_exp.baseline", str(target))
        assert proc.returncode == 0, proc.stderr
        names = sorted(p.name for p in target.iterdir())
        assert names[0] == "gru-exp-baseline.txt" and len(names) == 2 and names[1].startswith("vdlrecords")
    (target / "mine.txt").write_text("added by the user")
    assert cli("gru_exp.baseline", str(target)).returncode == 2
    assert (target / "mine.txt").read_text() == "added by the user"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".baseline-")]  # no staging left


def test_a_training_never_writes_its_baseline_over_other_files(tiny_archive, tmp_path):
    """paths.baseline_dir=<a folder of files> or =${paths.output_dir} (which used to wipe every
    output) is refused before anything is written."""
    out = tmp_path / "out"
    assert cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1")).returncode == 0
    outputs = tree(out)
    folder = user_folder(tmp_path / "mine")
    before = tree(folder)
    for given, named in [(str(folder), "'notes.txt'"), ("${paths.output_dir}", "would hold paths."),
                         ("${paths.root_dir}", "would hold paths.")]:
        proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1",
                                                      f"paths.baseline_dir={given}"))
        assert proc.returncode == 2 and named in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert tree(out) == outputs and tree(folder) == before


def test_a_dashboard_link_never_replaces_a_real_file(tmp_path, caplog):
    from gru_exp.config.paths import VIEW_DIR
    from gru_exp.train.vdl_view import link_into_view

    out, target = tmp_path / "out", tmp_path / "out" / "runs" / "r" / "vdl"
    target.mkdir(parents=True)
    (out / VIEW_DIR).mkdir()
    (out / VIEW_DIR / "my run").write_text("a file the user put there")
    link_into_view(out, target, "my run")
    assert (out / VIEW_DIR / "my run").read_text() == "a file the user put there"
    link_into_view(out, target, "other")
    assert (out / VIEW_DIR / "other").resolve() == target.resolve()


def test_a_run_into_a_folder_of_files_is_refused_before_hydra_writes(tiny_archive, tmp_path):
    folder = user_folder(tmp_path / "mine")
    before = tree(folder)
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", f"hydra.run.dir={folder}"))
    assert proc.returncode == 2 and "that this run did not make" in proc.stderr, proc.stderr
    assert tree(folder) == before


def test_a_refused_resume_in_place_leaves_the_run_byte_for_byte(tiny_archive, tmp_path):
    """trainer.resume=<run> hydra.run.dir=<the same run> with another configuration (or a missing
    archive) used to be refused only after Hydra had rewritten the run's .hydra/ files and appended
    to its run.log."""
    out, done = tmp_path / "out", tmp_path / "done"
    assert cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"hydra.run.dir={done}")).returncode == 0
    before = tree(done)
    for extra in (["model.hidden_size=8"], [f"data.path={tmp_path / 'missing.tar.gz'}"], []):
        proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"hydra.run.dir={done}", f"trainer.resume={done}",
                                                      *extra))  # [] : trainer.epochs=2 is what it already has
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert tree(done) == before, extra


def test_a_multirun_never_writes_into_a_folder_of_files_and_never_removes_an_empty_one(tiny_archive, tmp_path):
    """hydra.sweep.dir=<a folder with files> used to get Hydra's multirun.yaml written over its own;
    an empty one given by the user stays when every job is rejected (only multirun.yaml goes)."""
    folder = user_folder(tmp_path / "mine")
    (folder / "multirun.yaml").write_text("the user's own record")
    before = tree(folder)
    proc = cli("gru_exp.train", "-m", f"hydra.sweep.dir={folder}",
               *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.seed=1,2"))
    assert proc.returncode == 2 and "already holds" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert tree(folder) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("gru_exp.train", "-m", f"hydra.sweep.dir={empty}",
               *tiny_overrides(tiny_archive, tmp_path / "out", f"data.path={tmp_path / 'missing.tar.gz'}",
                               "trainer.seed=1,2"))
    assert proc.returncode == 2 and "missing.tar.gz" in proc.stderr, proc.stderr
    assert empty.is_dir() and not list(empty.iterdir())


def test_a_sweep_never_writes_over_a_folder_of_files_named_like_a_studys(sweep_env, tmp_path):
    """A folder outputs/sweeps/<study_name> without study.json that holds a user's summary.md,
    trials.csv or best.yaml: the sweep used to write over them and exit 0 (adversarial pass)."""
    name = sweep_env(name="paper", n_trials=1, epochs=1)
    folder = sweep_env.sweeps_dir / name
    folder.mkdir(parents=True)
    (folder / "summary.md").write_text("# My paper notes")
    (folder / "trials.csv").write_text("a,b\n")
    before = tree(folder)
    proc = cli("gru_exp.sweep", f"sweep={name}")
    assert proc.returncode == 2 and "holds summary.md, trials.csv but no study.json" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and tree(folder) == before
    (folder / "summary.md").unlink()
    (folder / "trial_0").mkdir()
    (folder / "trial_0" / "mine.txt").write_text("a user's")
    proc = cli("gru_exp.sweep", f"sweep={name}")
    assert proc.returncode == 2 and "would overwrite them" in proc.stderr, proc.stderr[-2000:]
    db = sweep_env.sweeps_dir / "optuna.db"  # refused before the study is made: none left in the storage
    assert not db.exists() or ("paper",) not in sqlite3.connect(db).execute("SELECT study_name FROM studies").fetchall()


def test_a_run_folder_on_a_file_or_a_dangling_link_is_one_paragraph_and_exit_2(tiny_archive, tmp_path):
    """hydra.run.dir / hydra.sweep.dir at a file, under a file or at a symlink to nothing used to end
    in Hydra's traceback, exit 1 (adversarial pass); nothing is written either way."""
    afile = tmp_path / "afile.txt"
    afile.write_text("mine")
    dangling = tmp_path / "dl"
    dangling.symlink_to(tmp_path / "nowhere")
    out = tmp_path / "out"
    for args, what in (([f"hydra.run.dir={afile}"], "is a file"), ([f"hydra.run.dir={afile / 'sub'}"], "is a file"),
                       ([f"hydra.run.dir={dangling}"], "symlink to nothing"),
                       (["-m", f"hydra.sweep.dir={dangling}", "trainer.seed=1"], "symlink to nothing")):
        proc = cli("gru_exp.train", *args, *tiny_overrides(tiny_archive, out))
        assert proc.returncode == 2 and what in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
    assert afile.read_text() == "mine" and dangling.is_symlink() and not (tmp_path / "nowhere").exists()
    assert not out.exists()


def test_two_multiruns_started_together_never_share_a_folder(tiny_archive, tmp_path):
    """The same `gru-exp train -m` started twice at once (two terminals, a script's loop): the
    multirun folder was named to the second, so both wrote into one, the second multirun.yaml over
    the first, and equal jobs into the same run folders. Each command now has its own folder
    (microseconds, as single runs have)."""
    import re

    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    args = [sys.executable, "-m", "gru_exp.train", "-m", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.seed=1,2")]
    procs = [subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    folders = sorted((tmp_path / "out" / "outputs" / "multirun").glob("*/*"))
    assert len(folders) == 2 and all(re.fullmatch(r"\d\d-\d\d-\d\d\.\d{6}_.+", f.name) for f in folders), folders
    for folder in folders:
        names = sorted(p.name for p in folder.iterdir())
        assert len(names) == 3 and names[0].startswith("0_") and names[0].endswith("trainer.seed-1"), names
        assert names[1].startswith("1_") and names[1].endswith("trainer.seed-2") and names[2] == "multirun.yaml", names
    printed = sorted(line for stdout, _ in outs for line in stdout.split())
    assert printed == sorted(str(run) for f in folders for run in f.glob("*trainer.seed-*"))  # each run once, its own


def test_a_refused_resume_in_place_of_a_damaged_or_running_run_leaves_it_byte_for_byte(tiny_archive, tmp_path):
    """Checkpoints are read, and the folder's lock tried, before Hydra writes: a truncated
    last.pdparams (or a run training there right now) used to be refused only after .hydra/ was
    rewritten and run.log appended."""
    out, done = tmp_path / "out", tmp_path / "done"
    assert cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"hydra.run.dir={done}")).returncode == 0
    last = done / "checkpoints" / "last.pdparams"
    last.write_bytes(last.read_bytes()[:500])
    before = tree(done)
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"hydra.run.dir={done}", f"trainer.resume={done}",
                                                  "trainer.epochs=3"))
    assert proc.returncode == 2 and "damaged or truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert tree(done) == before
    live = tmp_path / "live"
    holder = subprocess.Popen(  # a training holding its folder right now
        [sys.executable, "-c", "import sys; from gru_exp.train.rundir import claimed_run_dir\n"
         f"with claimed_run_dir({str(live)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([holder.stdout], [], [], 60)[0], "the holder did not claim the folder within 60 s"
        assert holder.stdout.readline().strip() == "held"
        (live / "metrics.json").write_text((done / "metrics.json").read_text())
        before = tree(live)
        proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"hydra.run.dir={live}",
                                                      f"trainer.resume={live}", "trainer.epochs=3"))
        assert proc.returncode == 2 and "in use by a training running there now" in proc.stderr, proc.stderr
        assert tree(live) == before
    finally:
        holder.communicate("", timeout=60)


def test_multirun_jobs_never_share_a_folder_and_hydra_mode_multirun_is_checked_too(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = cli("gru_exp.train", "-m", f"hydra.sweep.dir={tmp_path / 'g'}", "hydra.sweep.subdir=same",
               *tiny_overrides(tiny_archive, out, "trainer.seed=1,2"))
    assert proc.returncode == 2 and "Two jobs of this multirun would write into one folder" in proc.stderr
    assert not (tmp_path / "g").exists()
    folder = user_folder(tmp_path / "mine")
    before = tree(folder)
    proc = cli("gru_exp.train", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={folder}", *tiny_overrides(tiny_archive, out))
    assert proc.returncode == 2 and "already holds" in proc.stderr, proc.stderr
    assert tree(folder) == before


def test_a_rejected_run_keeps_the_empty_folder_it_was_given(tiny_archive, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", f"hydra.run.dir={empty}",
                                                  "model.hidden_size=100000000"))  # refused by the memory check
    assert proc.returncode == 2, proc.stderr
    assert empty.is_dir() and not list(empty.iterdir())


def test_the_baseline_command_replaces_only_its_own_files_whole(tmp_path):
    """A folder holding the mark and records plus a folder named like records, `gru-exp baseline .`
    from an empty folder or from inside the baseline: the mark or records used to be deleted
    before the write failed."""
    mixed = tmp_path / "mixed"
    assert cli("gru_exp.baseline", str(mixed)).returncode == 0
    (mixed / "vdlrecords_mine").mkdir()
    before = tree(mixed)
    proc = cli("gru_exp.baseline", str(mixed))
    assert proc.returncode == 2 and "'vdlrecords_mine'" in proc.stderr and tree(mixed) == before, proc.stderr
    for folder in (tmp_path / "empty", tmp_path / "own"):
        folder.mkdir()
        if folder.name == "own":
            assert cli("gru_exp.baseline", str(folder)).returncode == 0
        env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
        proc = subprocess.run([sys.executable, "-m", "gru_exp.baseline", "."], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        names = sorted(p.name for p in folder.iterdir())
        assert names[0] == "gru-exp-baseline.txt" and len(names) == 2 and names[1].startswith("vdlrecords.")
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".baseline-")]


def test_no_run_or_baseline_takes_the_place_of_another_in_the_dashboard(tiny_archive, tmp_path):
    """The baseline folder set to another run's records, or to the dashboard folder; a run named
    like the baseline; two runs with one folder name: each used to relabel or hide another."""
    out = tmp_path / "out"
    first = tmp_path / "p1" / "run"
    assert cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1", f"hydra.run.dir={first}")
               ).returncode == 0
    view = out / "outputs" / "vdl"
    records = tmp_path / "their_records"  # another run's VisualDL records, outside any run folder
    shutil.copytree(first / "vdl", records)
    for given, named in [(records, "did not write there as its baseline"),
                         ("${paths.output_dir}/vdl", "is in the dashboard folder"),
                         (first / "sub", "is inside the run folder")]:
        proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1", f"paths.baseline_dir={given}"))
        assert proc.returncode == 2 and named in proc.stderr, (given, proc.stderr)
    second = tmp_path / "p2" / "run"
    fake = tmp_path / "x" / "notebook baseline (published)"
    for folder in (second, fake):
        assert cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1", "trainer.seed=3",
                                                      f"hydra.run.dir='{folder}'")).returncode == 0
    links = {p.name: p.resolve() for p in view.iterdir()}
    assert "notebook baseline (published) (a run)" in links, links
    assert links["run"] == (first / "vdl").resolve() and links["run (2)"] == (second / "vdl").resolve()
    assert links["notebook baseline (published)"] == (out / "outputs" / "baseline" / "notebook").resolve()
    assert links["notebook baseline (published) (a run)"] == (fake / "vdl").resolve()


def test_outputs_and_runs_never_nest(tiny_archive, tmp_path):
    out, done = tmp_path / "out", tmp_path / "done"
    assert cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1", f"hydra.run.dir={done}")
               ).returncode == 0
    before = tree(done)
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"paths.output_dir={done}"))
    assert proc.returncode == 2 and "is inside the run folder" in proc.stderr and tree(done) == before, proc.stderr
    fresh = tmp_path / "fresh"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, fresh, "hydra.run.dir=${paths.output_dir}"))
    assert proc.returncode == 2 and "would hold paths." in proc.stderr and not fresh.exists(), proc.stderr


def test_a_refused_job_removes_only_the_folders_this_command_made(tmp_path):
    """A job refused while it runs (here: the archive is not a tar file) leaves no folder of its own,
    but an empty folder the user made before, on the way to its folder, stays (adversarial finding)."""
    home = tmp_path / "home"
    keep = home / "outputs" / "keepme"
    keep.mkdir(parents=True)
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(b"not a tar archive" * 100)
    proc = cli("gru_exp.train", f"data.path={damaged}", f"paths.root_dir={home}", f"hydra.run.dir={keep / 'x' / 'y'}")
    assert proc.returncode == 2 and "is not a readable IMDB archive" in proc.stderr, proc.stderr[-2000:]
    assert keep.is_dir() and not any(keep.iterdir())


def test_refused_jobs_outside_the_outputs_folder_leave_nothing_behind(tmp_path):
    """Jobs refused while they run (a damaged archive), with their folders outside the outputs
    folder: a new run folder goes, and a multirun folder that existed (empty) is left empty, so the
    same command with good data runs (second adversarial pass)."""
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(b"not a tar archive" * 100)
    new = tmp_path / "elsewhere" / "new1"
    proc = cli("gru_exp.train", f"data.path={damaged}", f"paths.root_dir={tmp_path / 'home'}", f"hydra.run.dir={new}")
    assert proc.returncode == 2 and not (tmp_path / "elsewhere").exists(), proc.stderr[-2000:]
    before = tmp_path / "preexist" / "sw"
    before.mkdir(parents=True)
    proc = cli("gru_exp.train", "-m", f"data.path={damaged}", f"paths.root_dir={tmp_path / 'home'}", "trainer.seed=1,2",
               f"hydra.sweep.dir={before}")
    assert proc.returncode == 2 and before.is_dir() and not any(before.iterdir()), proc.stderr[-2000:]


def _writer_that_lets_a_user_write(monkeypatch, module, folder: Path) -> None:
    """The user's write at the worst instant: into ``folder`` (gru-exp's earlier run there, already
    checked as gru-exp's) while the new run is being written beside it, before the swap."""
    real = module.LogWriter

    class Racing(real):
        def __exit__(self, *exc):
            (folder / "notes.txt").write_text("written meanwhile")
            return super().__exit__(*exc)

    monkeypatch.setattr(module, "LogWriter", Racing)


def test_a_file_added_while_the_baseline_is_rewritten_is_never_removed(tmp_path, monkeypatch):
    """The baseline was checked, then replaced: a file written into it in between went with the
    earlier run (adversarial pass). It is now checked again once moved aside, and put back."""
    from gru_exp.errors import GruExpError
    from gru_exp.train import vdl_view

    target = tmp_path / "base"
    vdl_view.write_baseline(target)
    earlier = tree(target)
    _writer_that_lets_a_user_write(monkeypatch, vdl_view, target)
    try:
        vdl_view.write_baseline(target)
        raise AssertionError("the baseline was replaced although a user's file appeared in it")
    except GruExpError as exc:
        assert "changed while it was written" in str(exc)
    assert tree(target) == {**earlier, "notes.txt": b"written meanwhile"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"], "a temporary folder is left"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_file_added_while_best_so_far_is_rewritten_is_never_removed(tmp_path, monkeypatch):
    import optuna

    from gru_exp.sweep import best_so_far

    study = optuna.create_study(study_name="s", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.set_metric_names(["eval_acc"])
    out, view = tmp_path / "s", tmp_path / "outputs"
    out.mkdir()
    best_so_far.write_best_so_far(study, out, view)
    folder = out / "best_so_far"
    earlier = tree(folder)
    assert (folder / best_so_far.MARK).is_file()
    study.add_trial(optuna.trial.create_trial(value=0.7))
    _writer_that_lets_a_user_write(monkeypatch, best_so_far, folder)
    best_so_far.write_best_so_far(study, out, view)
    assert tree(folder) == {**earlier, "notes.txt": b"written meanwhile"}
    assert sorted(p.name for p in out.iterdir()) == ["best_so_far"], "a temporary folder is left"


def test_a_dashboard_link_to_nothing_is_never_replaced(tmp_path):
    """A symlink in outputs/vdl whose target is gone used to be replaced by a run of that name: it
    may be a user's (adversarial pass), and nothing says gru-exp made it."""
    from gru_exp.config.paths import VIEW_DIR
    from gru_exp.train.vdl_view import link_into_view

    out, target = tmp_path / "out", tmp_path / "out" / "runs" / "r"
    target.mkdir(parents=True)
    (out / VIEW_DIR).mkdir()
    (out / VIEW_DIR / "my run").symlink_to("/mnt/not-mounted-yet/run")
    link_into_view(out, target, "my run")
    assert os.readlink(out / VIEW_DIR / "my run") == "/mnt/not-mounted-yet/run"
    assert (out / VIEW_DIR / "my run (2)").resolve() == target.resolve()


def test_a_sweep_never_adds_its_tables_to_a_users_sqlite_database(sweep_env, tmp_path):
    """An optuna.db of the user's in paths.sweeps_dir (or given as storage=) got Optuna's tables
    added to it (adversarial pass): now exit 2, naming its tables, the file byte for byte."""
    name = sweep_env(n_trials=1, epochs=1)
    for db, extra in ((sweep_env.sweeps_dir / "optuna.db", []),
                      (tmp_path / "app.sqlite", [f"storage=sqlite:///{tmp_path / 'app.sqlite'}"])):
        db.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
            con.execute("INSERT INTO invoices VALUES (1, 9.5)")
        con.close()
        before = db.read_bytes()
        proc = cli("gru_exp.sweep", f"sweep={name}", *extra)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "database of other tables (invoices)" in proc.stderr, proc.stderr[-2000:]
        assert db.read_bytes() == before
        assert not (sweep_env.sweeps_dir / name).exists()


def test_a_trial_never_writes_into_a_folder_of_files_it_did_not_make(sweep_env):
    """trial_N/ holding only a user's trial.log was taken over (the log appended to, the run written
    beside it); with any other file the trial was refused but trial.log still appended to."""
    name = sweep_env(n_trials=1, epochs=1)
    assert cli("gru_exp.sweep", f"sweep={name}").returncode == 0
    trial_1 = sweep_env.sweeps_dir / name / "trial_1"
    trial_1.mkdir()
    (trial_1 / "trial.log").write_text("my own log")
    record = json.loads((trial_1.parent / "trial_0" / "metrics.json").read_text())
    record.update(pid=1, wall_time_s=1.0)  # a run record of the user's, from elsewhere
    (trial_1 / "metrics.json").write_text(json.dumps(record))
    before = tree(trial_1)
    proc = cli("gru_exp.sweep", f"sweep={name}", "n_trials=2")
    assert "Trial 1's folder" in proc.stderr and "'metrics.json'" in proc.stderr, proc.stderr[-3000:]
    assert tree(trial_1) == before
    assert (sweep_env.sweeps_dir / name / "trial_2" / "metrics.json").is_file(), proc.stderr[-3000:]
    # ... and no report reads the user's files as trial 1's run (it fell back to trial_1/ by its name)
    from gru_exp.report.entries import entries_from_study
    from gru_exp.sweep.urls import readonly_storage

    study = optuna.load_study(study_name=name, storage=readonly_storage(f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}"))
    runs = {e.number: e.runs for e in entries_from_study(study, sweep_env.sweeps_dir / name)}
    assert len(runs[0]) == 1 and runs.get(1, []) == [], runs


def test_an_earlier_folder_goes_back_when_the_new_one_cannot_take_its_place(tmp_path):
    """The earlier run, moved aside, was removed although the new one never got in place (the
    rename failed, or a signal landed in between): the folder was then gone (review)."""
    from gru_exp.files import replace_own_folder

    target = tmp_path / "best_so_far"
    target.mkdir()
    (target / "vdlrecords.1.log").write_text("gru-exp's earlier curve")
    before = tree(tmp_path)
    assert not replace_own_folder(tmp_path / "missing", target, lambda folder: True)
    assert tree(tmp_path) == before  # back in place, nothing beside it


def test_a_study_database_being_made_is_not_a_users(tmp_path):
    """Optuna makes its tables one by one: a second sweep can see only `studies` in a new
    optuna.db, which is not a database of someone else's tables (review)."""
    from gru_exp.errors import ConfigError
    from gru_exp.sweep.urls import check_study_database

    db = tmp_path / "optuna.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE studies (study_id INTEGER)")
    con.close()
    check_study_database(f"sqlite:///{db}")
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE invoices (id INTEGER)")
    con.close()
    with pytest.raises(ConfigError, match="other tables"):
        check_study_database(f"sqlite:///{other}")


def test_predict_and_export_never_touch_a_file_with_their_old_temporary_names(tmp_path):
    """Their temporary names were `.<out>.<pid>.tmp` and `.<out>.export-<pid>.tmp`, removed when
    done: a user's file or folder of that name went with them (adversarial pass)."""
    from gru_exp.use.predict import write_new_file

    out = tmp_path / "preds.jsonl"
    theirs = tmp_path / f".preds.jsonl.{os.getpid()}.tmp"
    theirs.write_text("a user's file")
    folder = tmp_path / f".model.export-{os.getpid()}.tmp"
    folder.mkdir()
    (folder / "notes.txt").write_text("a user's folder")
    before = tree(tmp_path)
    write_new_file(out, ["{}"])
    assert out.read_text() == "{}\n"
    assert tree(tmp_path) == {**before, "preds.jsonl": b"{}\n"}


@pytest.mark.parametrize("tables", [
    ["CREATE TABLE alembic_version (version_num VARCHAR(32))", "CREATE TABLE users (id INTEGER)"],
    ["CREATE TABLE trials (id INTEGER, patient TEXT)"],  # an Optuna table's name, not its columns
])
def test_a_users_database_with_tables_named_like_optunas_is_still_refused(tmp_path, tables):
    """The first check let a database pass with any table of an Optuna name: Optuna then added its
    tables to it (adversarial pass 4)."""
    from gru_exp.errors import ConfigError
    from gru_exp.sweep.urls import check_study_database

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as con:
        for statement in tables:
            con.execute(statement)
    con.close()
    with pytest.raises(ConfigError, match="other tables"):
        check_study_database(f"sqlite:///{db}")


def test_a_journal_storage_never_appends_to_a_file_that_is_not_a_journal(sweep_env, tmp_path):
    """storage=journal:<a user's notes, key or JSONL data> appended Optuna's records to it, or
    ended in a traceback (adversarial pass 4). Now exit 2 before anything is written; a real
    journal of a study still resumes."""
    name = sweep_env(n_trials=1, epochs=1)
    for content in ("my-api-key-123", "first note\n", '{"text": "great", "label": "pos"}\n'):
        theirs = tmp_path / "theirs.txt"
        theirs.write_text(content)
        for command in (("gru_exp.sweep", f"sweep={name}"), ("gru_exp.report", f"study_name={name}")):
            proc = cli(*command, f"storage=journal:{theirs}")
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            assert "is not an Optuna journal file" in proc.stderr, proc.stderr[-2000:]
            assert theirs.read_text() == content
    journal = tmp_path / "study.journal"
    assert cli("gru_exp.sweep", f"sweep={name}", f"storage=journal:{journal}").returncode == 0
    proc = cli("gru_exp.sweep", f"sweep={name}", f"storage=journal:{journal}", "n_trials=2")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_baseline_is_linked_again_when_its_dashboard_link_leads_nowhere(tmp_path, caplog):
    """The baseline link of a study that was deleted (../sweeps/s1/baseline) kept every later
    baseline out of the dashboard, silently (adversarial pass 4)."""
    from gru_exp.config.paths import BASELINE_NAME, VIEW_DIR
    from gru_exp.train.vdl_view import ensure_baseline

    out = tmp_path / "outputs"
    (out / VIEW_DIR).mkdir(parents=True)
    stale = out / VIEW_DIR / BASELINE_NAME
    stale.symlink_to("../sweeps/s1/baseline")
    ensure_baseline(out / "baseline" / "notebook", out)
    assert os.readlink(stale) == "../sweeps/s1/baseline"  # never removed
    assert (out / VIEW_DIR / f"{BASELINE_NAME} (2)").resolve() == (out / "baseline" / "notebook").resolve()
    assert "holds no baseline run any more" in caplog.text


def test_a_link_made_for_an_earlier_run_in_the_same_folder_is_named_in_a_warning(tmp_path, caplog):
    """A study started over: `s1 trial 0: lr=0.00404` (the deleted trial's link) leads to the new
    trial_0 run, relabelling it in VisualDL (adversarial pass 4). Never removed; now said."""
    from gru_exp.config.paths import VIEW_DIR
    from gru_exp.train.vdl_view import link_into_view

    out, target = tmp_path / "outputs", tmp_path / "outputs" / "sweeps" / "s1" / "trial_0" / "vdl"
    target.mkdir(parents=True)
    (out / VIEW_DIR).mkdir()
    (out / VIEW_DIR / "s1 trial 0: lr=0.00404").symlink_to("../sweeps/s1/trial_0/vdl")
    link_into_view(out, target, "s1 trial 0: lr=0.00719")
    assert (out / VIEW_DIR / "s1 trial 0: lr=0.00719").resolve() == target.resolve()
    assert "'s1 trial 0: lr=0.00404'" in caplog.text and "made for an earlier run" in caplog.text


def test_a_trial_log_made_by_someone_else_after_the_check_is_never_appended_to(tmp_path):
    """The trial checked its folder, then opened trial.log for appending: a file made in between
    got the trial's lines (review). The log is now made by the trial or not opened at all."""
    from gru_exp.logs import file_log

    log = tmp_path / "trial_3" / "trial.log"
    log.parent.mkdir()
    log.write_text("theirs")
    with pytest.raises(FileExistsError):
        with file_log(log, new=True):
            pass
    assert log.read_text() == "theirs"
    with file_log(tmp_path / "trial_4" / "trial.log", new=True):
        logging.getLogger("gru_exp.test").warning("ours")
    assert "ours" in (tmp_path / "trial_4" / "trial.log").read_text()


def test_a_trial_never_runs_on_data_changed_while_its_sweep_runs(sweep_env, learnable_archive, tmp_path,
                                                                 monkeypatch):
    """A data file edited while a sweep ran: the next trials trained on the new data and were ranked
    with the first one's, exit 0; every resume was then refused (adversarial pass 5). Now the
    worker stops before the trial writes anything, the trial is queued again, and the study goes
    on once the data is back."""
    from conftest import LR_SPACE, SPACE, run_sweep
    from synthetic_imdb import make_imdb_archive

    from gru_exp.config.compose import compose_config
    from gru_exp.errors import DataChangedError
    from gru_exp.sweep import worker

    data = tmp_path / "data.tar.gz"
    shutil.copy(learnable_archive, data)
    name = sweep_env(n_trials=1, epochs=1)
    (tmp_path / "sweeps" / f"{name}.yaml").write_text(SPACE.format(
        name=name, archive=data, n_trials=1, epochs=1, sampler="random", params=LR_SPACE,
        pruner="{name: median, n_startup_trials: 1, n_warmup_steps: 2}"))
    assert run_sweep(f"sweep={name}") == 0
    original = data.read_bytes()
    opened = worker.open_study

    def replaced_once_started(sc):  # the study is open and checked; then the file is replaced (a download, an edit)
        found = opened(sc)
        make_imdb_archive(data, n_per_class=60, seed=2)
        return found

    monkeypatch.setattr(worker, "open_study", replaced_once_started)
    sc = compose_config([f"sweep={name}", "n_trials=2"], config_name="sweep")
    with pytest.raises(DataChangedError, match="was made on data of SHA-256"):
        worker.run_worker(sc, compose_config)
    monkeypatch.setattr(worker, "open_study", opened)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    states = [(t.state.name, t.user_attrs.get("error"), t.user_attrs.get("retried_from")) for t in study.trials]
    assert states == [("COMPLETE", None, None), ("FAIL", "stopped: the study's data changed", None),
                      ("WAITING", None, 1)], states
    assert not (sweep_env.sweeps_dir / name / "trial_1").exists()
    data.write_bytes(original)  # the study's data back: the same command continues it
    assert run_sweep(f"sweep={name}", "n_trials=2") == 0
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]


def test_a_project_folder_that_is_also_the_config_folder_is_snapshotted_without_its_outputs(learnable_archive,
                                                                                            tmp_path):
    """GRU_EXP_CONFIG_PATH = GRU_EXP_HOME = the project folder (as the README sets up): the sweep's
    config snapshot copied the outputs into themselves (RecursionError, exit 1) and a link to a
    parent folder looped (shutil.Error); each attempt left a .staging copy of the user's data
    (adversarial pass 5). Now only the YAML files Hydra reads are copied, each folder once."""
    from conftest import LR_SPACE, SPACE

    project = tmp_path / "proj"
    (project / "sweeps").mkdir(parents=True)
    (project / "sweeps" / "projs.yaml").write_text(SPACE.format(
        name="projs", archive=learnable_archive, n_trials=1, epochs=1, sampler="random", params=LR_SPACE,
        pruner="{name: median, n_startup_trials: 1, n_warmup_steps: 2}"))
    (project / "outputs" / "runs" / "old" / ".hydra").mkdir(parents=True)
    (project / "outputs" / "runs" / "old" / ".hydra" / "config.yaml").write_text("name: old\n")
    (project / "misc").mkdir()
    (project / "misc" / "up").symlink_to("..")
    (project / "data.csv").write_text("text,label\n")
    (project / "groups" / "a").mkdir(parents=True)
    (project / "groups" / "a" / "small.yaml").write_text("size: 1\n")
    (project / "alias").symlink_to("groups/a")  # a config group folder with a second name: both are read
    (project / "experiment" / ".drafts").mkdir(parents=True)  # experiment=.drafts/x is a config Hydra finds
    (project / "experiment" / ".drafts" / "x.yaml").write_text("# @package _global_\n")
    (project / ".git").mkdir()
    (project / ".git" / "config.yaml").write_text("not a config\n")
    env = {"GRU_EXP_HOME": str(project), "GRU_EXP_CONFIG_PATH": str(project)}
    proc = cli("gru_exp.sweep", "sweep=projs", env_extra=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (snapshot,) = (project / "outputs" / "cache" / "conf").iterdir()  # one snapshot, no .staging folder
    copied = sorted(p.relative_to(snapshot / "1").as_posix() for p in (snapshot / "1").rglob("*") if p.is_file())
    assert copied == ["alias/small.yaml", "experiment/.drafts/x.yaml", "groups/a/small.yaml", "sweeps/projs.yaml"], \
        copied


@pytest.mark.parametrize("signal_name", ["KILL", "TERM"])
def test_a_report_killed_while_it_draws_never_blocks_the_next_one(sweep_env, signal_name):
    """A report killed after its first figure left learning_curves.png without a report.md, and
    every later report into that folder was refused as if the figure were the user's (adversarial
    pass 5). The report now writes a report.md of its own naming its figures first."""
    name = sweep_env(n_trials=1, epochs=1)
    assert cli("gru_exp.sweep", f"sweep={name}").returncode == 0
    folder = sweep_env.sweeps_dir / name
    kill = "learning_curves.png:1" + ("" if signal_name == "KILL" else ":TERM")
    proc = cli("gru_exp.report", str(folder), env_extra={"GRU_EXP_TEST_KILL_AT": kill})
    assert proc.returncode != 0 and (folder / "learning_curves.png").is_file(), proc.stderr[-2000:]
    proc = cli("gru_exp.report", str(folder))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Being written" not in (folder / "report.md").read_text()


def test_a_worker_reading_imdb_through_paddles_download_is_never_stopped_as_if_the_data_changed(monkeypatch):
    """A study made where $GRU_EXP_IMDB names the archive, continued where it does not (paddle's
    download, checked by MD5): there is no file to hash, which is not a change (review)."""
    from gru_exp.config.compose import compose_config
    from gru_exp.sweep.identity import DATA_KEY, check_same_data

    monkeypatch.delenv("GRU_EXP_IMDB", raising=False)
    cfg = compose_config(["data.path=null"])
    check_same_data("s", {"training": {DATA_KEY: "0" * 64}, "searched": ["trainer.lr"]}, cfg)  # no error


def test_a_run_never_resumes_on_data_that_now_reads_as_other_classes(tiny_archive, tmp_path):
    """A run trained before the reading rules changed (labels '1_5', '2', '3' then in another class
    order) resumed on the same bytes: its weights were trained and scored under other labels, its
    metrics.json overwritten with a test accuracy of 0.01 (adversarial pass 6). Simulated here by
    the record of such a run: its classes in the order the earlier rules gave."""
    run = tmp_path / "run"
    args = tiny_overrides(tiny_archive, tmp_path / "out", "trainer.epochs=1", f"hydra.run.dir={run}")
    assert cli("gru_exp.train", *args).returncode == 0
    record = json.loads((run / "metrics.json").read_text())
    record["classes"] = list(reversed(record["classes"]))
    (run / "metrics.json").write_text(json.dumps(record))
    before = tree(run)
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.epochs=2",
                                                 f"trainer.resume={run}", f"hydra.run.dir={run}"))
    assert proc.returncode == 2 and "reads differently now" in proc.stderr and "Traceback" not in proc.stderr, \
        proc.stderr[-2000:]
    assert {k: v for k, v in tree(run).items() if k != "run.log"} == {k: v for k, v in before.items() if k != "run.log"}


def test_a_repeat_never_runs_on_data_changed_after_the_trials_first_seed(sweep_env, learnable_archive, tmp_path,
                                                                        monkeypatch):
    """With repeats: 2 the data was checked once per trial, so a change during the first seed's run
    left the second seed training on other data, averaged with the first, exit 0 (adversarial pass 6)."""
    from conftest import LR_SPACE, SPACE
    from synthetic_imdb import make_imdb_archive

    import gru_exp.train.run as training
    from gru_exp.config.compose import compose_config
    from gru_exp.errors import DataChangedError
    from gru_exp.sweep import worker

    data = tmp_path / "data.tar.gz"
    shutil.copy(learnable_archive, data)
    name = sweep_env(n_trials=1, epochs=1)
    (tmp_path / "sweeps" / f"{name}.yaml").write_text(SPACE.format(
        name=name, archive=data, n_trials=1, epochs=1, sampler="random", params=LR_SPACE,
        pruner="{name: median, n_startup_trials: 1, n_warmup_steps: 2}") + "repeats: 2\n")
    trained = training.run_training

    def then_replaced(*args, **kwargs):  # the first seed trains, then the file is replaced (a download, an edit)
        result = trained(*args, **kwargs)
        make_imdb_archive(data, n_per_class=60, seed=2)
        return result

    monkeypatch.setattr(training, "run_training", then_replaced)
    sc = compose_config([f"sweep={name}"], config_name="sweep")
    with pytest.raises(DataChangedError, match="was made on data of SHA-256"):
        worker.run_worker(sc, compose_config)
    trial_0 = sweep_env.sweeps_dir / name / "trial_0"
    assert sorted(p.name for p in trial_0.iterdir() if p.name.startswith("seed_")) == ["seed_42"]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    assert [(t.state.name, t.user_attrs.get("retried_from")) for t in study.trials] == [("FAIL", None), ("WAITING", 0)]
