"""The IMDB archive as cached token ids: paddle's exact tokenizer and vocabulary.

The archive is parsed once (tokens and vocabulary identical to ``paddle.text.datasets.Imdb``),
then the token ids are cached on disk keyed by the archive's SHA-256 and the cutoff, with a
checksum so a damaged cache entry is rebuilt instead of used.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import string
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from gru_exp.errors import DataError
from gru_exp.files import write_json

log = logging.getLogger(__name__)

PADDLE_URL = "https://dataset.bj.bcebos.com/imdb%2FaclImdb_v1.tar.gz"
PADDLE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
CACHE_FORMAT = 2  # 2: the review ids of the file names
_DOC = re.compile(r"aclImdb/(train|test)/(pos|neg)/.*\.txt$")  # paddle's patterns, as one
_REVIEW_ID = re.compile(r"/(\d+)_\d+\.txt$")  # <id>_<rating>.txt
_PUNCTUATION = string.punctuation.encode("latin-1")
LABELS = {"pos": 0, "neg": 1}  # paddle's Imdb labels: pos -> 0, neg -> 1
HOW_TO_SET = (
    "Set data.path=/path/to/aclImdb_v1.tar.gz on the command line or export "
    "GRU_EXP_IMDB=/path/to/aclImdb_v1.tar.gz"
)


def tokenize(raw: bytes) -> list[bytes]:
    """paddle's Imdb tokenizer: strip trailing newlines, drop ASCII punctuation, lowercase, split."""
    return raw.rstrip(b"\n\r").translate(None, _PUNCTUATION).lower().split()


def resolve_archive(path: Optional[str]) -> Path:
    """The archive to read: ``path`` if given (must be a readable file), else paddle's download."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"data.path={path!r}: no such file. {HOW_TO_SET}.")
        if not os.access(p, os.R_OK):
            raise DataError(f"data.path={path!r} exists but is not readable (check its permissions).")
        return p.resolve()
    log.info("data.path and GRU_EXP_IMDB are unset: trying paddle's download of %s", PADDLE_URL)
    try:
        from paddle.dataset.common import download

        return Path(download(PADDLE_URL, "imdb", PADDLE_MD5))
    except Exception as exc:  # no network, bad checksum, ...: all the same to the user
        raise DataError(
            f"data.path is null and GRU_EXP_IMDB is unset, and paddle's download of {PADDLE_URL} "
            f"failed ({type(exc).__name__}: {exc}). {HOW_TO_SET}."
        ) from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_ARCHIVE_DIGESTS: dict[tuple, str] = {}


def archive_sha256(path: Path) -> str:
    """The archive's SHA-256, read once per process while the file stays the same (its path, inode,
    size and modification time): one command checks a resume, loads the data and records the run
    with it, and a sweep worker does so for every trial."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _ARCHIVE_DIGESTS:
        _ARCHIVE_DIGESTS[key] = file_sha256(Path(path))
    return _ARCHIVE_DIGESTS[key]


@dataclass
class ImdbArrays:
    """Token ids of every review, flat with offsets, per split ('train', 'test')."""

    ids: dict[str, np.ndarray]  # int32 [total tokens]
    offsets: dict[str, np.ndarray]  # int64 [n_docs + 1]
    labels: dict[str, np.ndarray]  # int64 [n_docs]
    words: list[bytes]  # vocabulary in id order; '<unk>' = len(words), '<pad>' = len(words) + 1
    review_ids: dict[str, np.ndarray]  # int64 [n_docs]: <id> of the file name <id>_<rating>.txt, -1 if none

    @property
    def unk_id(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return len(self.words) + 1

    @property
    def vocab_size(self) -> int:  # words + <unk> + <pad>
        return len(self.words) + 2

    def docs(self, split: str) -> list[list[int]]:
        """Reviews as Python lists (tests compare them with paddle's Imdb.docs)."""
        ids, off = self.ids[split], self.offsets[split]
        return [ids[off[i] : off[i + 1]].tolist() for i in range(len(off) - 1)]


def _read_to_end(tar: tarfile.TarFile) -> None:
    """Check the rest of the archive after its last member: tarfile stops without a word at the
    first damaged header, and never reads the gzip trailer, so a flipped byte went unnoticed. Past
    the end only zero padding may follow, and reading it to the end makes gzip check its CRC."""
    assert tar.fileobj is not None
    tar.fileobj.seek(tar.offset)
    while block := tar.fileobj.read(1 << 20):
        if block.strip(b"\0"):
            raise tarfile.ReadError(f"its listing of members stops at byte {tar.offset}, before the end: a damaged "
                                    "header")


def parse_archive(archive: Path, cutoff: int) -> ImdbArrays:
    """One pass over the archive, reproducing paddle's Imdb(mode, cutoff) for both modes."""
    tokens: dict[tuple[str, str], list[list[bytes]]] = collections.defaultdict(list)
    review_ids: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                match = _DOC.match(member.name)
                if match:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        tokens[(match.group(1), match.group(2))].append(tokenize(fh.read()))
                        numbered = _REVIEW_ID.search(member.name)
                        review_ids[(match.group(1), match.group(2))].append(int(numbered.group(1)) if numbered else -1)
            _read_to_end(tar)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"data.path={str(archive)!r} is not a readable IMDB archive (truncated or corrupt?): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}. Nothing was cached; download it again "
            "(aclImdb_v1.tar.gz, layout aclImdb/{train,test}/{pos,neg}/*.txt)."
        ) from exc
    missing = [f"aclImdb/{s}/{lab}/" for s in ("train", "test") for lab in LABELS if not tokens[(s, lab)]]
    if missing:
        raise DataError(
            f"data.path={str(archive)!r} has no reviews under {', '.join(missing)}; expected the "
            "aclImdb_v1.tar.gz layout aclImdb/{train,test}/{pos,neg}/*.txt."
        )
    freq: collections.Counter[bytes] = collections.Counter()
    for docs in tokens.values():
        for doc in docs:
            freq.update(doc)
    kept = sorted(((w, c) for w, c in freq.items() if c > cutoff), key=lambda wc: (-wc[1], wc[0]))
    if not kept:
        raise DataError(
            f"data.cutoff={cutoff} leaves an empty vocabulary for {str(archive)!r} (no word occurs more "
            "than cutoff times); use a smaller data.cutoff."
        )
    words = [w for w, _ in kept]
    index = {w: i for i, w in enumerate(words)}
    unk = len(words)
    out = ImdbArrays(ids={}, offsets={}, labels={}, words=words, review_ids={})
    for split in ("train", "test"):
        docs = tokens[(split, "pos")] + tokens[(split, "neg")]  # paddle: all pos, then all neg
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        out.offsets[split] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        out.ids[split] = np.fromiter(
            (index.get(w, unk) for d in docs for w in d), dtype=np.int32, count=int(lengths.sum())
        )
        out.labels[split] = np.array(
            [LABELS["pos"]] * len(tokens[(split, "pos")]) + [LABELS["neg"]] * len(tokens[(split, "neg")]),
            dtype=np.int64,
        )
        out.review_ids[split] = np.array(review_ids[(split, "pos")] + review_ids[(split, "neg")], dtype=np.int64)
    return out


