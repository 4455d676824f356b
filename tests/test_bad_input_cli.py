"""Bad input is refused before any work: hostile or over-long names, numbers out of range, a base
training rejects, configurations that cannot fit in memory, damaged archives, unusable study
databases and report inputs of every kind; each one paragraph and exit 2 (or the honest non-zero
status), with nothing lost, overwritten or written outside. Rows of docs/reliability.md."""

from __future__ import annotations

import json
import re
import sqlite3

import optuna
import pytest
from conftest import REPO, cli, files_under, tiny_overrides
from conftest import run_sweep as sweep

from gru_exp.errors import ConfigError


# -- names -> paths -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../../x", "/abs/dir", "", " ", "a/b", ".."])
def test_hostile_study_names_are_refused_before_anything_is_written(sweep_env, capsys, bad):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", f"study_name='{bad}'") == 2
    err = capsys.readouterr().err
    assert "study_name=" in err and "must be 1-100 characters" in err and "Traceback" not in err
    assert not sweep_env.sweeps_dir.exists()


def test_a_300_character_study_name_is_refused_and_leaves_no_study(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", f"study_name={'s' * 300}") == 2
    assert "must be 1-100 characters" in capsys.readouterr().err
    assert not sweep_env.sweeps_dir.exists()


def test_a_hostile_run_name_is_refused_with_no_folder(tiny_archive, tmp_path):
    out = tmp_path / "out"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "name=../../escape"))
    assert proc.returncode == 2 and "name='../../escape'" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "escape").exists()


def test_a_second_study_of_the_same_name_never_writes_into_the_first(sweep_env, capsys, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}") == 0
    folder = sweep_env.sweeps_dir / name
    before = {p: p.read_bytes() for p in files_under(folder)}
    # the same name in another storage (a journal file) ...
    assert sweep(f"sweep={name}", f"storage=journal:{tmp_path / 'other.log'}") == 2
    assert "holds the trials of another study" in capsys.readouterr().err
    # ... and the same SQLite file emptied (the study silently recreated)
    db = sweep_env.sweeps_dir / "optuna.db"
    db.unlink()
    assert sweep(f"sweep={name}") == 2
    assert "holds the trials of another study" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in files_under(folder)} == before  # nothing overwritten


def test_unicode_spaces_commas_and_brackets_in_home_and_study_name_work_end_to_end(sweep_env, tmp_path, monkeypatch):
    home = tmp_path / "hôme, [x] y"
    monkeypatch.setenv("GRU_EXP_HOME", str(home))
    name = sweep_env(n_trials=2, epochs=1)
    assert sweep(f"sweep={name}", "study_name='étude 1, [a]'") == 0
    study = optuna.load_study(study_name="étude 1, [a]", storage=f"sqlite:///{home / 'outputs/sweeps/optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert (home / "outputs" / "sweeps" / "étude 1, [a]" / "trial_1" / "metrics.json").is_file()


# -- resources ------------------------------------------------------------------------------------------------

def test_a_huge_seq_len_is_refused_before_any_allocation(tiny_archive, tmp_path):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "data.seq_len=100000",
                                                 "data.train_limit=200"))
    assert proc.returncode == 2 and "data.seq_len=100000 must be in [1, 5000]" in proc.stderr


