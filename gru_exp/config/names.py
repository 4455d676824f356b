"""Names that become folders: run folder suffixes built from overrides, cut with a hash when long."""

from __future__ import annotations

import hashlib

MAX_FOLDER_CHARS = 200  # + the time and name prefix stays under the usual 255-byte limit


def folder_name(text: str) -> str:
    """``text`` as a folder name: as is when short, else cut and made unique by a hash of the whole
    (a sweep's best trial has a dozen overrides, more than a file system allows in one name)."""
    text = str(text).replace("/", "%")
    if len(text) <= MAX_FOLDER_CHARS:
        return text
    return f"{text[:MAX_FOLDER_CHARS - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"
