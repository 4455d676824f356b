"""Parsed datasets cached on disk: an ``.npz`` of the token arrays beside a ``.json`` of what made it
(the source's SHA-256 and every option that changes the ids) with the ``.npz``'s own checksum, so
a damaged entry is rebuilt instead of used; the SHA-256 of a data file, read once per process, and
of a source's files together (:class:`DataFiles`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from gru_exp.data.tokens import TokenArrays
from gru_exp.errors import DataError
from gru_exp.files import write_json

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: the review ids of the file names


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple, str] = {}


def archive_sha256(path: Path) -> str:
    """A data file's SHA-256, read once per process while the file stays the same (its path, inode,
    size and modification time): one command checks a resume, loads the data and records the run
    with it, and a sweep worker does so for every trial."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(Path(path))
    return _DIGESTS[key]


@dataclass
class DataFiles:
    """What a source reads (found and checked before anything is written): its files by a stable
    name (a role or a path relative to the source's root) and how the record names them."""

    what: str
    files: dict[str, Path]
    skipped: list[str] = field(default_factory=list)  # files found but not read (the source logs them)

    def sha256(self) -> str:
        """The data's identity: a single file's SHA-256, else the SHA-256 of every name and file SHA-256;
        DataError when a file found is gone or unreadable since."""
        try:
            if len(self.files) == 1:
                return archive_sha256(next(iter(self.files.values())))
            listing = "".join(f"{name}\0{archive_sha256(path)}\n" for name, path in sorted(self.files.items()))
        except OSError as exc:
            raise changed_while_read(self.what, f"{exc.filename or exc}: {exc.strerror or exc}") from None
        return hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()


def options_key(meta: dict) -> str:
    """16 hex digits naming a cache entry by everything in ``meta`` (the data's SHA-256 and options)."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_cache(arrays: TokenArrays, npz: Path, meta: dict) -> None:
    npz.parent.mkdir(parents=True, exist_ok=True)
    payload = {"words": np.frombuffer(b"\n".join(arrays.words), dtype=np.uint8)}
    for split in ("train", "test"):
        payload[f"{split}_ids"] = arrays.ids[split]
        payload[f"{split}_offsets"] = arrays.offsets[split]
        payload[f"{split}_labels"] = arrays.labels[split]
        payload[f"{split}_review_ids"] = arrays.review_ids[split]
        if split in arrays.groups:
            payload[f"{split}_groups"] = arrays.groups[split]
    if arrays.class_names != ["pos", "neg"] or arrays.test_from:  # IMDB's entries stay as they were
        meta = {**meta, "class_names": arrays.class_names, "test_from": arrays.test_from}
    tmp = npz.with_name(f"{npz.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **payload)
        meta = {**meta, "npz_sha256": file_sha256(tmp)}
        os.replace(tmp, npz)  # atomic: concurrent readers see the old or the new file, never half
    except BaseException:
        tmp.unlink(missing_ok=True)  # disk full or a signal: this call's own temporary file goes
        raise
    write_json(npz.with_suffix(".json"), meta)  # last: an entry counts only once its checksum is there


def changed_while_read(what: str, detail: str) -> DataError:
    """The refusal of data that changed while it was read (``detail``: how)."""
    return DataError(f"{what} changed while it was being read ({detail}); nothing was cached or trained on. Run "
                     "again once it is no longer being written.")


def unchanged_while_read(what: str, before: str, now: Callable[[], str]) -> None:
    """DataError when the data's SHA-256 ``now()`` after parsing is not the one it had ``before``:
    the file was replaced, written or removed meanwhile, so the texts parsed are not the data the
    run and the cache entry are named by (a cache entry of other texts would relabel every later run)."""
    try:
        after = now()
    except OSError as exc:  # removed or unreadable since
        after = f"none ({exc.strerror or exc})"
    if after != before:
        raise changed_while_read(what, f"SHA-256 {before[:12]} when the read began, {after[:12]} when it ended: "
                                       "replaced, written or removed meanwhile")


def cached(npz: Path, meta: dict, build: Callable[[], TokenArrays], what: str,
           identity: Optional[Callable[[], str]] = None) -> TokenArrays:
    """The arrays of the cache entry ``npz`` when valid, else ``build()``'s, saved there (a cache that
    cannot be written is a warning: the run goes on without it). ``identity``: the data's SHA-256
    read again after ``build``, which must still be ``meta["data_sha256"]`` (:func:`unchanged_while_read`)."""
    start = time.perf_counter()
    arrays = load_cache(npz)
    if arrays is not None:
        log.info("%s loaded from cache %s in %.2f s", what, npz, time.perf_counter() - start)
        return arrays
    log.info("Parsing %s; the result is cached for next time", what)
    arrays = build()
    if identity is not None:
        unchanged_while_read(what, meta["data_sha256"], identity)
    try:
        save_cache(arrays, npz, {"format": CACHE_FORMAT, **meta})
    except OSError as exc:
        log.warning("Could not write the cache %s (%s); continuing without it", npz, exc)
    log.info("%s parsed in %.1f s: %d train / %d test texts, %d classes, %d words in the vocabulary", what,
             time.perf_counter() - start, len(arrays.labels["train"]), len(arrays.labels["test"]),
             arrays.num_classes, len(arrays.words))
    return arrays


def load_cache(npz: Path) -> Optional[TokenArrays]:
    """The cached arrays, or None when absent or damaged (checksum, format or shape mismatch)."""
    meta_path = npz.with_suffix(".json")
    if not npz.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != CACHE_FORMAT or meta.get("npz_sha256") != file_sha256(npz):
            raise ValueError("checksum or format mismatch")
        with np.load(npz, allow_pickle=False) as z:
            raw_words = z["words"].tobytes()
            arrays = TokenArrays(
                ids={s: z[f"{s}_ids"] for s in ("train", "test")},
                offsets={s: z[f"{s}_offsets"] for s in ("train", "test")},
                labels={s: z[f"{s}_labels"] for s in ("train", "test")},
                words=raw_words.split(b"\n") if raw_words else [],
                review_ids={s: z[f"{s}_review_ids"] for s in ("train", "test")},
                groups={s: z[f"{s}_groups"] for s in ("train", "test") if f"{s}_groups" in z.files},
            )
            if "class_names" in meta:
                arrays.class_names, arrays.test_from = list(meta["class_names"]), str(meta.get("test_from", ""))
        for s in ("train", "test"):
            if (arrays.offsets[s][-1] != len(arrays.ids[s]) or len(arrays.labels[s]) + 1 != len(arrays.offsets[s])
                    or len(arrays.review_ids[s]) != len(arrays.labels[s])):
                raise ValueError(f"inconsistent {s} arrays")
        if any(len(arrays.labels[s]) and (arrays.labels[s].max() >= arrays.num_classes or arrays.labels[s].min() < 0)
               for s in ("train", "test")):
            raise ValueError("labels outside the class names")
        return arrays
    except Exception as exc:  # any damage means: rebuild
        log.warning("Cache entry %s is damaged (%s): rebuilding it", npz, exc)
        return None
