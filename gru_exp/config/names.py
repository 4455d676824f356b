"""Names that become folders, checked or made safe in one place: run and study names (validated:
never a path), run folder suffixes built from overrides (made safe: no character that Hydra's
override grammar would need quoted, so a printed folder pastes after ``trainer.resume=``)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Optional

MAX_FOLDER_CHARS = 200  # a multirun job's folder: its number + overrides
# A run folder is "<HH-MM-SS.ffffff>_<name>_<overrides>": 16 characters of time, the rest cut to
# this, so the whole stays under the usual 255-byte limit of a file name (all ASCII here).
MAX_RUN_LEAF_CHARS = 230
MAX_NAME_CHARS = 100  # a run's or study's name
MAX_NAME_BYTES = 255  # as UTF-8: a study's name is its folder's name, and file systems count bytes
# Hydra's unquoted override values allow letters, digits and _-+./\:@%$*?| (not ~); everything else
# (= , [ ] { } ( ) quotes, spaces) becomes "_" in folder suffixes.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-+.@%]")


def folder_name(text: str, limit: int = MAX_FOLDER_CHARS) -> str:
    """Overrides as a folder name suffix: '/' -> '%', characters Hydra's grammar would need
    quoted -> '_', cut with a hash of the whole when long (a sweep's best trial has a dozen overrides)."""
    text = _UNSAFE.sub("_", str(text).replace("/", "%"))
    if len(text) <= limit:
        return text
    return f"{text[:limit - 10]}--{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def run_leaf(name: str, overrides: str = "") -> str:
    """A run folder's name after its time: ``<name>_<overrides>``, made safe and cut as a whole, so
    a long run name plus a dozen overrides still makes a valid folder name."""
    return folder_name(f"{name}_{overrides}" if overrides else str(name), MAX_RUN_LEAF_CHARS)


def name_problem(key: str, name: Optional[str]) -> Optional[str]:
    """Why ``name`` (a study or run name) cannot be a folder name, or None. Letters of any script,
    digits, spaces and punctuation are fine; a path, an empty or dot name, control characters,
    more than MAX_NAME_CHARS characters or more than MAX_NAME_BYTES bytes (UTF-8) are not."""
    allowed = (f"must be 1-{MAX_NAME_CHARS} characters and at most {MAX_NAME_BYTES} bytes as UTF-8 (a non-ASCII "
               "letter takes 2-4), without '/', '\\\\', control characters, and not '.' or '..' (it names a "
               "folder under the outputs)")
    if name is None or not str(name).strip():
        return f"{key}={name!r} is empty: it {allowed}"
    name = str(name)
    too_long = len(name) > MAX_NAME_CHARS or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    if (too_long or "/" in name or "\\" in name or name in (".", "..")
            or name != name.strip() or any(unicodedata.category(c).startswith("C") for c in name)):
        shown = name if len(name) <= 60 else name[:57] + "..."
        return f"{key}={shown!r} {allowed}"
    return None
