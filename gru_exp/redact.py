"""Keep credentials out of logs, run folders, summaries and error messages: one redaction for a
password wherever it can sit in a URL (``user:secret@``, ``?password=secret``, percent-encoded),
applied to every line and file gru-exp writes that can hold a storage URL."""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

MASK = "***"
# Query parameters that carry a secret (libpq, SQLAlchemy dialects, cloud SQL connectors).
SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "secret", "token", "access_token", "api_key",
                           "apikey", "sslpassword", "auth", "credentials"})
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_PARAM = re.compile(r"(?i)(?P<key>\b(?:" + "|".join(sorted(SECRET_PARAMS)) + r")=)[^&\s'\"]+")


def redact_url(url: str) -> str:
    """``url`` with its password (userinfo or secret query parameters) replaced by ``***``.
    Parsed as a URL (the standard library's parser, which SQLAlchemy's follows); a string that
    does not parse is masked by pattern instead."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if colon else netloc
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(unquote(k).lower() in SECRET_PARAMS for k, _ in pairs):
                query = urlencode([(k, MASK if unquote(k).lower() in SECRET_PARAMS else v) for k, v in pairs],
                                  safe="*/:")
        if netloc == parts.netloc and query == parts.query:
            return url
        # By hand, not urlunsplit: that drops the empty host of sqlite:////abs/path.
        return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
                + (f"#{parts.fragment}" if parts.fragment else ""))
    except ValueError:
        return _PARAM.sub(rf"\g<key>{MASK}", _USERINFO.sub(rf"\g<head>{MASK}@", url))


def redact(text: str) -> str:
    """Every URL in ``text`` redacted (:func:`redact_url`), and any ``password=...`` left outside
    a URL (a driver's error message, a DSN string) masked too."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), str(text))
    return _PARAM.sub(rf"\g<key>{MASK}", _USERINFO.sub(rf"\g<head>{MASK}@", text))


def redact_all(items: Iterable[str]) -> list[str]:
    return [redact(item) for item in items]