def test_a_configuration_that_cannot_fit_in_memory_is_refused(tiny_cfg, tmp_path, monkeypatch):
    from gru_exp.errors import ConfigError
    from gru_exp.train import device
    from gru_exp.train.run import run_training

    monkeypatch.setattr(device, "available_memory", lambda: 2**20)  # a 1 MiB machine: the real one cannot OOM here
    with pytest.raises(ConfigError, match=r"needs about .* GiB .* are available"):
        run_training(tiny_cfg("model.hidden_size=512"), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_bigram_table_larger_than_memory_is_refused_before_it_is_allocated(tiny_archive, tmp_path):
    """2**40 rows of 16 floats (64 TiB, four times that with gradients and Adam moments): refused in
    one paragraph naming the knob, exit 2, no run folder left, not an out-of-memory kill."""
    out = tmp_path / "out"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, f"model.bigram_buckets={2**40}"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"model.bigram_buckets={2**40} x model.bigram_size=16" in proc.stderr and "GiB are available" in proc.stderr
    assert not list(out.rglob("metrics.json"))


@pytest.mark.parametrize("size", [300_000_000, 3_000_000_000])
def test_an_attention_score_larger_than_memory_is_refused_before_it_is_allocated(tiny_archive, tmp_path, size):
    """model.attention_size was left out of the memory estimate: a MemoryError or an int32 index
    traceback, exit 1, with a run folder left (adversarial pass 4)."""
    out = tmp_path / "out"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "model.pooling=attention",
                                                 f"model.attention_size={size}"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"model.attention_size={size}" in proc.stderr and "GiB are available" in proc.stderr
    assert not list(out.rglob("metrics.json")) and not list(out.rglob("vocab.txt"))


def test_a_sweep_stopped_by_failures_exits_non_zero_and_says_why(sweep_env, capsys):
    name = sweep_env(n_trials=3, epochs=1, params="  trainer.lr: {type: float, low: 1.0e+6, high: 1.0e+7, log: true}",
                     max_failures=1)
    assert sweep(f"sweep={name}") == 1
    err = capsys.readouterr().err
    assert "stopped early" in err and "max_failures=1" in err


def test_a_base_that_training_rejects_is_refused_before_the_first_trial(sweep_env, capsys):
    name = sweep_env(n_trials=2, epochs=1)
    assert sweep(f"sweep={name}", "base=['model.dropout=1.5']") == 2
    assert "base: model.dropout=1.5 must be in [0, 1)" in capsys.readouterr().err
    assert not sweep_env.sweeps_dir.exists()


@pytest.mark.parametrize("override,message", [
    ("timeout=-5", "timeout=-5.0 must be > 0 or null"),
    ("max_failures=-1", "max_failures=-1 must be a positive integer or null"),
    ("timeout=nan", "timeout=nan must be > 0"),
    ("pruner.percentile=nan", "pruner.percentile=nan must be in (0, 100)"),
])
def test_bad_sweep_numbers_are_refused(sweep_env, capsys, override, message):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", override) == 2
    assert message in capsys.readouterr().err
    assert not sweep_env.sweeps_dir.exists()


def test_where_a_run_writes_is_not_searchable(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1, params="  paths.output_dir: {type: categorical, choices: [/tmp/elsewhere]}")
    assert sweep(f"sweep={name}") == 2
    assert "params.paths.output_dir is not searchable" in capsys.readouterr().err


def test_grad_clip_nan_is_refused(tiny_archive, tmp_path):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.grad_clip=nan"))
    assert proc.returncode == 2 and "trainer.grad_clip=nan must be >= 0" in proc.stderr


def test_a_read_only_study_database_is_a_clear_error(sweep_env, capsys, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    db = tmp_path / "ro" / "optuna.db"
    db.parent.mkdir()
    optuna.create_study(study_name="other", storage=f"sqlite:///{db}")
    before = db.read_bytes()
    # SQLite's own read-only mode: read-only even for root (CI), unlike file permissions
    assert sweep(f"sweep={name}", f"storage='sqlite:///file:{db}?mode=ro&uri=true'") == 2
    err = capsys.readouterr().err
    assert re.search(r"cannot be (written|opened)", err) and "Traceback" not in err
    assert db.read_bytes() == before and not (REPO / "file:").exists()


def test_a_sqlite_path_under_a_file_is_a_clear_error(sweep_env, capsys, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    (tmp_path / "afile").write_text("x")
    assert sweep(f"sweep={name}", f"storage=sqlite:///{tmp_path / 'afile' / 'optuna.db'}") == 2
    err = capsys.readouterr().err
    assert "its folder cannot be made" in err and "Traceback" not in err


def test_report_inputs_of_every_kind_are_one_paragraph(tmp_path, capsys):
    from gru_exp.report.__main__ import main as report

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "study.json").write_text("{not json")
    assert report([str(garbage)]) == 2
    assert "is not a study pointer" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text(json.dumps({"loss": [1, 2]}))
    assert report([str(foreign)]) == 2
    assert "not a gru-exp run record" in capsys.readouterr().err
    db = tmp_path / "s.db"
    optuna.create_study(study_name="q", storage=f"sqlite:///{db}")
    assert report(["study_name=q", f"storage=sqlite:///{db}?timeout=5"]) == 2  # exists: the error is "no trials"
    assert "has no trials yet" in capsys.readouterr().err
    assert report(["study_name=q", f"storage=sqlite:///{tmp_path / 'missing.db'}"]) == 2
    assert "no such SQLite file" in capsys.readouterr().err
    sqlite3.connect(db).close()


# -- numbers (rows 70, 71, 79) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("override,message", [
    ("trainer.seed=-1", "trainer.seed=-1 must be in [0, 4294967295]"),
    ("trainer.seed=18446744073709551616", "trainer.seed=18446744073709551616 must be in [0, 4294967295]"),
    ("trainer.num_threads=100000", "trainer.num_threads=100000 must be in [1, 256]"),
])
def test_seeds_and_thread_counts_have_ranges(tiny_cfg, override, message):
    from gru_exp.config.validation import validate

    with pytest.raises(ConfigError) as info:
        validate(tiny_cfg(override))
    assert message in str(info.value)


