"""The output folders checked before anything is written: each ``paths.*`` value must be a folder
gru-exp can create and write (not a file such as /dev/null, not under a file, not an unresolved
``${...}`` that Hydra would resolve differently for the run folder and its log, not inside a run
folder), and the baseline folder one that holds nothing but gru-exp's own baseline run (it is the
one folder gru-exp may replace as a whole, so it must never be the outputs folder, the dashboard
folder or a folder of the user's files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

BASELINE_MARK = "gru-exp-baseline.txt"  # written into every baseline run folder: only such a folder is replaced
BASELINE_NAME = "notebook baseline (published)"  # its display name in VisualDL, also in its records
VIEW_DIR = "vdl"  # under paths.output_dir: one readable link per run, served by python -m gru_exp.dashboard
STUDY_FILE = "study.json"  # a study folder's pointer to its study (gru_exp/sweep/study_file.py)
RUN_RECORD = "metrics.json"


def path_problems(cfg: DictConfig) -> list[str]:
    """Why the output folders of ``cfg`` cannot be used (empty when they can)."""
    problems: list[str] = []
    reported: list[str] = []  # one problem per cause: output_dir under a bad root_dir is not repeated
    values = {key: str(cfg.paths[key]) for key in OmegaConf.to_container(cfg.paths, resolve=True)}  # type: ignore[union-attr]
    cache = OmegaConf.select(cfg, "data.cache_dir", default=None)
    empty = [f"paths.{k}" for k, v in sorted(values.items()) if not v.strip()] + (
        ["data.cache_dir"] if cache is not None and not str(cache).strip() else [])
    if empty:  # Path("") is the working folder, and "${paths.root_dir}/outputs" becomes /outputs
        return [f"{', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty: an empty folder path would put outputs in "
                "/ or in the working folder. Give a folder, or leave the key out for its default (under $GRU_EXP_HOME)"]
    for key, text in sorted(values.items(), key=lambda kv: len(kv[1])):
        if any(text.startswith(bad) for bad in reported):
            continue
        name = f"paths.{key}={text!r}"
        path = Path(text).expanduser().absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        run = run_folder_around(path)
        if "${" in text:
            problems.append(f"{name} holds an unresolved '${{...}}' (from $GRU_EXP_HOME?); give a plain folder path")
        elif not existing.is_dir():
            where = "is" if existing == path else f"would be under {existing}, which is"
            problems.append(f"{name} {where} a file, not a folder; outputs need a folder")
        elif not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"{name}: {existing} is not writable by this user")
        elif run is not None:
            problems.append(f"{name} is inside the run folder {run} ({RUN_RECORD}); outputs never go into a run")
        else:
            continue
        reported.append(text)
    return problems + _baseline_problems(values, reported)


def run_folder_around(path: Path) -> Optional[Path]:
    """The run folder (a folder holding a gru-exp run record) that ``path`` is or is inside, if any."""
    for folder in (path, *path.parents):
        try:
            record = json.loads((folder / RUN_RECORD).read_text()) if (folder / RUN_RECORD).is_file() else None
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "config" in record and "series" in record:
            return folder
    return None


def _baseline_problems(values: dict[str, str], reported: list[str]) -> list[str]:
    """paths.baseline_dir: not the folder of another path or above one, not in the dashboard folder,
    and, when it exists, holding nothing but gru-exp's baseline run."""
    text = values.get("baseline_dir")
    if text is None or text in reported:
        return []
    baseline = Path(text).expanduser().absolute()
    for key, other in sorted(values.items()):
        path = Path(other).expanduser().absolute()
        if key != "baseline_dir" and (path == baseline or baseline in path.parents):
            return [f"paths.baseline_dir={text!r} would hold paths.{key}={other!r}; the baseline run gets a folder of "
                    "its own (default: <outputs>/baseline/notebook)"]
    view = Path(values.get("output_dir", "/nonexistent")).expanduser().absolute() / VIEW_DIR
    if baseline == view or view in baseline.parents:
        return [f"paths.baseline_dir={text!r} is in the dashboard folder {view}, which holds only links to runs"]
    problem = baseline_dir_problem(baseline)
    return [f"paths.baseline_dir={text!r}: {problem}"] if problem else []


