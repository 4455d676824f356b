"""``best.yaml`` beside a study's summary: the trial summary.md puts first (the best, or the Pareto
front's best in the first objective) as an experiment file, to re-run, to commit, or to start a
new search from.

It holds the study's base (its ``experiment=`` as a defaults entry, its other overrides as values)
and the trial's sampled values, each written as the shortest decimal that reads back as exactly
the trial's value (Python's float repr), with a rounded reading in a comment where that decimal is
long: composed, it gives the trial's config exactly (tests/test_best_yaml.py). The same text is
written to ``conf/experiment/best_<study>.yaml`` in the study folder, a config folder for
``GRU_EXP_CONFIG_PATH`` (config/sources.py: a dedicated folder, so the trial folders are not
scanned, and a ``best_`` name no shipped experiment has), so it runs as printed:
``GRU_EXP_CONFIG_PATH=<study>/conf gru-exp train experiment=best_<study>``.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any, Optional

import optuna
import yaml
from optuna.trial import FrozenTrial

from gru_exp.config.sources import CONFIG_PATH_ENV
from gru_exp.files import atomic_write_text

log = logging.getLogger(__name__)
BEST_FILE = "best.yaml"
CONF_DIR = "conf"  # in the study folder: a config folder holding only experiment/best_<study>.yaml


def experiment_name(study_name: str) -> str:
    return f"best_{study_name}"


def run_command(out: Path, study_name: str) -> str:
    """The command that trains the study's best.yaml, as printed in summary.md: the study's config
    folder, then the user's config folders the sweep ran with (its base may name their experiment)."""
    folders = [str(Path(out).absolute() / CONF_DIR)]
    folders += [f for f in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if f and f not in folders]
    return (f"{CONFIG_PATH_ENV}={shlex.quote(os.pathsep.join(folders))} gru-exp train "
            f"experiment={experiment_name(study_name)}")


def _scalar(value: Any) -> str:
    """A YAML scalar that reads back as ``value`` (floats: the shortest exact decimal)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]


def _rounded(value: Any) -> str:
    """"  # ~0.338" for a float whose exact decimal is long, else ""."""
    if isinstance(value, float) and not isinstance(value, bool) and len(repr(value).lstrip("-")) > 8:
        return f"  # ~{value:.3g}"
    return ""


def _base_values(base: list[str]) -> tuple[Optional[str], dict[str, Any], list[str]]:
    """(the base's experiment, its other overrides as key -> typed value, overrides not expressible
    as values) from Hydra's own parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    experiment, values, other = None, {}, []
    for item in OverridesParser.create().parse_overrides(list(base)):
        key = item.key_or_group
        if item.is_delete() or item.is_sweep_override() or item.package:
            other.append(item.input_line)
        elif key == "experiment":
            experiment = item.value()
        else:
            values[key] = item.value()
    return experiment, values, other


def best_text(study: optuna.Study, trial: FrozenTrial, out: Path) -> str:
    """The experiment file of ``trial`` (see the module docstring)."""
    base = list(study.user_attrs.get("base") or [])
    experiment, values, other = _base_values(base)
    values.update(trial.params)
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    scored = ", ".join(f"{n} {v!r}" for n, v in zip(names, trial.values))
    lines = ["# @package _global_",
             f"# Study {study.study_name!r}, trial {trial.number} (summary.md's first): {scored}.",
             f"# Run it: {run_command(out, study.study_name)}",
             f"# Started from: {' '.join(base) or '(the defaults)'}; searched: {', '.join(trial.params) or 'nothing'}.",
             "# Values are the trial's own, exactly (the shortest decimals that read back as them; ~ rounded)."]
    lines += [f"# Not carried over (not a value): {' '.join(other)}"] if other else []
    lines += ["defaults:", f"  - {experiment}" if experiment else "", "  - _self_"]
    # its runs are named after it, not after the experiment it started from (their folders, the dashboard)
    lines += [] if "name" in values else [f"name: {_scalar(experiment_name(study.study_name))}"]
    tree: dict[str, Any] = {}
    for key, value in values.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    def emit(node: dict[str, Any], indent: int) -> None:
        for k, v in node.items():
            if isinstance(v, dict) and v:
                lines.append(f"{' ' * indent}{k}:")
                emit(v, indent + 2)
            else:
                lines.append(f"{' ' * indent}{k}: {_scalar(v)}{_rounded(v)}")

    emit(tree, 0)
    return "\n".join(line for line in lines if line) + "\n"


def write_best(study: optuna.Study, trial: Optional[FrozenTrial], out: Path) -> None:
    """Write ``out/best.yaml`` and its runnable copy (atomic replaces; nothing before a trial completed)."""
    if trial is None:
        return
    text = best_text(study, trial, out)
    atomic_write_text(out / BEST_FILE, text)
    runnable = out / CONF_DIR / "experiment" / f"{experiment_name(study.study_name)}.yaml"
    runnable.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(runnable, text)
