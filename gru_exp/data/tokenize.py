"""Tokenizers: text bytes to a list of tokens, chosen by the data knobs (the same for training,
evaluation and prediction)."""

from __future__ import annotations

import string
from typing import Any, Callable

_PUNCTUATION = string.punctuation.encode("latin-1")


def tokenize(raw: bytes) -> list[bytes]:
    """paddle's Imdb tokenizer: strip trailing newlines, drop ASCII punctuation, lowercase, split."""
    return raw.rstrip(b"\n\r").translate(None, _PUNCTUATION).lower().split()


def tokenizer(data: Any) -> Callable[[bytes], list[bytes]]:
    """The tokenizer the data knobs (``cfg.data``) choose: paddle's IMDB word tokenizer."""
    return tokenize
