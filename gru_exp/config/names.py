"""Names that become folders, checked or made safe in one place: run and study names (validated:
never a path), run folder suffixes built from overrides (made safe: no character that Hydra's
override grammar would need quoted, so a printed folder pastes after ``trainer.resume=``)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Optional

MAX_FOLDER_CHARS = 200  # + the time and name prefix stays under the usual 255-byte limit
MAX_NAME_CHARS = 100  # a run's or study's name
# Hydra's unquoted override values allow letters, digits and _-+./\:~@%$*?|; everything else
# (= , [ ] { } ( ) quotes, spaces) becomes "_" in folder suffixes.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-+.~@%]")


def folder_name(text: str) -> str:
    """Overrides as a folder name suffix: '/' -> '%', characters Hydra's grammar would need
    quoted -> '_', cut with a hash of the whole when long (a sweep's best trial has a dozen overrides)."""
    text = _UNSAFE.sub("_", str(text).replace("/", "%"))
    if len(text) <= MAX_FOLDER_CHARS:
        return text
    return f"{text[:MAX_FOLDER_CHARS - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def name_problem(key: str, name: Optional[str]) -> Optional[str]:
    """Why ``name`` (a study or run name) cannot be a folder name, or None. Letters of any script,
    digits, spaces and punctuation are fine; a path, an empty or dot name, control characters or
    more than MAX_NAME_CHARS characters are not."""
    allowed = (f"must be 1-{MAX_NAME_CHARS} characters without '/', '\\\\', control characters, and not "
               "'.' or '..' (it names a folder under the outputs)")
    if name is None or not str(name).strip():
        return f"{key}={name!r} is empty: it {allowed}"
    name = str(name)
    if (len(name) > MAX_NAME_CHARS or "/" in name or "\\" in name or name in (".", "..")
            or name != name.strip() or any(unicodedata.category(c).startswith("C") for c in name)):
        shown = name if len(name) <= 60 else name[:57] + "..."
        return f"{key}={shown!r} {allowed}"
    return None