def test_a_negative_seed_is_exit_2_with_no_run_folder(tiny_archive, tmp_path):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.seed=-1"))
    assert proc.returncode == 2 and "trainer.seed=-1 must be in [0, 4294967295]" in proc.stderr, proc.stderr
    assert not list((tmp_path / "out").rglob("run.log"))


# -- damaged archives (rows 31, 32) ----------------------------------------------------------------------------

@pytest.mark.parametrize("where", [0.7, 0.9])
def test_a_damaged_archive_is_refused_and_never_cached(tiny_archive, tmp_path, where):
    from gru_exp.errors import DataError
    from gru_exp.data.imdb import load_imdb

    data = bytearray(tiny_archive.read_bytes())
    data[int(len(data) * where)] ^= 0xFF  # one flipped byte: tarfile alone read on, or stopped without a word
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"damaged.tar.gz' is not a readable IMDB archive \(truncated or corrupt\?\)"):
        load_imdb(damaged, cutoff=2, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz"))


# -- names (row 18) --------------------------------------------------------------------------------------------

def test_a_study_name_longer_than_a_folder_name_in_bytes_is_refused_before_any_study(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", f"study_name='{'日' * 90}'") == 2  # 90 characters, 270 bytes
    err = capsys.readouterr().err
    assert "study_name='日日日" in err and "at most 255 bytes as UTF-8" in err and "Traceback" not in err
    assert not (sweep_env.sweeps_dir / "optuna.db").exists()  # no database, so no orphan study


def test_a_name_of_255_bytes_is_allowed():
    from gru_exp.config.names import name_problem

    assert name_problem("study_name", "é" * 100) is None  # 200 bytes
    assert name_problem("study_name", "日" * 85) is None  # 255 bytes
    assert "at most 255 bytes" in name_problem("study_name", "日" * 86)


# -- numbers (row 95) ------------------------------------------------------------------------------------------

def test_a_negative_sampler_seed_is_named_as_such(sweep_env, capsys):
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}", "sampler.seed=-1") == 2
    err = capsys.readouterr().err
    assert "sampler.seed=-1 must be in [0, 4294967295] or null (unseeded)" in err and "cannot be opened" not in err
    assert not (sweep_env.sweeps_dir / "optuna.db").exists()


@pytest.mark.parametrize("override, says", [("hydra.output_subdir=.hydra", "leave hydra.output_subdir unset"),
                                            ("hydra.job.chdir=true", "leave hydra.job.chdir unset")])
def test_hydra_settings_a_run_cannot_keep_are_refused_before_anything_is_written(tiny_archive, tmp_path, override,
                                                                               says):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "home"), override)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "home").exists()


