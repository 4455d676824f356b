"""The folder source (``data.source=folder``): a folder laid out like aclImdb,
``<data.path>/train/<label>/*.txt`` and optionally ``<data.path>/test/<label>/*.txt``, one text per
file, any labels (the sub-folder names). Without test/, a test part is held out of train."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from gru_exp.data.cache import CACHE_FORMAT, DataFiles, cached, changed_while_read, options_key
from gru_exp.data.texts import READER, Collector, class_key
from gru_exp.data.tokenize import tokenizer
from gru_exp.data.tokens import TokenArrays
from gru_exp.errors import DataError

log = logging.getLogger(__name__)

LAYOUT = "<data.path>/train/<label>/*.txt (and optionally <data.path>/test/<label>/*.txt)"


def _texts(root: Path, split: str, skipped: list[str]) -> dict[str, Path]:
    """Every <split>/<label>/*.txt under ``root`` by its path relative to it, in sorted order. Hidden
    entries (names starting with '.', e.g. .ipynb_checkpoints) are ignored; any other file that is
    not a label folder's *.txt (a.TXT, a file in a label's sub-folder or beside the label folders)
    is added to ``skipped``. DataError for a label folder without texts."""
    files: dict[str, Path] = {}
    for label in sorted((root / split).iterdir()):
        if label.name.startswith("."):
            continue
        if not label.is_dir():
            skipped.append(f"{split}/{label.name}")
            continue
        texts = 0
        for folder, dirs, names in os.walk(label):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if not n.startswith(".")):
                path, relative = Path(folder) / name, Path(folder, name).relative_to(root).as_posix()
                if Path(folder) == label and name.endswith(".txt") and path.is_file():
                    files[relative], texts = path, texts + 1
                else:
                    skipped.append(relative)
        if not texts:
            raise DataError(f"{str(label)!r} holds no texts ({split}/{label.name}/*.txt): every label folder needs at "
                            "least one; add its texts or remove the folder (hidden folders, names starting with '.', "
                            f"are ignored). data.source=folder reads {LAYOUT}.")
    return files


def find(data: Any) -> DataFiles:
    root = Path(str(data.path)).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={data.path!r} is not a folder; data.source=folder reads {LAYOUT}.")
    if not (root / "train").is_dir():
        raise DataError(f"data.path={data.path!r} has no train/ folder; data.source=folder reads {LAYOUT}.")
    skipped: list[str] = []
    files = _texts(root, "train", skipped)
    if not files:
        raise DataError(f"data.path={data.path!r} has no texts under train/<label>/*.txt; data.source=folder reads "
                        f"{LAYOUT}.")
    if (root / "test").is_dir():
        test = _texts(root, "test", skipped)
        if not test:
            raise DataError(f"data.path={data.path!r} has a test/ folder without texts (test/<label>/*.txt); fill it "
                            "or remove it (then a test part is held out of train: data.test_share).")
        _check_scored(data, files, test)
        files.update(test)
    return DataFiles(str(root.resolve()), files, skipped)


def _check_scored(data: Any, train: dict[str, Path], test: dict[str, Path]) -> None:
    """DataError for a label folder under train/ that test/ does not have: that class would be
    trained on but never scored (aclImdb's train/unsup, 50,000 unlabelled reviews, would be its
    largest class)."""
    label = lambda name: name.split("/", 2)[1]  # noqa: E731 - "train/<label>/<file>"
    tested = {label(n) for n in test}
    scored = {class_key(t) for t in tested}  # train/1 and test/1.0 are one class, as the reader counts them
    only = sorted({label(n) for n in train if class_key(label(n)) not in scored})
    if only:
        counts = ", ".join(f"{name!r} ({sum(label(n) == name for n in train)} texts)" for name in only)
        hint = (" (aclImdb's train/unsup holds unlabelled reviews: move it out of the folder)" if "unsup" in only
                else "")
        raise DataError(f"data.path={data.path!r}: train/ has label folder(s) {counts} that test/ does not have "
                        f"(test/ has {', '.join(map(repr, sorted(tested)))}), so that class would be trained on but never "
                        f"scored{hint}. Give test/ a folder of texts for it, or move it out of train/. Nothing was "
                        "written.")


def load(data: Any, found: DataFiles) -> TokenArrays:
    options = {"source": "folder", "reader": READER, "data_sha256": found.sha256(), "cutoff": data.cutoff,
               "tokenizer": str(data.tokenizer), "lowercase": bool(data.lowercase),
               "test_share": None if any(k.startswith("test/") for k in found.files) else data.test_share}
    npz = Path(data.cache_dir) / f"folder-{options_key(options)}-v{CACHE_FORMAT}.npz"
    if found.skipped:
        log.warning("Skipped %d file%s under %s that %s not <split>/<label>/*.txt (e.g. %s); only a label folder's "
                    "*.txt files are texts (hidden entries, names starting with '.', are ignored)", len(found.skipped),
                    "s" if len(found.skipped) > 1 else "", found.what, "are" if len(found.skipped) > 1 else "is",
                    ", ".join(map(repr, found.skipped[:3])))
    return cached(npz, {**options, "folder": found.what}, lambda: parse(data, found), found.what,
                  identity=found.sha256)


def parse(data: Any, found: DataFiles) -> TokenArrays:
    root = found.what
    collector = Collector(tokenizer(data), {"train": f"{root}/train", "test": f"{root}/test"})
    for name, path in found.files.items():
        split, label, _ = name.split("/", 2)
        try:
            raw = path.read_bytes()
        except OSError as exc:  # removed or made unreadable since the folder was listed
            raise changed_while_read(found.what, f"{str(path)!r}: {exc.strerror or exc}") from None
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DataError(f"{str(path)!r}, line {line}: bytes that are not UTF-8 ({raw[exc.start:exc.start + 4]!r}); "
                            "save the file as UTF-8.") from None
        if not raw.strip():
            raise DataError(f"{str(path)!r} is empty: every text file needs a text (remove it or fill it in).")
        collector.add(split, raw, label, str(path))
    return collector.finish(data.cutoff, data.test_share, root)
