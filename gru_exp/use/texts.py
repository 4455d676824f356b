"""Texts in, token ids out, as training reads them: input files (plain lines, or JSONL, CSV or TSV
with a text column, the format by the suffix as in training) read as bytes, tokenized by the
tokenizer the run's data config chooses, encoded with the run's vocabulary (unknown words ->
<unk>) and cut to ``data.seq_len``, kept as a :class:`~gru_exp.data.splits.Split` so prediction
batches exactly as evaluation does. No paddle."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from gru_exp.config.choices import DataSource
from gru_exp.config.knobs import DataConfig
from gru_exp.data.splits import Split
from gru_exp.data.tokenize import tokenizer
from gru_exp.data.tokens import encode
from gru_exp.errors import GruExpError

FORMATS = ("lines", "jsonl", "csv", "tsv")
SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}


def input_format(source: str, given: Optional[str]) -> str:
    """The input's format: as given, else by the file's suffix as training reads it (.jsonl/.json/
    .ndjson, .csv, .tsv/.tab), else lines."""
    if given:
        return given
    suffix = Path(source).suffix.lower() if source != "-" else ""
    return SUFFIXES.get(suffix, "lines")


def text_column(given: Optional[str], data: DataConfig) -> str:
    """The text's column or key: as given (--text-column), else the run's data.text_column when it
    trained on a table, else "text"."""
    if given:
        return given
    if DataSource(str(getattr(data, "source", "imdb"))) == DataSource.table:
        return str(data.text_column)
    return "text"


def read_bytes(source: str) -> bytes:
    """The whole input (``-``: stdin); GruExpError (one paragraph) when it cannot be read."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise GruExpError(f"The input {source} cannot be read: {exc.strerror or exc}. Give a readable text file (one "
                          "text per line), a .jsonl or .csv file with a text column, or - for stdin.") from None


def parse_texts(data: bytes, fmt: str, column: str, source: str) -> list[bytes]:
    """One text (bytes) per input: each line of a plain file (an empty line is an empty text), or
    ``column`` of each JSONL record (blank lines skipped) or CSV or TSV row (after the header; a TSV
    as training reads it: tab-separated, one line a row, quotes are text)."""
    if fmt == "lines":
        lines = data.split(b"\n")
        return lines[:-1] if lines and lines[-1] == b"" else lines  # no text after the final newline
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GruExpError(f"The input {source} is not UTF-8 ({exc.reason} at byte {exc.start}); {fmt.upper()} input "
                          "must be UTF-8 (plain text lines may be any bytes: --input-format lines).") from None
    if fmt == "jsonl":
        texts = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise GruExpError(f"The input {source}, line {number}, is not JSON ({exc}); JSONL input has one JSON "
                                  f"object per line with the text under {column!r} (--text-column).") from None
            texts.append(_field(record, column, source, f"line {number}"))
        return texts
    if fmt == "tsv":
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or column not in reader.fieldnames:
        names = reader.fieldnames
        found = f"its columns are {', '.join(map(repr, names))}" if names else "it has no header"
        raise GruExpError(f"The input {source} has no column {column!r} in its {fmt.upper()} header ({found}); name "
                          "the text column with --text-column.")
    return [_field(row, column, source, f"row {number}") for number, row in enumerate(reader, 2)]


def _field(record: object, column: str, source: str, where: str) -> bytes:
    value = record.get(column) if isinstance(record, dict) else None
    if not isinstance(value, str):
        keys = ", ".join(map(str, record)) if isinstance(record, dict) else type(record).__name__
        raise GruExpError(f"The input {source}, {where}, has no text under {column!r} (it holds: {keys}); name the "
                          "text column with --text-column.")
    return value.encode("utf-8")


def encode_texts(texts: Sequence[bytes], data: DataConfig, words: Sequence[bytes], pad_id: int) -> Split:
    """``texts`` as a Split: tokenized as the data config says, unknown words <unk>, each cut to its
    first ``data.seq_len`` tokens. A text without tokens (empty, or punctuation only) is one padding
    step, as a review without tokens is in training."""
    tokenize, index = tokenizer(data), {w: i for i, w in enumerate(words)}
    docs = [encode(tokenize(t), index)[: data.seq_len] for t in texts]
    kept = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    tokens = np.fromiter((i for d in docs for i in d), dtype=np.int32, count=int(kept.sum()))
    starts = np.concatenate([[0], np.cumsum(kept)[:-1]]).astype(np.int64) if len(docs) else kept
    return Split(tokens, starts, kept, np.zeros(len(docs), dtype=np.int64), pad_id, data.seq_len)
