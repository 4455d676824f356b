"""The table source (``data.source=table``): texts and labels in CSV, TSV or JSONL files
(``data.train_file``, optional ``data.test_file``), streamed line by line (memory follows the
token ids, not the text), with every problem named by file and line (docs/your-data.md)."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from gru_exp.config.choices import DataFormat
from gru_exp.data.cache import CACHE_FORMAT, DataFiles, archive_sha256, cached, options_key
from gru_exp.data.texts import READER, Collector
from gru_exp.data.tokenize import tokenizer
from gru_exp.data.tokens import TokenArrays
from gru_exp.errors import DataError

SUFFIXES = {".csv": DataFormat.csv, ".tsv": DataFormat.tsv, ".tab": DataFormat.tsv, ".jsonl": DataFormat.jsonl,
            ".ndjson": DataFormat.jsonl}
log = logging.getLogger(__name__)

MAX_FIELD = 1 << 30  # characters in one CSV field (Python's csv stops at 131,072 by default)
BIG_FIELD = 1 << 20  # a CSV field longer than this is reported (a stray quote that swallowed the file?)
MERGED_ROWS = 3  # inner lines of one quoted CSV field that read as whole rows: refused as a stray quote


def _file(key: str, value: Optional[str]) -> Path:
    p = Path(str(value)).expanduser()
    if not p.is_file():
        where = "" if p.is_absolute() else (f", here {os.getcwd()!r}; a run records its files' absolute paths, so "
                                            "its resume finds them from any folder")
        raise DataError(f"data.{key}={value!r}: no such file. Give the path of a .csv, .tsv or .jsonl file "
                        f"(relative paths are read from the folder the command runs in{where}).")
    if not os.access(p, os.R_OK):
        raise DataError(f"data.{key}={value!r} exists but is not readable (check its permissions).")
    return p.resolve()


def find(data: Any) -> DataFiles:
    files = {"train": _file("train_file", data.train_file)}
    if data.test_file:
        files["test"] = _file("test_file", data.test_file)
    for key, path in files.items():
        file_format(data, key, path)
    if "test" in files:
        _not_the_training_file(data, files["train"], files["test"])
    return DataFiles(" and ".join(str(p) for p in files.values()), files)


def _not_the_training_file(data: Any, train: Path, test: Path) -> None:
    """DataError when the test file is the training file (one resolved path, or the same SHA-256)."""
    if test == train:
        same = "the same file as"
    elif archive_sha256(test) == archive_sha256(train):
        same = f"a copy (the same SHA-256, {archive_sha256(test)[:12]}...) of"
    else:
        return
    raise DataError(f"data.test_file={data.test_file!r} is {same} data.train_file={data.train_file!r} "
                    f"({str(train)!r}): the test score would be measured on training texts. Give a test file of other "
                    "texts, or no data.test_file (then data.test_share of the training texts is held out for test).")


def file_format(data: Any, key: str, path: Path) -> DataFormat:
    """The file's format: data.format, or by its suffix with data.format=auto."""
    chosen = DataFormat(str(data.format))
    if chosen != DataFormat.auto:
        return chosen
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"data.{key}_file={str(path)!r}: its suffix {path.suffix!r} does not say its format; name it "
                        ".csv, .tsv or .jsonl, or set data.format=csv|tsv|jsonl.")
    return SUFFIXES[path.suffix.lower()]


def load(data: Any, found: DataFiles) -> TokenArrays:
    options = {"source": "table", "reader": READER, "data_sha256": found.sha256(), "cutoff": data.cutoff,
               "formats": {k: file_format(data, k, p).value for k, p in found.files.items()},
               "text_column": data.text_column, "label_column": data.label_column, "group_column": data.group_column,
               "tokenizer": str(data.tokenizer), "lowercase": bool(data.lowercase),
               "test_share": None if "test" in found.files else data.test_share}
    npz = Path(data.cache_dir) / f"table-{options_key(options)}-v{CACHE_FORMAT}.npz"
    return cached(npz, {**options, "files": found.what}, lambda: parse(data, found), found.what,
                  identity=found.sha256)


def parse(data: Any, found: DataFiles) -> TokenArrays:
    names = {split: str(path) for split, path in found.files.items()}
    collector = Collector(tokenizer(data), {"test": names.get("test", ""), **names})
    for split, path in found.files.items():
        fmt = file_format(data, split, path)
        rows = _jsonl(path, data) if fmt == DataFormat.jsonl else _delimited(path, data, fmt)
        for line, text, label, group in rows:
            collector.add(split, text.encode("utf-8"), label, line, group)
        if collector.count(split) == 0:
            raise DataError(f"{str(path)!r} has {'a header but ' if fmt != DataFormat.jsonl else ''}no rows: "
                            "there are no texts to train or test on.")
    return collector.finish(data.cutoff, data.test_share, found.what)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file read line by line; DataError naming the line of bytes
    that are not UTF-8. A UTF-8 byte-order mark (Excel) is dropped."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{str(path)!r}, line {number}: bytes that are not UTF-8 ({raw[exc.start:exc.start + 4]!r} "
                                f"at character {exc.start + 1}); save the file as UTF-8.") from None
            yield number, text.lstrip("\ufeff") if number == 1 else text


