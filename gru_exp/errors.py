"""User-facing errors: each carries one paragraph that names the bad value and what is allowed.

Entry points catch :class:`GruExpError`, print its message and exit non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GruExpError(Exception):
    """A problem the user can fix (bad config, missing data); never a bug."""


class ConfigError(GruExpError):
    """A knob has a value outside what is allowed. ``problems`` lists each one (key=value first)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class DataError(GruExpError):
    """The IMDB archive is missing, unreadable, truncated or not in the aclImdb layout."""


class DiskFullError(GruExpError):
    """A write failed for want of space; what was written before it is intact and the message says
    how to continue."""


class DataChangedError(GruExpError):
    """A study's data is not the data it was made with (the file was edited, replaced or removed
    while the sweep ran): no trial runs on it, and the message says how to continue."""
