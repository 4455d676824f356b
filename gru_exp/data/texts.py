"""Texts of any source (folder, table) turned into :class:`~gru_exp.data.tokens.TokenArrays`.

A source reads its texts one at a time and hands each to :class:`Collector`, which tokenizes it at
once and keeps only provisional token ids (memory follows the token ids, not the text). Then
:meth:`Collector.finish` holds out a test part when the source has no test texts (stratified, or
whole groups; seed 0, so every trainer.seed is scored on the same texts), maps labels to class
numbers in a stable order (:func:`class_order`), counts the vocabulary over the training texts
and gives each token its final id.
"""

from __future__ import annotations

import logging
import math
import re
from array import array
from decimal import Decimal
from typing import Callable, Optional, Union

import numpy as np

from gru_exp.data.splits import group_split, ragged_take, stratified_split
from gru_exp.data.tokens import TokenArrays
from gru_exp.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
HOLD_OUT_SEED = 0  # the held-out test part does not change with trainer.seed
# the folder and table sources' reading rules, in their cache key (2: 1 and 1.0 one class, TSV unquoted;
# 3: only plain decimal spellings are numbers, so "1_2" and "12" stay two classes)
READER = 3
# a number as people write one in a label column: digits (of any script, as before), one point, an
# exponent; never Python's "1_000" (= 1000), surrounding spaces, "inf" or "nan", which float() and
# Decimal() also accept
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _number(label: str) -> Optional[float]:
    return float(label) if _PLAIN_NUMBER.fullmatch(label) and math.isfinite(float(label)) else None


def _numeric_key(label: str) -> Optional[Decimal]:
    """The label's exact value when it is a plain finite number ("1", "1.0" and "1e0" alike), else None."""
    if not _PLAIN_NUMBER.fullmatch(label):
        return None
    value = Decimal(label)
    return value.normalize() if value.is_finite() else None


def class_key(label: str) -> object:
    """What makes two labels one class: the value of a plain number ("1" and "1.0" alike), else the text."""
    value = _numeric_key(label)
    return label if value is None else value


def class_order(labels: list[str]) -> list[str]:
    """Labels in class-number order: numerically when every label is a number ("2" before "10"),
    else by their text (Unicode code points: "neg" before "pos", "B" before "a")."""
    numbers = [_number(label) for label in labels]
    if all(n is not None for n in numbers):
        return [label for _, label in sorted(zip(numbers, labels))]
    return sorted(labels)


