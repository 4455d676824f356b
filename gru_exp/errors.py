"""User-facing errors: each carries one paragraph that names the bad value and what is allowed.

Entry points catch :class:`GruExpError`, print its message and exit non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""


class GruExpError(Exception):
    """A problem the user can fix (bad config, missing data); never a bug."""


class ConfigError(GruExpError):
    """A knob has a value outside what is allowed."""


class DataError(GruExpError):
    """The IMDB archive is missing, unreadable, truncated or not in the aclImdb layout."""
