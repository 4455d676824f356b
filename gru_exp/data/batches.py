"""Batches: index arrays in a seeded order (optionally bucketed by length), gathered into padded
id matrices (trimmed to the batch's longest text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from gru_exp.data.splits import Split


@dataclass
class Batch:
    ids: np.ndarray  # int64 [B, T]
    lengths: np.ndarray  # int64 [B]
    labels: np.ndarray  # int64 [B]


def batch_order(
    split: Split, batch_size: int, *, rng: Optional[np.random.Generator], drop_last: bool, bucket_size: int = 0
) -> list[np.ndarray]:
    """Index arrays, one per batch. rng=None keeps file order. With bucket_size > 0, chunks of
    ``bucket_size`` batches are sorted by length before cutting, then the batches are shuffled."""
    n = len(split)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    if bucket_size > 0:
        chunk = batch_size * bucket_size
        order = np.concatenate(
            [c[np.argsort(split.lengths[c], kind="stable")] for c in np.array_split(order, range(chunk, n, chunk))]
        )
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if bucket_size > 0 and rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iter_batches(split: Split, batches: list[np.ndarray], *, trim: bool) -> Iterator[Batch]:
    """Gather each batch, padded to seq_len; with ``trim`` only to its longest review."""
    for index in batches:
        lengths = split.lengths[index]
        yield Batch(split.dense(index, int(lengths.max()) if trim else None), lengths, split.labels[index])
