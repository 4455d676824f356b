"""``study.json``, a study folder's pointer to its study: the study's name, its storage URL (the
password redacted) and its id. The one writer and reader of the file (paddle- and optuna-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from gru_exp.config.paths import STUDY_FILE
from gru_exp.files import write_json


def study_dir(sc: Any) -> Path:
    """A sweep's study folder: ``paths.sweeps_dir``/``study_name``."""
    return Path(sc.paths.sweeps_dir) / sc.study_name


def is_study_folder(folder: Path) -> bool:
    """Whether ``folder`` is a study's folder (it holds study.json)."""
    return (Path(folder) / STUDY_FILE).is_file()


def study_folder_around(path: Path) -> Optional[Path]:
    """The study folder (holding study.json) that ``path`` is inside (strictly), if any: where the
    sweep makes its trial_<n> folders and rewrites its own files."""
    for folder in Path(path).parents:
        if is_study_folder(folder):
            return folder
    return None


def write_pointer(folder: Path, study_name: str, storage: str, uid: str) -> None:
    write_json(Path(folder) / STUDY_FILE, {"study_name": study_name, "storage": storage, "uid": uid})


def read_pointer(folder: Path) -> Optional[dict]:
    """The pointer in ``folder`` (a dict with study_name, storage and, since study ids, uid); None
    when the folder has none; ValueError naming what is wrong when the file is not a pointer."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        return None
    try:
        pointer = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a study pointer ({type(exc).__name__}: {exc})") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("study_name"), str) or \
            not isinstance(pointer.get("storage"), str):
        raise ValueError(f"{path} is not a study pointer (no study_name and storage)")
    return pointer
