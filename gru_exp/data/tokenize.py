"""Tokenizers: text bytes to a list of tokens."""

from __future__ import annotations

import string

_PUNCTUATION = string.punctuation.encode("latin-1")


def tokenize(raw: bytes) -> list[bytes]:
    """paddle's Imdb tokenizer: strip trailing newlines, drop ASCII punctuation, lowercase, split."""
    return raw.rstrip(b"\n\r").translate(None, _PUNCTUATION).lower().split()
