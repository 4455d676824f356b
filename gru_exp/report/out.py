"""Where ``report --out`` may write: never into a folder gru-exp owns and rewrites or deletes whole
(a run or trial folder, another study's folder, a best_so_far or baseline folder, the dashboard
folder), where the report would be lost or would corrupt the folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from gru_exp.config.paths import BASELINE_MARK, VIEW_DIR, run_folder_around
from gru_exp.errors import GruExpError
from gru_exp.sweep.study_file import is_study_folder, study_folder_around

log = logging.getLogger(__name__)
ALLOWED = ("give a new folder or one of your own, e.g. --out outputs/reports/<name> (not a run or trial folder or "
           "inside one, not another study's folder or anything inside a study's folder, not a best_so_far, baseline or "
           "dashboard vdl/ folder)")


def _owner(path: Path, study_home: Optional[Path], output_dir: Path, baseline_dir: Path) -> Optional[str]:
    """What gru-exp folder ``path`` (absolute, resolved) is or is inside, described; None if none."""
    run = run_folder_around(path)
    if run is not None:
        return f"is inside the run folder {run}" if run != path else "is a run folder (it holds metrics.json)"
    if is_study_folder(path) and (study_home is None or path != study_home):
        return "is a study's folder (it holds study.json) other than the one reported"
    for folder in (path, *path.parents):
        if folder.name == "best_so_far" and is_study_folder(folder.parent):
            return f"is in {folder}, the study's best-so-far curve, which each trial replaces whole"
        if folder.name == "baseline" and is_study_folder(folder.parent):
            return f"is in {folder}, the study's notebook baseline, which gru-exp rewrites"
        if (folder / BASELINE_MARK).is_file():
            return f"is in {folder}, the notebook baseline run, which gru-exp rewrites"
    study = study_folder_around(path)
    if study is not None:
        return f"is inside the study folder {study}, where the sweep makes its trial_<n> folders and rewrites its files"
    for owned, what in ((baseline_dir, "the baseline folder (paths.baseline_dir)"),
                        (output_dir / VIEW_DIR, "the dashboard folder (links to runs only)")):
        if path == owned or owned in path.parents:
            return f"is in {owned}, {what}"
    return None


def check_out(out: Path, study_home: Optional[Path], output_dir: Path, baseline_dir: Path) -> None:
    """GruExpError (one paragraph) when ``--out`` ``out`` is a folder gru-exp owns; ``study_home`` is
    the study folder being reported (its own folder is allowed), None for run folders."""
    resolved = lambda p: Path(p).expanduser().resolve()  # noqa: E731 - links lead where they point
    problem = _owner(resolved(out), resolved(study_home) if study_home else None, resolved(output_dir),
                     resolved(baseline_dir))
    if problem:
        raise GruExpError(f"--out {out} {problem}: a report there would be lost or would change what gru-exp "
                          f"keeps there; {ALLOWED}. Nothing was written.")
