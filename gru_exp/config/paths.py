"""The output folders checked before anything is written: each ``paths.*`` value must be a folder
gru-exp can create and write (not a file such as /dev/null, not under a file, not an unresolved
``${...}`` that Hydra would resolve differently for the run folder and its log), and the baseline
folder one that holds nothing but gru-exp's own baseline run (it is the one folder gru-exp may
replace as a whole, so it must never be the outputs folder or a folder of the user's files)."""

from __future__ import annotations

import os
from pathlib import Path

from typing import Optional

from omegaconf import DictConfig, OmegaConf

BASELINE_MARK = "gru-exp-baseline.txt"  # written into every baseline run folder: only such a folder is replaced


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
    return problems + _baseline_problems(values, reported)


def _baseline_problems(values: dict[str, str], reported: list[str]) -> list[str]:
    """paths.baseline_dir: not the folder of another path or above one, and, when it exists without
    VisualDL records (a run writes it then), free of anything but gru-exp's baseline."""
    text = values.get("baseline_dir")
    if text is None or text in reported:
        return []
    baseline = Path(text).expanduser().absolute()
    for key, other in sorted(values.items()):
        path = Path(other).expanduser().absolute()
        if key != "baseline_dir" and (path == baseline or baseline in path.parents):
            return [f"paths.baseline_dir={text!r} would hold paths.{key}={other!r}; the baseline run gets a folder of "
                    "its own (default: <outputs>/baseline/notebook)"]
    if baseline.is_dir() and any(p.name.startswith("vdlrecords") for p in baseline.iterdir()):
        return []  # a baseline already written there: runs leave it as it is
    problem = baseline_dir_problem(baseline)
    return [f"paths.baseline_dir={text!r}: {problem}"] if problem else []


def baseline_dir_problem(logdir: Path) -> Optional[str]:
    """Why gru-exp may not (re)write its baseline run in ``logdir`` (None when it may): the folder
    holds files gru-exp did not write there as the baseline, which it never removes."""
    logdir = Path(logdir)
    if not os.path.lexists(logdir):
        return None
    if logdir.is_symlink() or not logdir.is_dir():
        return f"{logdir} is {'a link' if logdir.is_symlink() else 'a file'}, not a folder of gru-exp's baseline run"
    names = sorted(p.name for p in logdir.iterdir())
    if not names or (BASELINE_MARK in names and all(n == BASELINE_MARK or n.startswith("vdlrecords") for n in names)):
        return None
    other = [n for n in names if n != BASELINE_MARK and not n.startswith("vdlrecords")] or names
    return (f"{logdir} already holds {len(names)} entr{'y' if len(names) == 1 else 'ies'} that gru-exp did not write "
            f"there as its baseline run (e.g. {other[0]!r}) and never removes; give a new or empty folder (a folder "
            f"is replaced only when it holds gru-exp's baseline: VisualDL records and {BASELINE_MARK})")
