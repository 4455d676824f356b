"""Data sources by name: ``data.source=<name>`` is read by the module ``gru_exp.data.<name>``
(imdb, folder, table), so a new source is one module here plus its name in the register
(:class:`gru_exp.config.choices.DataSource`). Each source module has two functions:

- ``find(data) -> DataFiles``: the files it will read, checked (present, readable) before anything
  is written; their SHA-256 is the data's identity (run record, resume check, studies);
- ``load(data, found) -> TokenArrays``: the parsed token ids (cached by that SHA-256 and every
  option that changes them), raising :class:`~gru_exp.errors.DataError` for bad data.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace
from typing import Any, Optional

from gru_exp.config.choices import DataSource
from gru_exp.data.cache import DataFiles
from gru_exp.data.tokens import TokenArrays
from gru_exp.errors import DataError


def source_module(data: Any) -> ModuleType:
    """The module that reads ``data.source`` (an older config without the knob: imdb)."""
    return importlib.import_module(f"gru_exp.data.{DataSource(str(getattr(data, 'source', 'imdb'))).value}")


def find(data: Any) -> DataFiles:
    """The files ``data`` (``cfg.data``) names, checked; DataError (one paragraph) when missing."""
    return source_module(data).find(data)


def load(data: Any, found: DataFiles) -> TokenArrays:
    """The parsed texts of ``found``."""
    return source_module(data).load(data, found)


def recorded_paths(data: Any, found: DataFiles) -> dict[str, str]:
    """The ``data`` knobs naming ``found``'s files, as absolute paths, for the run's recorded config
    (a bare resume from any folder finds them): the table's files, the folder source's root. The
    imdb source's path is recorded as given."""
    source = DataSource(str(getattr(data, "source", "imdb")))
    if source == DataSource.table:
        return {f"{split}_file": str(path) for split, path in found.files.items()}
    if source == DataSource.folder:
        return {"path": found.what}
    return {}


def is_download(data: Any) -> bool:
    """Whether ``data`` is paddle's download of IMDB (the imdb source without data.path): no file
    here to check or hash."""
    return str(getattr(data, "source", "imdb")) == DataSource.imdb and not getattr(data, "path", None)


def check_files(data: Any) -> None:
    """DataError (one paragraph) when the files ``data`` names are missing or unreadable; nothing to
    check for paddle's download."""
    if not is_download(data):
        find(data)


def present(data: Any) -> Optional[DataFiles]:
    """The files ``data`` names when they are all there (never a download), else None: for checks
    that compare the data with a record's (resume, a study's identity). ``data`` may be plain."""
    if isinstance(data, dict):
        data = SimpleNamespace(**data)
    if is_download(data):
        return None  # paddle's download: not here to compare
    try:
        return find(data)
    except DataError:
        return None