def _save_cache(arrays: ImdbArrays, npz: Path, meta: dict) -> None:
    npz.parent.mkdir(parents=True, exist_ok=True)
    payload = {"words": np.frombuffer(b"\n".join(arrays.words), dtype=np.uint8)}
    for split in ("train", "test"):
        payload[f"{split}_ids"] = arrays.ids[split]
        payload[f"{split}_offsets"] = arrays.offsets[split]
        payload[f"{split}_labels"] = arrays.labels[split]
        payload[f"{split}_review_ids"] = arrays.review_ids[split]
    tmp = npz.with_name(f"{npz.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **payload)
        meta = {**meta, "npz_sha256": file_sha256(tmp)}
        os.replace(tmp, npz)  # atomic: concurrent readers see the old or the new file, never half
    except BaseException:
        tmp.unlink(missing_ok=True)  # disk full or a signal: this call's own temporary file goes
        raise
    write_json(npz.with_suffix(".json"), meta)  # last: an entry counts only once its checksum is there


def _load_cache(npz: Path) -> Optional[ImdbArrays]:
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
            arrays = ImdbArrays(
                ids={s: z[f"{s}_ids"] for s in ("train", "test")},
                offsets={s: z[f"{s}_offsets"] for s in ("train", "test")},
                labels={s: z[f"{s}_labels"] for s in ("train", "test")},
                words=raw_words.split(b"\n") if raw_words else [],
                review_ids={s: z[f"{s}_review_ids"] for s in ("train", "test")},
            )
        for s in ("train", "test"):
            if (arrays.offsets[s][-1] != len(arrays.ids[s]) or len(arrays.labels[s]) + 1 != len(arrays.offsets[s])
                    or len(arrays.review_ids[s]) != len(arrays.labels[s])):
                raise ValueError(f"inconsistent {s} arrays")
        return arrays
    except Exception as exc:  # any damage means: rebuild
        log.warning("IMDB cache entry %s is damaged (%s): rebuilding it", npz, exc)
        return None


def load_imdb(archive: Path, cutoff: int, cache_dir: Path) -> ImdbArrays:
    """Token ids for ``archive``: from the cache when valid, else parsed and cached."""
    start = time.perf_counter()
    digest = archive_sha256(archive)
    npz = Path(cache_dir) / f"imdb-{digest[:16]}-cutoff{cutoff}-v{CACHE_FORMAT}.npz"
    arrays = _load_cache(npz)
    if arrays is not None:
        log.info("IMDB loaded from cache %s in %.2f s", npz, time.perf_counter() - start)
        return arrays
    log.info("Parsing %s (cutoff %d); the result is cached for next time", archive, cutoff)
    arrays = parse_archive(archive, cutoff)
    meta = {"format": CACHE_FORMAT, "archive": str(archive), "archive_sha256": digest, "cutoff": cutoff}
    try:
        _save_cache(arrays, npz, meta)
    except OSError as exc:
        log.warning("Could not write the IMDB cache %s (%s); continuing without it", npz, exc)
    log.info(
        "IMDB parsed in %.1f s: %d train / %d test reviews, vocabulary %d words",
        time.perf_counter() - start, len(arrays.labels["train"]), len(arrays.labels["test"]), len(arrays.words),
    )
    return arrays
