"""Splits: the seeded, stratified validation hold-out (texts at random, or whole groups) and
subsets of a dataset's token ids, kept ragged until a batch is built."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from gru_exp.config.choices import ValSplit
from gru_exp.errors import DataError
from gru_exp.data.tokens import TokenArrays

log = logging.getLogger(__name__)


@dataclass
class Split:
    """Reviews kept ragged (memory follows the reviews used, not N x seq_len): each review is its
    first ``seq_len`` tokens, padded at the end with ``pad_id`` only when a batch is built."""

    tokens: np.ndarray  # int32 [total tokens of the source split], shared by subsets, never copied
    starts: np.ndarray  # int64 [N]: each review's first token in ``tokens``
    kept: np.ndarray  # int64 [N]: tokens kept (0 for a review of punctuation only)
    labels: np.ndarray  # int64 [N]
    pad_id: int
    seq_len: Optional[int]  # null = no truncation

    @property
    def lengths(self) -> np.ndarray:
        """int64 [N] lengths the GRU reads: a review with no tokens still gets one (padding) step."""
        return np.maximum(self.kept, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "Split":
        return Split(self.tokens, self.starts[index], self.kept[index], self.labels[index], self.pad_id, self.seq_len)

    def dense(self, index: Optional[np.ndarray] = None, width: Optional[int] = None) -> np.ndarray:
        """int64 [len(index), width] token ids padded at the end; width defaults to seq_len (or
        the longest of these reviews when seq_len is null)."""
        index = np.arange(len(self)) if index is None else index
        kept = self.kept[index]
        if width is None:
            width = self.seq_len if self.seq_len is not None else int(self.lengths[index].max(initial=1))
        ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
        mask = np.arange(width)[None, :] < kept[:, None]  # [B, width]
        rows = np.repeat(self.starts[index], kept) + (np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept))
        ids[mask] = self.tokens[rows]
        return ids

    @property
    def ids(self) -> np.ndarray:
        """The whole split as one dense [N, seq_len] matrix (tests, benchmarks; not the loop)."""
        return self.dense()


def padded(arrays: TokenArrays, split: str, seq_len: Optional[int]) -> Split:
    """The split with each review cut to its first ``seq_len`` tokens (null = all of them)."""
    offsets = arrays.offsets[split]
    full = np.diff(offsets)
    kept = full if seq_len is None else np.minimum(full, seq_len)
    return Split(arrays.ids[split], offsets[:-1].astype(np.int64), kept.astype(np.int64),
                 arrays.labels[split].copy(), arrays.pad_id, seq_len)


ID_BLOCK = 100  # review ids per block: IMDB numbers the reviews of one movie (at most 30) consecutively


def _per_class(labels: np.ndarray, n: int) -> list[tuple[int, int]]:
    """(class, how many of ``n`` to pick from it) with the label proportions of ``labels``."""
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * n / len(labels)
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take))[: n - take.sum()]:  # largest remainders get the rest
        take[i] += 1
    return list(zip(classes.tolist(), take.tolist()))


def stratified_split(labels: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``n`` indices with the label proportions of ``labels``; return (picked, rest), sorted."""
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in _per_class(labels, n)]
    chosen = np.sort(np.concatenate(picked))
    return chosen, np.setdiff1d(np.arange(len(labels)), chosen)


