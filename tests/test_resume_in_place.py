"""``trainer.resume=<folder>`` alone continues a run (#27) with its recorded configuration and data:
an interrupted run in its own folder and VisualDL run, a finished one into a new folder (its result
stays); only knobs that may change on resume are taken beside it, and a changed fixed knob is
refused with the folder left byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, tiny_overrides


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("GRU_EXP_IMDB", None)  # the archive comes from the run's record, not the environment
    return subprocess.run([sys.executable, "-m", "gru_exp.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_bare_resume_of_a_finished_run_continues_into_a_new_folder_and_keeps_the_result(tiny_archive, tmp_path):
    """A finished run's scored result and checkpoints stay as they are (an interrupted extension
    never takes them); the longer run gets its own folder, with the recorded configuration."""
    home = tmp_path / "home"
    first = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1", "model.hidden_size=8", "trainer.lr=0.003"))
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = first.stdout.split()
    before = {p: p.read_bytes() for p in Path(run).rglob("*") if p.is_file() and p.name != ".run.lock"}
    resumed = cli(f"trainer.resume={run}", "trainer.epochs=2", f"paths.root_dir={home}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (longer,) = resumed.stdout.split()
    assert longer != run and "continued into a new folder" in resumed.stderr
    assert Path(longer).name.endswith("_run_trainer.epochs-2")  # named by the command line's own overrides
    assert {p: p.read_bytes() for p in Path(run).rglob("*") if p.is_file() and p.name != ".run.lock"} == before
    record = json.loads((Path(longer) / "metrics.json").read_text())
    assert record["series"]["epoch"] == [1, 2] and record["status"] == "completed" and record["resumed_from"] == run
    assert record["config"]["model"]["hidden_size"] == 8 and record["config"]["trainer"]["lr"] == 0.003
    assert record["config"]["data"]["path"] == str(tiny_archive)
    # hydra.run.dir=<the run> extends it in place, with the recorded configuration too
    in_place = cli(f"trainer.resume={run}", "trainer.epochs=3", f"hydra.run.dir={run}", f"paths.root_dir={home}")
    assert in_place.returncode == 0 and in_place.stdout.split() == [run], in_place.stderr[-2000:]
    assert json.loads((Path(run) / "metrics.json").read_text())["series"]["epoch"] == [1, 2, 3]


def test_a_bare_resume_refuses_a_changed_fixed_knob_and_touches_nothing(tiny_archive, tmp_path):
    home = tmp_path / "home"
    first = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1", "model.hidden_size=8"))
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = first.stdout.split()
    before = {p: p.read_bytes() for p in type(home)(run).rglob("*") if p.is_file() and p.name != ".run.lock"}
    refused = cli(f"trainer.resume={run}", "trainer.epochs=3", "model.hidden_size=16", f"paths.root_dir={home}")
    assert refused.returncode == 2 and "model.hidden_size: 8 -> 16" in refused.stderr, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    after = {p: p.read_bytes() for p in type(home)(run).rglob("*") if p.is_file() and p.name != ".run.lock"}
    assert after == before


def test_an_interrupted_run_says_the_one_override_that_continues_it(tiny_archive, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "GRU_EXP_TEST_KILL_AT": "metrics.json:2:INT"}
    proc = subprocess.run([sys.executable, "-m", "gru_exp.train", *tiny_overrides(tiny_archive, home,
                                                                                    "trainer.epochs=3")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    (run,) = [p.parent for p in home.rglob("metrics.json")]
    assert f"python -m gru_exp.train trainer.resume={run}\n" in proc.stderr, proc.stderr[-2000:]
    first_wall = json.loads((run / "metrics.json").read_text())["wall_time_s"]
    resumed = cli(f"trainer.resume={run}", f"paths.root_dir={home}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads((run / "metrics.json").read_text())
    assert record["series"]["epoch"] == [1, 2, 3]
    assert record["wall_time_s"] > first_wall > 0  # every session of the run, not the last one alone


def test_an_experiment_beside_a_bare_resume_is_refused(tiny_archive, tmp_path):
    home = tmp_path / "home"
    first = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1"))
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = first.stdout.split()
    proc = cli(f"trainer.resume={run}", "experiment=linear_baseline", "trainer.epochs=2", f"paths.root_dir={home}")
    assert proc.returncode == 2 and "experiment=linear_baseline beside trainer.resume" in proc.stderr, proc.stderr
    assert len(list(home.rglob("metrics.json"))) == 1


def test_a_run_inside_a_run_or_a_study_folder_is_refused(tiny_archive, tmp_path):
    home = tmp_path / "home"
    first = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1"))
    (run,) = first.stdout.split()
    inside = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1"), f"hydra.run.dir={run}/sub")
    assert inside.returncode == 2 and "is inside the run folder" in inside.stderr, inside.stderr[-2000:]
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text('{"study_name": "s", "storage": "sqlite:///x.db"}')
    trial = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1"), f"hydra.run.dir={study}/trial_0/seed_44")
    assert trial.returncode == 2 and "is inside the study folder" in trial.stderr, trial.stderr[-2000:]
    assert not (study / "trial_0").exists() and not (Path(run) / "sub").exists()


def test_a_grid_of_bare_resumes_takes_the_recorded_configuration(tiny_archive, tmp_path):
    home = tmp_path / "home"
    first = cli(*tiny_overrides(tiny_archive, home, "trainer.epochs=1", "model.hidden_size=8"))
    (run,) = first.stdout.split()
    grid = cli("-m", f"trainer.resume={run}", "trainer.epochs=2,3", f"paths.root_dir={home}")
    assert grid.returncode == 0, grid.stderr[-2000:]
    folders = grid.stdout.split()
    assert [Path(f).name.split("_", 1)[1] for f in folders] == ["trainer.epochs-2", "trainer.epochs-3"]
    for folder, epochs in zip(folders, (2, 3)):
        record = json.loads((Path(folder) / "metrics.json").read_text())
        assert record["series"]["epoch"] == list(range(1, epochs + 1))
        assert record["config"]["model"]["hidden_size"] == 8