def test_a_journal_under_the_home_folder_is_the_same_file_for_sweep_and_report(sweep_env, tmp_path):
    """storage=journal:~/... : the sweep expanded ~ and the report did not (it looked for a folder
    named ~ in the working folder and said there was no such journal); a ~ path to a folder was
    not seen as one and ended in a traceback."""
    name = sweep_env(n_trials=1, epochs=1)
    home = tmp_path / "user"
    (home / "studies").mkdir(parents=True)
    env = {"HOME": str(home)}
    proc = cli("gru_exp.sweep", f"sweep={name}", "storage='journal:~/studies/s.journal'", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (home / "studies" / "s.journal").is_file()
    proc = cli("gru_exp.report", f"study_name={name}", "storage=journal:~/studies/s.journal", env=env)  # no Hydra
    assert proc.returncode == 0 and "no such journal file" not in proc.stderr, proc.stderr[-2000:]
    proc = cli("gru_exp.sweep", f"sweep={name}", "storage='journal:~/studies'", env=env)
    assert proc.returncode == 2 and "names no journal file" in proc.stderr and "Traceback" not in proc.stderr, \
        proc.stderr[-2000:]


@pytest.mark.parametrize("command,empty", [("gru_exp.train", "paths.root_dir"), ("gru_exp.train", "paths.output_dir"),
                                           ("gru_exp.train", "data.cache_dir"), ("gru_exp.sweep", "paths.root_dir"),
                                           ("gru_exp.sweep", "paths.sweeps_dir")])
def test_an_empty_folder_path_is_refused_and_nothing_is_written_in_the_root_or_the_working_folder(tmp_path, command,
                                                                                                  empty):
    """paths.root_dir= made /outputs (runs, cache, vdl, optuna.db), paths.output_dir= made /runs and
    /cache, data.cache_dir= and paths.sweeps_dir= wrote into the working folder, exit 0 (adversarial
    pass 5): Path("") is the working folder and "${paths.root_dir}/outputs" becomes /outputs."""
    import os
    import subprocess
    import sys

    work = tmp_path / "work"
    work.mkdir()
    before = {p for p in os.listdir("/")}
    env = {**os.environ, "GRU_EXP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([sys.executable, "-m", command, f"{empty}="], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and f"{empty} is empty" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not list(work.iterdir()) and not (tmp_path / "home").exists()
    made = {p for p in os.listdir("/")} - before  # what the bug made there; nothing else on the machine counts
    assert not made & {"outputs", "runs", "cache", "vdl", "baseline", "sweeps", "optuna.db"}, made


@pytest.mark.parametrize("name", ["/abs/escape", "../../../escape", ".."])
def test_a_study_named_like_a_path_by_another_tool_is_never_reported_outside_the_outputs(tmp_path, name):
    """A study that another tool named '/abs/...' or '../..' (the sweep refuses such names) had its
    report.md and figures written there (adversarial pass 5); now exit 2 asking for --out, which works."""
    import os

    storage = f"sqlite:///{tmp_path / 'other.db'}"
    study = optuna.create_study(study_name=name.replace("/abs", str(tmp_path / "abs")), storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    home = tmp_path / "home"
    env = {"GRU_EXP_HOME": str(home)}
    before = sorted(os.listdir(tmp_path))
    proc = cli("gru_exp.report", f"study_name={study.study_name}", f"storage={storage}", env=env)
    assert proc.returncode == 2 and "give --out" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(os.listdir(tmp_path)) == before and not (tmp_path.parent / "escape").exists()
    proc = cli("gru_exp.report", f"study_name={study.study_name}", f"storage={storage}", "--out",
               str(home / "outputs" / "r"), env=env)
    assert proc.returncode == 0 and (home / "outputs" / "r" / "report.md").is_file(), proc.stderr[-2000:]


def test_an_empty_report_target_never_reports_on_the_working_folder(tmp_path):
    """report "" (an unset variable) scanned the working folder and wrote report.md there."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "GRU_EXP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "gru_exp.report", ""], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "empty folder name" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_sweep_whose_base_names_missing_data_is_refused_before_its_study_is_made(sweep_env, tmp_path, capsys):
    """A base naming a missing data file made a study whose trials all failed, exit 1 at max_failures,
    and every later resume stopped at once (adversarial pass 5); training refuses it with exit 2."""
    name = sweep_env(n_trials=2, epochs=1)
    missing = tmp_path / "nowhere.csv"
    space = tmp_path / "sweeps" / f"{name}.yaml"
    space.write_text(re.sub(r"data\.path=[^,]+", f"data.source=table, data.train_file={missing}", space.read_text()))
    assert sweep(f"sweep={name}") == 2
    err = capsys.readouterr().err
    assert "base:" in err and "nowhere.csv" in err and "Traceback" not in err, err
    assert not sweep_env.sweeps_dir.exists()


def test_a_study_whose_folder_would_be_a_file_is_refused_before_the_study_is_made(sweep_env, capsys):
    """study_name=optuna.db (its folder would be the database file) was refused only after Optuna had
    made the study: an empty study stayed in the storage (adversarial pass 5)."""
    name = sweep_env(n_trials=1, epochs=1)
    assert sweep(f"sweep={name}") == 0
    db = sweep_env.sweeps_dir / "optuna.db"
    before = db.read_bytes()
    assert sweep(f"sweep={name}", "study_name=optuna.db") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert db.read_bytes() == before
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{db}")] == [name]


@pytest.mark.parametrize("empty", [("hydra.run.dir=",), ("-m", "hydra.sweep.dir=", "trainer.seed=1,2")])
def test_an_empty_hydra_folder_never_puts_a_run_into_the_working_folder(tiny_archive, tmp_path, empty):
    """hydra.run.dir= (an unset variable) trained into the working folder, and -m hydra.sweep.dir=
    wrote multirun.yaml and the jobs' folders there, exit 0 (adversarial pass 6)."""
    import os
    import subprocess
    import sys

    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([sys.executable, "-m", "gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out",
                                                                                  "trainer.epochs=1"), *empty],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "is empty: the run would be written into the working folder" in proc.stderr, \
        proc.stderr[-2000:]
    assert not list(work.iterdir())



@pytest.mark.parametrize("command", [("gru_exp.train", "data.path=${oc.env:GRU_EXP_TEST_NOT_SET}"),
                                     ("gru_exp.train", "data.path=${nope.key}"),
                                     ("gru_exp.sweep", "sweep=cpu_quick", "storage=${oc.env:GRU_EXP_TEST_NOT_SET}")])
def test_a_value_that_cannot_resolve_is_one_paragraph_not_a_traceback(tmp_path, command):
    """${oc.env:UNSET} or a ${key} that does not exist in an override gave OmegaConf's traceback, exit 1
    (adversarial pass 6); the sweep hands its workers storage=${oc.env:GRU_EXP_STORAGE} itself."""
    proc = cli(*command, env={"GRU_EXP_HOME": str(tmp_path / "home")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "set it, or give a plain value" in proc.stderr, \
        proc.stderr[-2000:]
    assert not (tmp_path / "home").exists()


def test_workers_that_refused_clearly_make_the_sweep_exit_2_as_one_worker_does():
    """With n_workers=2 a data change printed each worker's one-paragraph refusal, then the sweep exited 1
    (adversarial pass 6)."""
    from gru_exp.sweep.__main__ import combined_exit

    assert [combined_exit(c) for c in ([0, 0], [2, 2], [0, 2], [1, 2], [130, 2], [-15, 0])] == [0, 2, 2, 1, 130, 130]
