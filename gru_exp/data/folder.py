"""The folder source (``data.source=folder``): a folder laid out like aclImdb,
``<data.path>/train/<label>/*.txt`` and optionally ``<data.path>/test/<label>/*.txt``, one text per
file, any labels (the sub-folder names). Without test/, a test part is held out of train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gru_exp.data.cache import CACHE_FORMAT, DataFiles, cached, options_key
from gru_exp.data.texts import Collector
from gru_exp.data.tokenize import tokenizer
from gru_exp.data.tokens import TokenArrays
from gru_exp.errors import DataError

LAYOUT = "<data.path>/train/<label>/*.txt (and optionally <data.path>/test/<label>/*.txt)"


def _texts(root: Path, split: str) -> dict[str, Path]:
    """Every <split>/<label>/*.txt under ``root`` by its path relative to it, in sorted order."""
    return {f"{split}/{label.name}/{f.name}": f for label in sorted((root / split).iterdir()) if label.is_dir()
            for f in sorted(label.glob("*.txt")) if f.is_file()}


def find(data: Any) -> DataFiles:
    root = Path(str(data.path)).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={data.path!r} is not a folder; data.source=folder reads {LAYOUT}.")
    if not (root / "train").is_dir():
        raise DataError(f"data.path={data.path!r} has no train/ folder; data.source=folder reads {LAYOUT}.")
    files = _texts(root, "train")
    if not files:
        raise DataError(f"data.path={data.path!r} has no texts under train/<label>/*.txt; data.source=folder reads "
                        f"{LAYOUT}.")
    if (root / "test").is_dir():
        test = _texts(root, "test")
        if not test:
            raise DataError(f"data.path={data.path!r} has a test/ folder without texts (test/<label>/*.txt); fill it "
                            "or remove it (then a test part is held out of train: data.test_share).")
        files.update(test)
    return DataFiles(str(root.resolve()), files)


def load(data: Any, found: DataFiles) -> TokenArrays:
    options = {"source": "folder", "data_sha256": found.sha256(), "cutoff": data.cutoff,
               "tokenizer": str(data.tokenizer), "lowercase": bool(data.lowercase),
               "test_share": None if any(k.startswith("test/") for k in found.files) else data.test_share}
    npz = Path(data.cache_dir) / f"folder-{options_key(options)}-v{CACHE_FORMAT}.npz"
    return cached(npz, {**options, "folder": found.what}, lambda: parse(data, found), found.what)


def parse(data: Any, found: DataFiles) -> TokenArrays:
    root = found.what
    collector = Collector(tokenizer(data), {"train": f"{root}/train", "test": f"{root}/test"})
    for name, path in found.files.items():
        split, label, _ = name.split("/", 2)
        raw = path.read_bytes()
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
