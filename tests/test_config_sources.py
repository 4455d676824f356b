"""Which file ran is never ambiguous, on every way configs arrive (GRU_EXP_CONFIG_PATH, its
sweeps/, GRU_EXP_SWEEPS_PATH, --config-dir), and the user's folders never break Hydra's own flags
or turn a help request into a traceback (issue 23). Real CLI processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, tiny_overrides


def cli(*args: str, env_extra: dict | None = None, shell_tail: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    for key in ("GRU_EXP_CONFIG_PATH", "GRU_EXP_SWEEPS_PATH"):
        if key not in (env_extra or {}):
            env.pop(key, None)
    if shell_tail:  # e.g. "| true": a reader that closes the pipe at once
        line = " ".join(f"'{a}'" for a in [sys.executable, "-m", *args])
        return subprocess.run(["bash", "-c", f"{line} {shell_tail}; exit ${{PIPESTATUS[0]}}"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def experiment(folder: Path, name: str, hidden: int) -> Path:
    (folder / "experiment").mkdir(parents=True, exist_ok=True)
    (folder / "experiment" / f"{name}.yaml").write_text(f"# @package _global_\nmodel:\n  hidden_size: {hidden}\n")
    return folder


def test_two_user_folders_with_one_experiment_name_are_refused(tiny_archive, tmp_path):
    a, b = experiment(tmp_path / "a", "small", 8), experiment(tmp_path / "b", "small", 12)
    out = tmp_path / "out"
    for env, args in (({"GRU_EXP_CONFIG_PATH": f"{a}{os.pathsep}{b}"}, []),
                      ({"GRU_EXP_CONFIG_PATH": str(a)}, ["--config-dir", str(b)])):
        proc = cli("gru_exp.train", *args, *tiny_overrides(tiny_archive, out, "experiment=small"), env_extra=env)
        assert proc.returncode == 2 and "are both experiment/small.yaml" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not out.exists()


def test_a_search_space_named_like_a_shipped_or_another_one_is_refused(tmp_path):
    older, mine = tmp_path / "older", tmp_path / "mine"
    older.mkdir()
    (older / "cpu_quick.yaml").write_text("study_name: mine\nparams: {}\n")  # used to replace the shipped one silently
    proc = cli("gru_exp.sweep", "sweep=cpu_quick", f"paths.root_dir={tmp_path / 'home'}",
               env_extra={"GRU_EXP_SWEEPS_PATH": str(older)})
    assert proc.returncode == 2 and "a shipped search space" in proc.stderr and "Traceback" not in proc.stderr
    (older / "cpu_quick.yaml").rename(older / "tiny.yaml")
    (mine / "sweeps").mkdir(parents=True)
    (mine / "sweeps" / "tiny.yaml").write_text("study_name: other\nparams: {}\n")
    proc = cli("gru_exp.sweep", "sweep=tiny", f"paths.root_dir={tmp_path / 'home'}",
               env_extra={"GRU_EXP_SWEEPS_PATH": str(older), "GRU_EXP_CONFIG_PATH": str(mine)})
    assert proc.returncode == 2 and "has the name 'tiny'" in proc.stderr, proc.stderr
    assert not (tmp_path / "home").exists()


def test_hydra_flags_after_the_overrides_work_with_user_folders(tiny_archive, tmp_path):
    """With GRU_EXP_CONFIG_PATH set, `--cfg job` or `-m` written after the overrides used to fail
    with "unrecognized arguments: hydra.searchpath=[...]", an argument the user never typed."""
    mine = experiment(tmp_path / "mine", "small", 24)
    env = {"GRU_EXP_CONFIG_PATH": str(mine)}
    shown = cli("gru_exp.train", "experiment=small", "--cfg", "job", env_extra=env)
    assert shown.returncode == 0 and "hidden_size: 24" in shown.stdout, shown.stderr
    grid = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "experiment=small",
                                                 "trainer.epochs=1", "trainer.seed=1,2"), "-m", env_extra=env)
    assert grid.returncode == 0, grid.stderr[-2000:]
    assert len(list((tmp_path / "out").rglob("metrics.json"))) == 2
    both = cli("gru_exp.train", "experiment=small", "-m", "--cfg", "job", env_extra=env)
    assert both.returncode == 2 and "at a time" in both.stderr and "Traceback" not in both.stderr


def test_help_and_baseline_with_a_missing_config_folder_are_one_paragraph(tmp_path):
    env = {"GRU_EXP_CONFIG_PATH": str(tmp_path / "missing"), "GRU_EXP_HOME": str(tmp_path / "home")}
    for args in (["gru_exp.train", "--help"], ["gru_exp.sweep", "--help"], ["gru_exp.baseline"],
                 ["gru_exp", "train", "--help"]):
        proc = cli(*args, env_extra=env)
        assert proc.returncode == 2 and "is not a folder" in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = cli("gru_exp.baseline", env_extra={"GRU_EXP_HOME": "/dev/null"})
    assert proc.returncode == 2 and "/dev/null" in proc.stderr and "Traceback" not in proc.stderr


def test_help_into_a_closed_pipe_ends_quietly():
    for args in (["gru_exp.train", "--help"], ["gru_exp.sweep", "--help"], ["gru_exp", "--help"]):
        proc = cli(*args, shell_tail="| true")
        assert proc.returncode in (0, 141) and "Traceback" not in proc.stderr and "Error" not in proc.stderr, \
            (args, proc.returncode, proc.stderr)


def test_a_user_searchpath_and_nested_configs_cannot_hide_which_file_ran(tiny_archive, tmp_path):
    """hydra.searchpath given by hand used to drop GRU_EXP_CONFIG_PATH and escape the shadowing
    check (the shipped cpu_quick ran instead of the user's); experiment/sub/x.yaml in two folders
    was never compared (the first folder won)."""
    mine = tmp_path / "mine"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "cpu_quick.yaml").write_text("# @package _global_\nmodel:\n  pooling: max\n")
    proc = cli("gru_exp.train", "experiment=cpu_quick", f"hydra.searchpath=[file://{mine}]", "--cfg", "job")
    assert proc.returncode == 2 and "GRU_EXP_CONFIG_PATH" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("gru_exp.sweep", f"hydra.searchpath=[file://{mine}]", "--cfg", "job")
    assert proc.returncode == 2 and "GRU_EXP_CONFIG_PATH" in proc.stderr, proc.stderr
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, pooling in ((a, "max"), (b, "mean")):
        (folder / "experiment" / "sub").mkdir(parents=True)
        (folder / "experiment" / "sub" / "x.yaml").write_text(f"# @package _global_\nmodel:\n  pooling: {pooling}\n")
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "experiment=sub/x"),
               env_extra={"GRU_EXP_CONFIG_PATH": f"{a}{os.pathsep}{b}"})
    assert proc.returncode == 2 and "are both experiment/sub/x.yaml" in proc.stderr, proc.stderr


def test_a_name_that_is_not_a_config_says_what_there_is_and_where_a_file_of_that_name_must_go(tmp_path):
    """A user's ./sweeps/mine.yaml (or ./experiment/mine.yaml, or a path as the name) that no config
    folder holds: one paragraph with the options, the folder to set and the name to give; exit 2,
    nothing written. With that folder set, the same name composes."""
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "mine.yaml").write_text("study_name: mine\nn_trials: 1\n")
    experiment(tmp_path, "small", 8)
    env = {k: v for k, v in os.environ.items() if k not in ("GRU_EXP_CONFIG_PATH", "GRU_EXP_SWEEPS_PATH")}
    env["GRU_EXP_HOME"] = str(tmp_path / "home")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env={**env, **extra}, capture_output=True,
                              text=True, timeout=300)

    for module, arg, folder in (("gru_exp.sweep", "sweep=mine", "sweeps"), ("gru_exp.sweep", "sweep=sweeps/mine.yaml", "sweeps"),
                                ("gru_exp.train", "experiment=small", "experiment")):
        proc = run(module, arg)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        error = proc.stderr.splitlines()[0]
        assert f"there is no {arg.split('=')[0]} of that name; available: " in error, error
        assert f"set GRU_EXP_CONFIG_PATH={tmp_path} (the folder that holds {folder}/" in error, error
        assert "default" in error if module == "gru_exp.sweep" else "cpu_quick" in error
    proc = run("gru_exp.sweep", "sweep=nowhere")
    assert proc.returncode == 2 and "Your own files go to <folder>/sweeps/nowhere.yaml" in proc.stderr, proc.stderr
    assert not (tmp_path / "home").exists()  # nothing written
    proc = run("gru_exp.sweep", "sweep=mine", "--cfg", "job", GRU_EXP_CONFIG_PATH=str(tmp_path))
    assert proc.returncode == 0 and "study_name: mine" in proc.stdout, proc.stderr
