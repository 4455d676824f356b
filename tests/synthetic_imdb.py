"""Small generated archives in the aclImdb_v1.tar.gz layout, for tests and benchmarks.

Reviews mix neutral filler with sentiment words, so a model can learn them; they carry
punctuation, capitals and odd members (urls_*.txt, unsup/, README) to exercise the tokenizer.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

POSITIVE = ["great", "wonderful", "loved", "superb", "brilliant", "moving", "fun", "best"]
NEGATIVE = ["awful", "boring", "hated", "terrible", "waste", "dull", "worst", "bad"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "scene", "and", "of", "was", "this", "it",
          "story", "director", "music", "ending", "character", "time", "really", "just"]


def _review(rng: np.random.Generator, positive: bool, mean_len: int) -> bytes:
    n = max(3, int(rng.poisson(mean_len)))
    cues = POSITIVE if positive else NEGATIVE
    words = [str(rng.choice(cues)) if rng.random() < 0.15 else str(rng.choice(FILLER)) for _ in range(n)]
    words[0] = words[0].capitalize()
    text = " ".join(words)
    return (text.replace(" and ", ", and ") + "! <br /><br />It's (really) so.\n").encode()


def make_imdb_archive(path: Path, n_per_class: int = 40, mean_len: int = 30, seed: int = 0,
                      file_name: Optional[Callable[[str, int], str]] = None) -> Path:
    """Write ``path`` with ``n_per_class`` reviews in each of train/test x pos/neg; review ``i`` of a
    label is named ``file_name(label, i)`` (default ``<i>_7.txt`` for pos, ``<i>_2.txt`` for neg:
    IMDB's ``<id>_<rating>.txt``)."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w:gz") as tar:
        add(tar, "aclImdb/README", b"synthetic IMDB for tests\n")
        add(tar, "aclImdb/imdb.vocab", b"\n".join(w.encode() for w in POSITIVE + NEGATIVE + FILLER))
        for split in ("train", "test"):
            add(tar, f"aclImdb/{split}/urls_pos.txt", b"http://example.invalid/\n")
            for label in ("pos", "neg"):
                for i in range(n_per_class):
                    name = file_name(label, i) if file_name else f"{i}_{7 if label == 'pos' else 2}.txt"
                    add(tar, f"aclImdb/{split}/{label}/{name}",
                        _review(rng, label == "pos", mean_len))
        add(tar, "aclImdb/train/unsup/0_0.txt", _review(rng, True, mean_len))
    return path
