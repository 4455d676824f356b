"""The output folders checked before anything is written: each ``paths.*`` value must be a folder
gru-exp can create and write (not a file such as /dev/null, not under a file, not an unresolved
``${...}`` that Hydra would resolve differently for the run folder and its log)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def path_problems(cfg: DictConfig) -> list[str]:
    """Why the output folders of ``cfg`` cannot be used (empty when they can)."""
    problems: list[str] = []
    reported: list[str] = []  # one problem per cause: output_dir under a bad root_dir is not repeated
    values = {key: str(cfg.paths[key]) for key in OmegaConf.to_container(cfg.paths, resolve=True)}  # type: ignore[union-attr]
    for key, text in sorted(values.items(), key=lambda kv: len(kv[1])):
        if any(text.startswith(bad) for bad in reported):
            continue
        name = f"paths.{key}={text!r}"
        path = Path(text).expanduser().absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        if "${" in text:
            problems.append(f"{name} holds an unresolved '${{...}}' (from $GRU_EXP_HOME?); give a plain folder path")
        elif not existing.is_dir():
            where = "is" if existing == path else f"would be under {existing}, which is"
            problems.append(f"{name} {where} a file, not a folder; outputs need a folder")
        elif not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"{name}: {existing} is not writable by this user")
        else:
            continue
        reported.append(text)
    return problems
