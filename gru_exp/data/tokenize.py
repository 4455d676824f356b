"""Tokenizers: text bytes to a list of tokens, chosen by the data knobs (``data.tokenizer``,
``data.lowercase``) in one place, :func:`tokenizer`, the same for training, evaluation and
prediction. Tokens are bytes without whitespace (a vocabulary file holds one per line)."""

from __future__ import annotations

import string
from typing import Any, Callable

from gru_exp.config.choices import Tokenizer

_PUNCTUATION = string.punctuation.encode("latin-1")


def tokenize(raw: bytes) -> list[bytes]:
    """paddle's Imdb tokenizer: strip trailing newlines, drop ASCII punctuation, lowercase, split."""
    return raw.rstrip(b"\n\r").translate(None, _PUNCTUATION).lower().split()


def tokenize_cased(raw: bytes) -> list[bytes]:
    """The words tokenizer without lower-casing (``data.lowercase=false``)."""
    return raw.rstrip(b"\n\r").translate(None, _PUNCTUATION).split()


def chars(raw: bytes) -> list[bytes]:
    """Every character that is not whitespace, a token (UTF-8; text without spaces between words)."""
    return [c.encode("utf-8") for c in raw.decode("utf-8", "replace").lower() if not c.isspace()]


def chars_cased(raw: bytes) -> list[bytes]:
    """The character tokenizer without lower-casing."""
    return [c.encode("utf-8") for c in raw.decode("utf-8", "replace") if not c.isspace()]


_CHOSEN = {(Tokenizer.words, True): tokenize, (Tokenizer.words, False): tokenize_cased,
           (Tokenizer.chars, True): chars, (Tokenizer.chars, False): chars_cased}


def tokenizer(data: Any) -> Callable[[bytes], list[bytes]]:
    """The tokenizer the data knobs (``cfg.data``: ``tokenizer``, ``lowercase``) choose; a config
    without them (written before they existed) gets paddle's IMDB word tokenizer, as it trained with."""
    kind = Tokenizer(str(getattr(data, "tokenizer", Tokenizer.words)))
    return _CHOSEN[(kind, bool(getattr(data, "lowercase", True)))]


def tokenizer_key(data: Any) -> str:
    """What the tokenizer options add to a cache entry's name: "" for the default (words, lower-cased)."""
    kind = Tokenizer(str(getattr(data, "tokenizer", Tokenizer.words)))
    lower = bool(getattr(data, "lowercase", True))
    return ("" if kind == Tokenizer.words else f"-{kind.value}") + ("" if lower else "-cased")
