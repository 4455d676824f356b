"""Write IMDB's archive as JSONL files for the generic table source: a real multi-class task from data
nobody here wrote (issue #25). IMDB's file names carry each review's star rating,
``aclImdb/<split>/<pos|neg>/<id>_<rating>.txt`` (1-4 negative, 7-10 positive), so one archive gives
both the binary sentiment task and an 8-class rating task.

    python benchmarks/imdb_to_jsonl.py [ARCHIVE] OUT_DIR    # ARCHIVE default: $GRU_EXP_IMDB

writes ``OUT_DIR/train.jsonl`` and ``OUT_DIR/test.jsonl``, one line per review, in the archive's order:

    {"text": "...", "rating": 8, "sentiment": "pos", "group": 12, "split": "train", "id": 1234}

``group`` is the review's id block, ``id // 100``: IMDB numbers the reviews of one movie (at most 30)
consecutively, as ``data.val_split=id_blocks`` assumes; ``data.group_column=group
data.val_split=groups`` keeps each block on one side of validation (positive and negative reviews
are numbered separately, so a block holds one block of each). The archive is read once, streaming
(memory: one review); only the reviews are written (not ``unsup/``, ``urls_*.txt``, the vocabulary).
Bytes that are not UTF-8 become U+FFFD, counted in the summary. Each file is written under a
temporary name and renamed when complete; existing files are never replaced.

Bad input (no archive, a damaged one, an output file that exists) is one paragraph, exit status 2.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger(__name__)
REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
SPLITS = ("train", "test")
ID_BLOCK = 100  # as gru_exp.data.splits.ID_BLOCK


class BadInput(Exception):
    """One paragraph for the user; exit status 2."""


def convert(archive: Path, out_dir: Path) -> dict[str, dict[str, int]]:
    """Write ``out_dir``/{train,test}.jsonl from ``archive``; per split: reviews, ratings seen, and
    reviews whose bytes were not all UTF-8. Nothing is left behind on failure but the files that
    were there before."""
    if not archive.is_file():
        raise BadInput(f"ARCHIVE={str(archive)!r}: no such file. Give IMDB's aclImdb_v1.tar.gz (or set $GRU_EXP_IMDB).")
    targets = {s: out_dir / f"{s}.jsonl" for s in SPLITS}
    taken = [str(p) for p in targets.values() if os.path.lexists(p)]
    if taken:
        raise BadInput(f"OUT_DIR={str(out_dir)!r} already holds {', '.join(taken)}; this script never replaces a "
                       "file. Give a new or empty folder.")
    made_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    temps = {s: out_dir / f".{s}.jsonl.{os.getpid()}.tmp" for s in SPLITS}
    counts = {s: {"reviews": 0, "not_utf8": 0} for s in SPLITS}
    ratings: dict[str, set[int]] = {s: set() for s in SPLITS}
    handles = {s: open(temps[s], "x", encoding="utf-8") for s in SPLITS}
    try:
        try:
            with tarfile.open(archive) as tar:  # streaming: one member at a time
                for member in tar:
                    match = REVIEW.match(member.name)
                    fh = tar.extractfile(member) if match else None
                    if fh is None:
                        continue
                    split, sentiment, review_id, rating = match[1], match[2], int(match[3]), int(match[4])
                    raw = fh.read()
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        text, counts[split]["not_utf8"] = raw.decode("utf-8", "replace"), counts[split]["not_utf8"] + 1
                    row = {"text": text, "rating": rating, "sentiment": sentiment, "group": review_id // ID_BLOCK,
                           "split": split, "id": review_id}
                    handles[split].write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts[split]["reviews"] += 1
                    ratings[split].add(rating)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise BadInput(f"ARCHIVE={str(archive)!r} is not a readable IMDB archive (truncated or corrupt?): "
                           f"{type(exc).__name__}: {' '.join(str(exc).split())}. Nothing was written.") from None
        empty = [s for s in SPLITS if not counts[s]["reviews"]]
        if empty:
            raise BadInput(f"ARCHIVE={str(archive)!r} has no reviews under aclImdb/{{{','.join(empty)}}}/{{pos,neg}}/"
                           "<id>_<rating>.txt; expected the aclImdb_v1.tar.gz layout. Nothing was written.")
        linked: list[Path] = []
        try:
            for s in SPLITS:
                handles[s].close()
                os.link(temps[s], targets[s])  # a new name only: never replaces a file that appeared meanwhile
                linked.append(targets[s])
        except OSError as exc:
            for path in linked:  # ours: made just now
                path.unlink()
            raise BadInput(f"OUT_DIR={str(out_dir)!r}: the files could not be put in place ({type(exc).__name__}: "
                           f"{exc}); nothing was written.") from None
    finally:
        for s in SPLITS:
            handles[s].close()
            temps[s].unlink(missing_ok=True)
        if made_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()
    for s in SPLITS:
        counts[s]["ratings"] = len(ratings[s])
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(args) == 1 and os.environ.get("GRU_EXP_IMDB"):
        args.insert(0, os.environ["GRU_EXP_IMDB"])
    if len(args) != 2 or args[0].startswith("-"):
        print(f"usage: python benchmarks/imdb_to_jsonl.py [ARCHIVE] OUT_DIR (ARCHIVE default: $GRU_EXP_IMDB); got "
              f"{' '.join(args) or 'no arguments'}", file=sys.stderr)
        return 2
    try:
        counts = convert(Path(args[0]).expanduser(), Path(args[1]).expanduser())
    except BadInput as exc:
        print(f"imdb_to_jsonl: error: {exc}", file=sys.stderr)
        return 2
    for s in SPLITS:
        log.info("%s: %d reviews, %d ratings, %d with bytes that are not UTF-8", Path(args[1]) / f"{s}.jsonl",
                 counts[s]["reviews"], counts[s]["ratings"], counts[s]["not_utf8"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