def id_block_split(labels: np.ndarray, review_ids: np.ndarray, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`stratified_split`, but each class's share is whole blocks of ``ID_BLOCK``
    consecutive review ids, drawn at random (the last one cut in id order): one movie's reviews
    stay on one side, so the hold-out, like the test set, is of movies training has not seen."""
    picked = []
    for c, k in _per_class(labels, n):
        members = np.flatnonzero(labels == c)
        members = members[np.argsort(review_ids[members], kind="stable")]
        blocks = review_ids[members] // ID_BLOCK
        left = k
        for block in rng.permutation(np.unique(blocks)):
            picked.append(members[blocks == block][:left])
            left -= len(picked[-1])
            if left == 0:
                break
    chosen_all = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    return chosen_all, np.setdiff1d(np.arange(len(labels)), chosen_all)


def group_split(groups: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups drawn at random until they hold at least ``n`` texts (the last one whole too, so
    the pick may be a little larger; class shares follow the draw): no group is on both sides."""
    names, sizes = np.unique(groups, return_counts=True)
    order = rng.permutation(len(names))
    taken = order[: int(np.searchsorted(np.cumsum(sizes[order]), n)) + 1]
    chosen = np.flatnonzero(np.isin(groups, names[taken]))
    return chosen, np.setdiff1d(np.arange(len(groups)), chosen)


def ragged_take(ids: np.ndarray, offsets: np.ndarray, index: np.ndarray,
                chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The texts ``index`` of flat ``ids`` with ``offsets``, as new flat ids and offsets. Gathered
    ``chunk`` texts at a time: the int64 row numbers of one chunk, not of every token, are held at
    once (a million-row file: tens of MB instead of 24 bytes a token)."""
    lengths = np.diff(offsets)[index]
    out = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    taken = np.empty(int(out[-1]), dtype=ids.dtype)
    for a in range(0, len(index), chunk):
        b = min(a + chunk, len(index))
        part, n = index[a:b], lengths[a:b]
        rows = np.repeat(offsets[:-1][part], n) + (np.arange(out[a], out[b]) - np.repeat(out[a:b], n))
        taken[out[a]:out[b]] = ids[rows]
    return taken, out


@dataclass
class DataSplits:
    train: Split
    eval: Split  # validation hold-out, or the test set when val_size = 0
    test: Split
    eval_name: str  # "val" or "test"
    vocab_size: int
    pad_id: int
    words: list[bytes] = field(default_factory=list)  # id -> word; then <unk>, <pad>
    class_names: list[str] = field(default_factory=lambda: ["pos", "neg"])  # class number -> name
    test_from: str = ""  # where the test texts come from when a source held them out of its training texts

    @property
    def longest(self) -> int:
        """The most tokens any review of the three splits keeps (the widest possible batch)."""
        return max(int(s.lengths.max(initial=1)) for s in (self.train, self.eval, self.test))


def make_splits(
    arrays: TokenArrays, *, seq_len: Optional[int], val_size: int, train_limit: Optional[int],
    test_limit: Optional[int], seed: int, val_split: ValSplit = ValSplit.random,
) -> DataSplits:
    """Seeded, stratified: validation held out of train first (reviews at random, ``id_blocks``:
    whole blocks of consecutive review ids, or ``groups``: whole groups), then the optional subsets."""
    rng = np.random.default_rng([seed, 0])
    train, test = padded(arrays, "train", seq_len), padded(arrays, "test", seq_len)
    if val_size >= len(train):
        raise DataError(f"data.val_size={val_size} must be smaller than the {len(train)} training reviews.")
    if val_size > 0:
        if val_split == ValSplit.groups:
            val_idx, train_idx = group_split(arrays.groups["train"], val_size, rng)
            if len(train_idx) == 0:
                raise DataError(f"data.val_size={val_size} with data.val_split=groups takes every group of the "
                                f"{len(train)} training texts; use a smaller data.val_size.")
            if len(val_idx) > 2 * val_size:
                log.warning("Validation has %d texts, %d asked (data.val_size=%d, data.val_split=groups): it takes "
                            "whole groups of data.group_column and the largest holds %d texts", len(val_idx), val_size,
                            val_size, int(np.unique(arrays.groups["train"], return_counts=True)[1].max()))
        elif val_split != ValSplit.id_blocks:
            val_idx, train_idx = stratified_split(train.labels, val_size, rng)
        elif (arrays.review_ids["train"] < 0).any():
            raise DataError("data.val_split=id_blocks needs the review ids of IMDB's file names "
                            "(aclImdb/train/{pos,neg}/<id>_<rating>.txt); this archive has other names. Use "
                            "data.val_split=random.")
        else:
            val_idx, train_idx = id_block_split(train.labels, arrays.review_ids["train"], val_size, rng)
        val, train = train.subset(val_idx), train.subset(train_idx)
    if train_limit is not None and train_limit < len(train):
        train = train.subset(stratified_split(train.labels, train_limit, rng)[0])
    if test_limit is not None and test_limit < len(test):
        test = test.subset(stratified_split(test.labels, test_limit, rng)[0])
    return DataSplits(
        train=train, eval=val if val_size > 0 else test, test=test, eval_name="val" if val_size > 0 else "test",
        vocab_size=arrays.vocab_size, pad_id=arrays.pad_id, words=arrays.words, class_names=arrays.class_names,
        test_from=arrays.test_from,
    )
