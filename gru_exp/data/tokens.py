"""The parsed dataset every source produces: token ids of each text, flat with offsets, labels as
class numbers, the vocabulary in id order; how a vocabulary is chosen from word counts, kept in a
run's folder (``vocab.txt``) and used to turn new texts into ids."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from gru_exp.errors import DataError
from gru_exp.files import atomic_write_bytes


class Vocabulary:
    """The id rule of a vocabulary ``words`` (id order): ``<unk>`` = len(words), ``<pad>`` = len(words) + 1."""

    words: list[bytes]

    @property
    def unk_id(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return len(self.words) + 1

    @property
    def vocab_size(self) -> int:  # words + <unk> + <pad>
        return len(self.words) + 2


@dataclass
class TokenArrays(Vocabulary):
    """Token ids of every text, flat with offsets, per split ('train', 'test'), with the labels
    as class numbers and the class names in class order."""

    ids: dict[str, np.ndarray]  # int32 [total tokens]
    offsets: dict[str, np.ndarray]  # int64 [n_docs + 1]
    labels: dict[str, np.ndarray]  # int64 [n_docs]
    words: list[bytes]  # vocabulary in id order; '<unk>' = len(words), '<pad>' = len(words) + 1
    review_ids: dict[str, np.ndarray]  # int64 [n_docs]: <id> of the file name <id>_<rating>.txt, -1 if none
    class_names: list[str] = field(default_factory=lambda: ["pos", "neg"])  # class number -> name
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # int64 [n_docs]: group number (data.group_column)
    test_from: str = ""  # where the test texts come from, when a source holds them out of its training texts

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def docs(self, split: str) -> list[list[int]]:
        """Texts as Python lists (tests compare them with paddle's Imdb.docs)."""
        ids, off = self.ids[split], self.offsets[split]
        return [ids[off[i] : off[i + 1]].tolist() for i in range(len(off) - 1)]


def vocabulary(docs: Iterable[list[bytes]], cutoff: int, source: str) -> list[bytes]:
    """The words that occur more than ``cutoff`` times, most frequent first (ties in byte order),
    as paddle's Imdb builds its vocabulary; DataError naming ``source`` when none is left."""
    freq: collections.Counter[bytes] = collections.Counter()
    for doc in docs:
        freq.update(doc)
    kept = sorted(((w, c) for w, c in freq.items() if c > cutoff), key=lambda wc: (-wc[1], wc[0]))
    if not kept:
        raise DataError(f"data.cutoff={cutoff} leaves an empty vocabulary for {source} (no word occurs more than "
                        "cutoff times); use a smaller data.cutoff.")
    return [w for w, _ in kept]


def write_vocabulary(path: Path, words: Sequence[bytes]) -> None:
    """The vocabulary in id order, one token per line (tokens never hold whitespace), as bytes."""
    atomic_write_bytes(path, b"".join(w + b"\n" for w in words))


def read_vocabulary(path: Path) -> list[bytes]:
    """What :func:`write_vocabulary` wrote."""
    return Path(path).read_bytes().splitlines()


def encode(tokens: Sequence[bytes], index: dict[bytes, int]) -> list[int]:
    """Token ids of ``tokens`` by ``index`` (word -> id); a word outside it is ``<unk>`` (len(index))."""
    unk = len(index)
    return [index.get(t, unk) for t in tokens]
