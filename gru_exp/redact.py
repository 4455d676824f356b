"""Keep credentials out of logs, run folders, summaries and error messages: one redaction for a
password wherever it can sit in a URL (``user:secret@``, ``?password=secret``, percent-encoded),
applied to every line and file gru-exp writes that can hold a storage URL.

Not a URL parser on purpose: a password may hold ``@ # : / ?`` or spaces, where parsers (the
standard library's, SQLAlchemy's) split it and would leave the rest in clear. So the password of
``scheme://user:...@host`` runs to the *last* ``@`` that a host follows, and a secret query
parameter's value to the next ``&``, ``#``, quote or line end; masking a little too much is fine.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Any, Iterable, Iterator
from urllib.parse import unquote

MASK = "***"
# Query parameters that carry a secret (libpq, SQLAlchemy dialects, cloud SQL connectors).
SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "secret", "token", "access_token", "api_key",
                           "apikey", "sslpassword", "auth", "credentials"})
# a host (empty for a Unix socket: user:pw@/db?host=/run/postgresql), then any character a host
# cannot hold (or the end): a URL in backticks, brackets or prose is masked too
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]*)(?::\d*)?(?![A-Za-z0-9._~%@-])"
# scheme://user: then anything on the line up to the last @ before a host, but never into another
# URL (a scheme:// after a space, quote, '=' or bracket); a password may hold "://" itself
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*:)(?P<password>(?:(?![\s'\"=(\[<,;]"
                       r"[a-zA-Z][a-zA-Z0-9+.-]*://)[^\n])*)@(?="
                       + _HOST + ")", re.MULTILINE)
_QUERY = re.compile(r"(?P<key>[?&](?P<name>[^=&#?\s'\"]+)=)(?P<value>[^&#'\"\n]*)")
_SECRETS = "|".join(sorted(SECRET_PARAMS))
# outside a query: a libpq keyword/value string (password=abc host=x, or password='a b')
_KEYWORD = re.compile(r"(?i)(?<![\w?&])(?P<key>(?:" + _SECRETS + r")=)(?:'(?:[^'\\]|\\.)*'|[^\s&'\"]+)")


def _query_param(match: re.Match) -> str:
    if unquote(match.group("name")).lower() in SECRET_PARAMS:
        return match.group("key") + MASK
    return match.group("key") + _QUERY.sub(_query_param, match.group("value"))  # a URL inside a value


def redact_urls(text: str) -> str:
    """``text`` with the passwords of URLs masked (userinfo, secret query parameters), and nothing
    else: for everything a command prints, where ``token=x/run1`` may be a folder's name."""
    return _QUERY.sub(_query_param, _USERINFO.sub(rf"\g<head>{MASK}@", str(text)))


def redact(text: str) -> str:
    """``text`` with every password masked: in a URL's userinfo (all of it after ``user:``), in
    a secret query parameter (``password``, ``token``, ... percent-encoded or not, spaces
    included), and as ``password=...`` outside a URL (a driver's error message)."""
    return _KEYWORD.sub(rf"\g<key>{MASK}", redact_urls(text))


def url_password(url: str) -> str | None:
    """The password of ``scheme://user:password@host...`` as this module masks it (to the last
    ``@`` before the host), still percent-encoded; None when the URL has none."""
    match = _USERINFO.match(url)
    return match.group("password") if match else None


def redact_all(items: Iterable[str]) -> list[str]:
    return [redact(item) for item in items]


class RedactedStream:
    """A text stream writing to ``stream`` with every URL's password masked (:func:`redact_urls`: a
    printed path such as ``.../pass=1/run`` stays as it is)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_urls(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Mask passwords in everything printed meanwhile: what Hydra prints itself (``--cfg job``
    shows the storage URL; argparse's "unrecognized arguments" repeats the command line)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactedStream(sys.stdout), RedactedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
