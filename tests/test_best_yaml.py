"""best.yaml: a study's best trial as an experiment file that composes exactly the trial's config
and runs as summary.md prints it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import yaml
from conftest import run_sweep as sweep

from gru_exp.config.compose import compose_config
from gru_exp.config.values import to_container

PARAMS = """  trainer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  model.dropout: {type: float, low: 0.0, high: 0.7, step: 0.1}
  model.hidden_size: {type: categorical, choices: [8, 16]}
"""
RUN_SPECIFIC = ("paths", "name")  # where a run writes and what its folder is called


def _without_run_specific(config: dict) -> dict:
    config = {k: v for k, v in config.items() if k not in RUN_SPECIFIC}
    config["data"] = {k: v for k, v in config["data"].items() if k != "cache_dir"}  # ${paths.cache_dir}
    # a trial keeps only its best weights (the sweep's disk default); a re-run keeps the default
    config["trainer"] = {k: v for k, v in config["trainer"].items() if k != "keep_checkpoints"}
    return config


def test_best_yaml_composes_the_best_trials_config_exactly_and_runs_as_printed(sweep_env, monkeypatch, tmp_path):
    name = sweep_env(name="bst", n_trials=3, epochs=1, params=PARAMS, pruner="{name: none}")
    space = Path(os.environ["GRU_EXP_SWEEPS_PATH"]) / f"{name}.yaml"
    space.write_text(space.read_text().replace("base: [", "base: [experiment=cpu_quick, data.bucket_size=0, "))
    assert sweep(f"sweep={name}") == 0
    folder = sweep_env.sweeps_dir / name
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_env.sweeps_dir / 'optuna.db'}")
    best = max((t for t in study.trials if t.value is not None), key=lambda t: (t.value, -t.number))

    text = (folder / "best.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert f"trial {best.number} " in text and "  - cpu_quick\n" in text  # the base's experiment
    assert (folder / "conf" / "experiment" / f"best_{name}.yaml").read_text() == text
    for line in text.splitlines():  # a long exact decimal comes with its rounded reading
        value = line.split("#")[0].split(":", 1)[-1].strip()
        if re.fullmatch(r"-?\d+\.\d{6,}(e-?\d+)?", value):
            assert "# ~" in line, line
    loaded = yaml.safe_load(text)
    assert loaded["trainer"]["lr"] == best.params["trainer.lr"]  # exact, not rounded
    assert loaded["model"]["dropout"] == best.params["model.dropout"]
    assert loaded["data"]["bucket_size"] == 0
    assert loaded["name"] == f"best_{name}"  # its runs' folders say best_<study>, not the base's cpu_quick

    # composed through GRU_EXP_CONFIG_PATH, it is the trial's config, key for key
    trial = json.loads((folder / f"trial_{best.number}" / "metrics.json").read_text())["config"]
    monkeypatch.setenv("GRU_EXP_CONFIG_PATH", str(folder / "conf"))
    composed = to_container(compose_config([f"experiment=best_{name}"]))
    assert _without_run_specific(composed) == _without_run_specific(trial)

    # summary.md prints the command; it runs as printed (here with --cfg job: the config, no training)
    summary = (folder / "summary.md").read_text()
    command = re.search(r"Reproduce \(the trial's exact values[^`]*`([^`]+)`", summary).group(1)
    assert command.startswith("GRU_EXP_CONFIG_PATH=") and command.endswith(f"gru-exp train experiment=best_{name}")
    assert best.user_attrs["command"] not in summary  # no longer the 17-digit command line
    env = {k: v for k, v in os.environ.items() if k != "GRU_EXP_CONFIG_PATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    assert shutil.which("gru-exp", path=env["PATH"]), "the gru-exp command is installed (pip install -e .)"
    shown = subprocess.run(["bash", "-c", f"{command} --cfg job"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    job = yaml.safe_load(shown.stdout)
    assert job["trainer"]["lr"] == best.params["trainer.lr"]
    assert job["model"]["hidden_size"] == best.params["model.hidden_size"]


def test_a_base_experiment_from_the_users_config_folder_runs_as_printed(sweep_env, monkeypatch, tmp_path):
    mine = tmp_path / "myconf"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "my_tiny.yaml").write_text("# @package _global_\nmodel: {num_layers: 1, pooling: mean}\n")
    monkeypatch.setenv("GRU_EXP_CONFIG_PATH", str(mine))
    name = sweep_env(name="mine", n_trials=1, epochs=1, pruner="{name: none}")
    space = Path(os.environ["GRU_EXP_SWEEPS_PATH"]) / f"{name}.yaml"
    space.write_text(space.read_text().replace("base: [", "base: [experiment=my_tiny, "))
    assert sweep(f"sweep={name}") == 0
    folder = sweep_env.sweeps_dir / name
    command = re.search(r"`(GRU_EXP_CONFIG_PATH=[^`]+)`", (folder / "summary.md").read_text()).group(1)
    assert command.startswith(f"GRU_EXP_CONFIG_PATH={folder.absolute() / 'conf'}{os.pathsep}{mine} ")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GRU_EXP_CONFIG_PATH")
    shown = subprocess.run(["bash", "-c", f"{command} --cfg job"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["model"]["pooling"] == "mean"