def holds_only_own_records(folder: Path, mark: str, display_name: str, need_records: bool = True) -> bool:
    """Whether ``folder`` holds one VisualDL run gru-exp wrote and nothing else: regular files only,
    ``vdlrecords.*`` and the ``mark`` file; without the mark (written before marks existed), records
    whose first bytes hold ``display_name`` exactly (length-prefixed, as VisualDL records it)."""
    entries = list(Path(folder).iterdir()) if Path(folder).is_dir() and not Path(folder).is_symlink() else []
    if not entries or any(p.is_symlink() or not p.is_file() for p in entries):
        return False
    records = [p for p in entries if p.name.startswith("vdlrecords.")]
    marked = mark in {p.name for p in entries}
    if len(records) + marked != len(entries) or (need_records and not records):
        return False
    named = bytes([len(display_name.encode())]) + display_name.encode()
    return marked or all(named in p.read_bytes()[:256] for p in records)


def is_baseline_run(logdir: Path) -> bool:
    """Whether ``logdir`` holds gru-exp's baseline run and nothing else (its records and mark, or
    from before the mark, records naming the baseline)."""
    return holds_only_own_records(logdir, BASELINE_MARK, BASELINE_NAME)


def baseline_dir_problem(logdir: Path) -> Optional[str]:
    """Why gru-exp may not (re)write its baseline run in ``logdir`` (None when it may): the folder
    holds files gru-exp did not write there as the baseline, which it never removes."""
    logdir = Path(logdir).absolute()
    if logdir.is_symlink() or (logdir.exists() and not logdir.is_dir()):
        return f"{logdir} is {'a link' if logdir.is_symlink() else 'a file'}, not a folder of gru-exp's baseline run"
    names = sorted(p.name for p in logdir.iterdir()) if logdir.is_dir() else []
    if names and not is_baseline_run(logdir):
        other = [n for n in names if n != BASELINE_MARK and not n.startswith("vdlrecords.")] or names
        return (f"{logdir} already holds {len(names)} entr{'y' if len(names) == 1 else 'ies'} that gru-exp did not "
                f"write there as its baseline run (e.g. {other[0]!r}) and never removes; give a new or empty folder (a "
                f"folder is replaced only when it holds gru-exp's baseline: its VisualDL records and {BASELINE_MARK})")
    run = run_folder_around(logdir)
    return f"{logdir} is inside the run folder {run}; the baseline gets a folder of its own" if run else None


def run_dir_problem(run_dir: Path, cfg: DictConfig) -> Optional[str]:
    """Why ``run_dir`` cannot be a run's folder: it is, or holds, one of the output folders
    (``paths.*``), or it is in the dashboard folder or the baseline folder."""
    run_dir = Path(os.path.abspath(run_dir))
    values = {key: Path(str(cfg.paths[key])).expanduser().absolute() for key in cfg.paths}
    for key, path in sorted(values.items()):
        if path == run_dir or run_dir in path.parents:
            return (f"The run folder {run_dir} would hold paths.{key}={str(path)!r}; a run gets a folder of its own "
                    "(hydra.run.dir=<new folder>)")
    for inside in (values["output_dir"] / VIEW_DIR, values["baseline_dir"]):
        if run_dir == inside or inside in run_dir.parents:
            return f"The run folder {run_dir} is inside {inside}; a run gets a folder of its own (hydra.run.dir=<new folder>)"
    outer = run_folder_around(run_dir.parent)
    study = next((p for p in run_dir.parents if (p / STUDY_FILE).is_file()), None)
    if outer is not None or study is not None:
        what = f"the run folder {outer}" if outer is not None else f"the study folder {study} (its trials are the study's)"
        return (f"The run folder {run_dir} is inside {what}; reports would count it as part of it. A run gets a folder "
                "of its own (hydra.run.dir=<new folder>)")
    return None
