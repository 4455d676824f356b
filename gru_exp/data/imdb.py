"""The IMDB source: the archive as cached token ids, with paddle's exact tokenizer and vocabulary.

The archive is parsed once (tokens and vocabulary identical to ``paddle.text.datasets.Imdb``),
then the token ids are cached on disk keyed by the archive's SHA-256 and the cutoff, with a
checksum so a damaged cache entry is rebuilt instead of used.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from gru_exp.data.cache import CACHE_FORMAT, DataFiles, archive_sha256, load_cache, save_cache, unchanged_while_read
from gru_exp.data.tokenize import tokenize, tokenizer, tokenizer_key
from gru_exp.data.tokens import TokenArrays, encode, vocabulary
from gru_exp.errors import DataError

log = logging.getLogger(__name__)

PADDLE_URL = "https://dataset.bj.bcebos.com/imdb%2FaclImdb_v1.tar.gz"
PADDLE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
_DOC = re.compile(r"aclImdb/(train|test)/(pos|neg)/.*\.txt$")  # paddle's patterns, as one
_REVIEW_ID = re.compile(r"/(\d+)_\d+\.txt$")  # <id>_<rating>.txt
LABELS = {"pos": 0, "neg": 1}  # paddle's Imdb labels: pos -> 0, neg -> 1
HOW_TO_SET = (
    "Set data.path=/path/to/aclImdb_v1.tar.gz on the command line or export "
    "GRU_EXP_IMDB=/path/to/aclImdb_v1.tar.gz"
)


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


def find(data: Any) -> DataFiles:
    """The archive ``data.path`` names (or paddle's download), for ``data.source=imdb``."""
    archive = resolve_archive(data.path)
    return DataFiles(str(archive), {"archive": archive})


def load(data: Any, found: DataFiles) -> TokenArrays:
    return load_imdb(found.files["archive"], data.cutoff, Path(data.cache_dir), data)


def parse_archive(archive: Path, cutoff: int, tokenize: Callable[[bytes], list[bytes]] = tokenize) -> TokenArrays:
    """One pass over the archive, reproducing paddle's Imdb(mode, cutoff) for both modes (with the
    default tokenizer)."""
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
    words = vocabulary((doc for docs in tokens.values() for doc in docs), cutoff, repr(str(archive)))
    index = {w: i for i, w in enumerate(words)}
    out = TokenArrays(ids={}, offsets={}, labels={}, words=words, review_ids={})
    for split in ("train", "test"):
        docs = tokens[(split, "pos")] + tokens[(split, "neg")]  # paddle: all pos, then all neg
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        out.offsets[split] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        out.ids[split] = np.fromiter((i for d in docs for i in encode(d, index)), dtype=np.int32,
                                     count=int(lengths.sum()))
        out.labels[split] = np.array(
            [LABELS["pos"]] * len(tokens[(split, "pos")]) + [LABELS["neg"]] * len(tokens[(split, "neg")]),
            dtype=np.int64,
        )
        out.review_ids[split] = np.array(review_ids[(split, "pos")] + review_ids[(split, "neg")], dtype=np.int64)
    return out


def load_imdb(archive: Path, cutoff: int, cache_dir: Path, data: Any = None) -> TokenArrays:
    """Token ids for ``archive``: from the cache when valid, else parsed and cached. ``data`` (the
    data knobs) chooses the tokenizer; the default's entries are named as before it existed."""
    start = time.perf_counter()
    digest = archive_sha256(archive)
    key = tokenizer_key(data) if data is not None else ""
    npz = Path(cache_dir) / f"imdb-{digest[:16]}-cutoff{cutoff}{key}-v{CACHE_FORMAT}.npz"
    arrays = load_cache(npz)
    if arrays is not None:
        log.info("IMDB loaded from cache %s in %.2f s", npz, time.perf_counter() - start)
        return arrays
    log.info("Parsing %s (cutoff %d); the result is cached for next time", archive, cutoff)
    arrays = parse_archive(archive, cutoff, tokenizer(data) if data is not None else tokenize)
    unchanged_while_read(repr(str(archive)), digest, lambda: archive_sha256(archive))
    meta = {"format": CACHE_FORMAT, "archive": str(archive), "archive_sha256": digest, "cutoff": cutoff}
    if key:
        meta["tokenizer"] = key
    try:
        save_cache(arrays, npz, meta)
    except OSError as exc:
        log.warning("Could not write the IMDB cache %s (%s); continuing without it", npz, exc)
    log.info(
        "IMDB parsed in %.1f s: %d train / %d test reviews, vocabulary %d words",
        time.perf_counter() - start, len(arrays.labels["train"]), len(arrays.labels["test"]), len(arrays.words),
    )
    return arrays
