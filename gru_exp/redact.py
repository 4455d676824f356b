"""Keep credentials out of logs, run folders and summaries."""

from __future__ import annotations

import re
from typing import Iterable

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")


def redact(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``, anywhere in ``text``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def redact_all(items: Iterable[str]) -> list[str]:
    return [redact(item) for item in items]