class Collector:
    """Texts as they are read: provisional token ids (in order of first sight), label and group
    numbers, and where each label was first seen (for messages)."""

    def __init__(self, tokenize: Callable[[bytes], list[bytes]], names: dict[str, str]) -> None:
        self.tokenize, self.names = tokenize, names  # names: split -> the file or folder it comes from
        self.index: dict[bytes, int] = {}
        self.ids = {s: array("i") for s in SPLITS}
        self.lengths = {s: array("q") for s in SPLITS}
        self.labels = {s: array("i") for s in SPLITS}
        self.groups = {s: array("q") for s in SPLITS}
        self.label_ids: dict[str, int] = {}
        self.spelling: dict[Decimal, str] = {}  # a numeric label's value -> its first spelling (1 and 1.0: one class)
        self.group_ids: dict[str, int] = {}
        self.first_seen: dict[tuple[str, int], Union[int, str]] = {}

    def add(self, split: str, text: bytes, label: str, where: Union[int, str], group: Optional[str] = None) -> None:
        """One text of ``split`` with its label; ``where`` is its line number or its own file."""
        tokens = self.tokenize(text)
        index = self.index
        self.ids[split].extend([index.setdefault(t, len(index)) for t in tokens])
        self.lengths[split].append(len(tokens))
        value = _numeric_key(label)
        if value is not None:
            label = self.spelling.setdefault(value, label)
        number = self.label_ids.setdefault(label, len(self.label_ids))
        self.labels[split].append(number)
        self.first_seen.setdefault((split, number), where)
        if group is not None:
            self.groups[split].append(self.group_ids.setdefault(group, len(self.group_ids)))

    def count(self, split: str) -> int:
        return len(self.lengths[split])

    def where(self, split: str, label: int) -> str:
        seen = self.first_seen[(split, label)]
        return f"{self.names[split]!r}, line {seen}" if isinstance(seen, int) else repr(seen)

    def finish(self, cutoff: int, test_share: float, what: str) -> TokenArrays:
        """The token arrays; a test part held out of train when no test texts were added."""
        flat = {s: np.frombuffer(self.ids[s], dtype=np.int32) if len(self.ids[s]) else np.zeros(0, np.int32)
                for s in SPLITS}
        self.ids = {}  # the arrays live on in ``flat`` only: freed as soon as they are gathered or remapped
        offsets = {s: np.concatenate([[0], np.cumsum(np.asarray(self.lengths[s], dtype=np.int64))]).astype(np.int64)
                   for s in SPLITS}
        labels = {s: np.asarray(self.labels[s], dtype=np.int64) for s in SPLITS}
        groups = {s: np.asarray(self.groups[s], dtype=np.int64) for s in SPLITS if len(self.groups[s])}
        names = list(self.label_ids)
        test_from, before = "", np.unique(labels["train"])
        if self.count("test") == 0:
            flat, offsets, labels, groups, test_from = self._hold_out(flat, offsets, labels, groups, test_share)
        seen = np.unique(labels["train"])
        if len(seen) < 2 and len(before) > 1:
            raise DataError(self._one_label_left(names, seen, before, len(labels["train"]), len(labels["test"]),
                                                 test_share))
        if len(seen) < 2:
            raise DataError(f"{self.names['train']!r} holds only one label, {names[int(seen[0])]!r} (first at "
                            f"{self.where('train', int(seen[0]))}): a classifier needs at least two classes. Check "
                            "the label column (data.label_column) or add texts of the other classes.")
        unseen = sorted(set(np.unique(labels["test"]).tolist()) - set(seen.tolist()))
        if unseen:
            shown = "; ".join(f"{names[u]!r} (first at {self.where('test', u) if ('test', u) in self.first_seen else 'the held-out part'})"
                              for u in unseen[:5])
            raise DataError(f"{self.names['test']!r} has label{'s' if len(unseen) > 1 else ''} never seen in "
                            f"{self.names['train']!r}: {shown}. A model cannot predict a class it never trained on; "
                            "remove those texts or add training texts of those labels.")
        order = class_order([names[int(i)] for i in seen])
        to_class = np.full(len(names), -1, dtype=np.int64)
        to_class[[self.label_ids[n] for n in order]] = np.arange(len(order))
        words, remap = self._vocabulary(flat["train"], cutoff, what)
        ids = {}
        for s in SPLITS:  # one split's provisional ids at a time beside the final ones
            ids[s] = remap[flat.pop(s)]
        return TokenArrays(
            ids=ids, offsets=offsets, labels={s: to_class[labels[s]] for s in SPLITS},
            words=words, review_ids={s: np.full(len(labels[s]), -1, dtype=np.int64) for s in SPLITS},
            class_names=order, groups=groups, test_from=test_from)

    def _one_label_left(self, names: list[str], seen: np.ndarray, before: np.ndarray, n_train: int, n_test: int,
                        share: float) -> str:
        """The message for a training part of one label left after the test part was held out."""
        shown = class_order([names[int(i)] for i in before])
        return (f"{self.names['train']!r} has {len(before)} labels ({', '.join(map(repr, shown[:5]))}"
                f"{', ...' if len(before) > 5 else ''}), but after holding out the test part (data.test_share={share}: "
                f"{n_test} of the {n_train + n_test} texts) the {n_train} text{'s' if n_train != 1 else ''} left for "
                f"training hold only one label, {names[int(seen[0])]!r}: a classifier needs at least two classes. Use "
                "a smaller data.test_share or give a test file (data.test_file).")

    def _hold_out(self, flat, offsets, labels, groups, share):
        """(flat, offsets, labels, groups, note) with a seeded test part taken out of train."""
        n_train = len(labels["train"])
        n = max(1, int(round(share * n_train)))
        if n >= n_train:
            raise DataError(f"{self.names['train']!r} has {n_train} texts: too few to hold out data.test_share="
                            f"{share} of them for test. Add texts or give a test file.")
        rng = np.random.default_rng([HOLD_OUT_SEED, 2])
        if "train" in groups:
            test_idx, train_idx = group_split(groups["train"], n, rng)
            how = "whole groups"
            self._check_groups(groups["train"], len(test_idx), len(train_idx), n, share)
        else:
            test_idx, train_idx = stratified_split(labels["train"], n, rng)
            how = "stratified"
        out_flat, out_off, out_labels, out_groups = {}, {}, {}, {}
        for split, idx in (("train", train_idx), ("test", test_idx)):
            out_flat[split], out_off[split] = ragged_take(flat["train"], offsets["train"], idx)
            out_labels[split] = labels["train"][idx]
            if "train" in groups:
                out_groups[split] = groups["train"][idx]
        self.names["test"] = f"the test part held out of {self.names['train']}"
        note = (f"{len(test_idx)} of the {n_train} texts of {self.names['train']} held out for test (data.test_share="
                f"{share}, {how}, seed {HOLD_OUT_SEED}; no test file)")
        return out_flat, out_off, out_labels, out_groups, note

    def _check_groups(self, groups: np.ndarray, n_test: int, n_train: int, asked: int, share: float) -> None:
        """DataError when the whole-group test part leaves no training text; a warning when it is
        more than twice the size asked."""
        ids, sizes = np.unique(groups, return_counts=True)
        names = {v: k for k, v in self.group_ids.items()}
        largest = f"the largest group, {names[int(ids[sizes.argmax()])]!r}, holds {int(sizes.max())}"
        total = n_test + n_train
        if n_train == 0:
            raise DataError(f"{self.names['train']!r}: the held-out test part (data.test_share={share}: {asked} of the "
                            f"{total} texts, whole groups of data.group_column) would take every text, as {largest} "
                            f"of the {total} texts ({len(ids)} group{'s' if len(ids) != 1 else ''} in all). Give a "
                            "test file (data.test_file), more or smaller groups, or no data.group_column.")
        if n_test > 2 * asked:
            log.warning("The held-out test part has %d texts, %d asked (data.test_share=%s of the %d texts of %s): it "
                        "takes whole groups and %s texts", n_test, asked, share, total, self.names["train"],
                        largest)

    def _vocabulary(self, train_ids: np.ndarray, cutoff: int, what: str) -> tuple[list[bytes], np.ndarray]:
        """Words seen more than ``cutoff`` times in the training texts, most frequent first (ties in
        byte order, as paddle's Imdb), and the provisional -> final id map (others: ``<unk>``)."""
        tokens = list(self.index)
        counts = np.bincount(train_ids, minlength=len(tokens))
        kept = sorted(np.flatnonzero(counts > cutoff).tolist(), key=lambda p: (-counts[p], tokens[p]))
        if not kept:
            raise DataError(f"data.cutoff={cutoff} leaves an empty vocabulary for {what} (no token occurs more than "
                            "cutoff times in the training texts); use a smaller data.cutoff.")
        remap = np.full(len(tokens), len(kept), dtype=np.int32)  # <unk>
        remap[kept] = np.arange(len(kept), dtype=np.int32)
        return [tokens[p] for p in kept], remap