def _row(path: Path, line: int, text: Any, label: Any, group: Any, data: Any) -> tuple[int, str, str, Optional[str]]:
    where = f"{str(path)!r}, line {line}"
    if not isinstance(text, str):
        raise DataError(f"{where}: the text (data.text_column={data.text_column}) is {json.dumps(text)}, not a string.")
    if not text.strip():
        raise DataError(f"{where}: the text (data.text_column={data.text_column}) is empty; every row needs a text "
                        "(remove the row or fill it in).")
    if isinstance(label, bool):
        label = "true" if label else "false"
    elif isinstance(label, (int, float)):
        label = json.dumps(label)
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{where}: the label (data.label_column={data.label_column}) is "
                        f"{'empty' if label in ('', None) or isinstance(label, str) else json.dumps(label)}; every "
                        "row needs a label, a string or a number.")
    if data.group_column and (group is None or str(group).strip() == ""):
        raise DataError(f"{where}: the group (data.group_column={data.group_column}) is empty.")
    return line, text, label.strip(), None if not data.group_column else str(group)


def _delimited(path: Path, data: Any, fmt: DataFormat) -> Iterator[tuple[int, str, str, Optional[str]]]:
    csv.field_size_limit(MAX_FIELD)
    lines = _lines(path)
    numbers: list[int] = [0]

    def texts() -> Iterator[str]:
        for number, text in lines:
            numbers[0] = number
            yield text

    if fmt == DataFormat.tsv:  # one line a row, quotes kept as text: what most TSV writers mean
        reader = csv.reader(texts(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(texts(), delimiter=",")
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{str(path)!r} is empty: expected a header line naming the columns "
                            f"(e.g. {data.text_column},{data.label_column}) and one row per text.")
        wanted = [c for c in (data.text_column, data.label_column, data.group_column) if c]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(f"{str(path)!r}, line 1: no column {', '.join(map(repr, missing))}; its header has "
                            f"{', '.join(map(repr, header))}. Set data.text_column / data.label_column / "
                            "data.group_column to the header's names.")
        at = {c: header.index(c) for c in wanted}
        while True:
            start = numbers[0] + 1
            row = next(reader, None)
            if row is None:
                break
            if not row:
                continue  # a blank line
            if numbers[0] > start:
                _check_spanning(path, row, len(header), start, numbers[0])
            if len(row) != len(header):
                why = "a tab inside a text" if fmt == DataFormat.tsv else "a CSV quoting problem"
                raise DataError(f"{str(path)!r}, line {numbers[0]}: {len(row)} fields, but the header has "
                                f"{len(header)} ({why} or a missing field?).")
            group = row[at[data.group_column]] if data.group_column else None
            yield _row(path, numbers[0], row[at[data.text_column]], row[at[data.label_column]], group, data)
    except csv.Error as exc:
        raise DataError(f"{str(path)!r}, line {numbers[0]}: not readable as {fmt.value.upper()}: {exc}.") from None


def _check_spanning(path: Path, row: list[str], width: int, first: int, last: int) -> None:
    """A CSV row whose quoted field spans lines ``first``..``last``: DataError when that field holds
    ``MERGED_ROWS`` or more lines that read as rows of their own (a stray '"' that swallowed the rows
    after it); a WARNING when a field is longer than ``BIG_FIELD`` characters."""
    for field in row:
        if "\n" not in field:
            continue
        inner = [line for line in field.split("\n")[1:] if len(next(csv.reader([line]), [])) == width]
        if len(inner) >= MERGED_ROWS:
            raise DataError(f"{str(path)!r}, lines {first}-{last}: one quoted field spans {last - first + 1} lines, "
                            f"and {len(inner)} of them read as rows of their own ({width} fields, as the header), "
                            f"e.g. {inner[0][:60]!r}: a stray '\"' at line {first} opens a quote that runs to line "
                            f"{last}? Double a quote inside a quoted text (\"\"), or remove the stray one.")
        if len(field) > BIG_FIELD:
            log.warning("%r, lines %d-%d: one quoted field of %d characters spans %d lines (a stray '\"' at line %d?)",
                        str(path), first, last, len(field), last - first + 1, first)


def _jsonl(path: Path, data: Any) -> Iterator[tuple[int, str, str, Optional[str]]]:
    empty = True
    for number, text in _lines(path):
        if not text.strip():
            continue
        empty = False
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(path)!r}, line {number}: not JSON ({exc.msg} at character {exc.colno}); a "
                            "JSONL file holds one JSON object per line.") from None
        if not isinstance(obj, dict):
            raise DataError(f"{str(path)!r}, line {number}: a JSON {type(obj).__name__}, not an object.")
        missing = [c for c in (data.text_column, data.label_column, data.group_column) if c and c not in obj]
        if missing:
            raise DataError(f"{str(path)!r}, line {number}: no key {', '.join(map(repr, missing))}; it has "
                            f"{', '.join(map(repr, obj)) or 'none'}. Set data.text_column / data.label_column / "
                            "data.group_column to its keys.")
        yield _row(path, number, obj[data.text_column], obj[data.label_column],
                   obj.get(data.group_column) if data.group_column else None, data)
    if empty:
        raise DataError(f"{str(path)!r} is empty: expected one JSON object per line, e.g. "
                        f'{{"{data.text_column}": "...", "{data.label_column}": "..."}}.')
