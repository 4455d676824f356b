"""VisualDL views beyond the curves, written by the tracker of :mod:`.visualdl`: ROC and PR curves
of the best epoch's test predictions, the most confident test mistakes as text, the test confusion
matrix (an image drawn with numpy, and its counts as text), the learned word embeddings for the
projector, and weight / gradient-norm histograms per epoch.

ROC, PR and the mistakes need two classes; the positive one is :func:`.scores.positive_class`'s
("positive review" on IMDB, whose labels put it first: class 0). With more classes they are skipped.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import paddle
from visualdl import LogWriter


THRESHOLDS = 101
CELL = 32  # pixels a side of one confusion-matrix cell in VisualDL's image (C classes: C * CELL pixels a side)
GROUPS = ("embedding", "gru", "classifier", "bigrams", "ngrams")  # parameter name prefixes (attention counts with gru)


@contextlib.contextmanager
def _numpy_float_alias() -> Iterator[None]:
    """VisualDL 2.5.3's add_pr_curve calls ``labels.astype(np.float)``, an alias NumPy 2 removed
    (upstream fix: https://github.com/PaddlePaddle/VisualDL/pull/1291): lend it for the call."""
    had = "float" in np.__dict__
    if not had:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if not had:
            del np.float  # type: ignore[attr-defined]


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half; Mann-Whitney with average ranks); NaN without both classes."""
    pos, s = np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    _, inverse, counts = np.unique(s[order], return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2  # 1-based average rank of each distinct score
    ranks = np.empty(len(s))
    ranks[order] = average[inverse]
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_counts(positive: np.ndarray, scores: np.ndarray, n: int = THRESHOLDS) -> tuple[np.ndarray, ...]:
    """tp, fp, tn, fn, tpr, fpr at ``n`` thresholds 0..1 (a review counts as positive at threshold
    t when its score >= t). VisualDL's own add_roc_curve divides true positives by the negatives
    (TPR above 1), so the ROC record is built from these counts instead."""
    bucket = np.clip(np.floor(scores * (n - 1)).astype(int), 0, n - 1)
    tp = np.cumsum(np.bincount(bucket, weights=positive, minlength=n)[::-1])[::-1]
    fp = np.cumsum(np.bincount(bucket, weights=1 - positive, minlength=n)[::-1])[::-1]
    tn, fn = fp[0] - fp, tp[0] - tp
    return tp, fp, tn, fn, tp / np.maximum(tp + fn, 1e-7), fp / np.maximum(fp + tn, 1e-7)


def write_roc_pr(writer: LogWriter, labels: np.ndarray, positive_prob: np.ndarray, step: int,
                 positive_class: int = 0) -> None:
    """test/pr_positive (VisualDL's PR curve) and test/roc_positive (counts computed here)."""
    from visualdl.component.base_component import roc_curve_raw

    positive = (labels == positive_class).astype(np.float64)
    with _numpy_float_alias():
        writer.add_pr_curve("test/pr_positive", positive, positive_prob, step=step, num_thresholds=THRESHOLDS)
    tp, fp, tn, fn, tpr, fpr = roc_counts(positive, positive_prob)
    # VisualDL has no public call that takes counts; its own packer and file writer take them as is.
    writer._get_file_writer().add_record(roc_curve_raw(  # noqa: SLF001
        "test/roc_positive", tp.astype(int).tolist(), fp.astype(int).tolist(), tn.astype(int).tolist(),
        fn.astype(int).tolist(), tpr.tolist(), fpr.tolist(), step, 0))


def confusion_image(confusion: np.ndarray, cell: int = CELL) -> np.ndarray:
    """uint8 [C * cell, C * cell, 3]: row = true class, column = predicted class, each cell shaded by
    its share of the true class (white 0 to dark blue 1), with a grey 1-pixel grid."""
    counts = np.asarray(confusion, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)[..., None]  # [C, C, 1]
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    image = np.repeat(np.repeat(np.round(white + share * (blue - white)).astype(np.uint8), cell, 0), cell, 1)
    image[::cell, :], image[:, ::cell] = 160, 160  # the grid: each cell's top and left edge
    return image


def write_confusion(writer: LogWriter, confusion: np.ndarray, class_names: list[str], step: int) -> None:
    """test/confusion: the scored epoch's test confusion matrix as an image (rows: true class,
    columns: predicted, in class order); test/confusion_counts: the class names and counts, one line
    (VisualDL's text view joins lines)."""
    writer.add_image("test/confusion", confusion_image(confusion), step)
    counts = "; ".join(f"{name}: {', '.join(str(int(v)) for v in row)}"
                       for name, row in zip(class_names, np.asarray(confusion)))
    writer.add_text("test/confusion_counts", f"rows: true class, columns: predicted class, in the order "
                    f"{', '.join(class_names)}. {counts}", step)


def _text(ids: np.ndarray, words: list[bytes], limit: int = 400) -> str:
    names = [w.decode("utf-8", "replace") for w in words] + ["<unk>", "<pad>"]
    tokens = [names[i] for i in ids if i != len(words) + 1]
    return " ".join(tokens[:limit]) + (" ..." if len(tokens) > limit else "")


def write_mistakes(writer: LogWriter, split: Any, labels: np.ndarray, positive_prob: np.ndarray,
                   words: list[bytes], count: int, step: int, positive_class: int = 0,
                   names: tuple[str, str] = ("positive", "negative")) -> None:
    """The ``count`` test reviews the model got wrong most confidently, as text samples: the review
    as the model read it (lower case, no punctuation, rare words as <unk>), true and predicted
    label (``names``: the positive class's, the other's), and the model's confidence."""
    positive = labels == positive_class
    predicted = positive_prob >= 0.5
    confidence = np.where(predicted, positive_prob, 1 - positive_prob)
    wrong = np.flatnonzero(predicted != positive)
    for rank, i in enumerate(wrong[np.argsort(-confidence[wrong], kind="stable")][:count], start=1):
        truth, guess = names[0 if positive[i] else 1], names[0 if predicted[i] else 1]
        text = (f"#{rank}: true {truth}, predicted {guess} with confidence {confidence[i]:.3f} (test review {i}).  "
                + _text(split.dense(np.array([i]))[0], words))
        writer.add_text("test/confident_mistakes", text, step)


def write_embeddings(writer: LogWriter, model: paddle.nn.Layer, words: list[bytes], max_words: int) -> None:
    """The learned embeddings of the ``max_words`` most frequent words, labelled, for the projector."""
    n = min(max_words, len(words), model.embedding.weight.shape[0] - 2)  # model.gru_words: the GRU's words only
    if n <= 0:
        return
    matrix = model.embedding.weight.numpy()[:n].astype(np.float32)  # ids are in frequency order
    labels = [w.decode("utf-8", "replace") for w in words[:n]]
    ranks = [str(i) for i in range(1, n + 1)]
    # Two label columns: VisualDL 2.5.3's projector never finishes parsing a single-column label file.
    writer.add_embeddings("embedding/words", mat=matrix, metadata=[labels, ranks],
                          metadata_header=["word", "frequency rank"])


def _group(parameter_name: str) -> str:
    return next((g for g in GROUPS if parameter_name.startswith(g)), "gru")


def gradient_norms(model: paddle.nn.Layer) -> dict[str, float]:
    """L2 norm of each parameter group's gradient (embedding, GRU, classifier, bigram bag), now. With
    trainer.bag_update=rows the bag's table has no dense gradient: its norm is that of the rows the
    batch read (the same number: the dense gradient is zero on every other row)."""
    grads = [(name, p.grad) for name, p in model.named_parameters()]
    rows_read = getattr(model, "rows_read", None)
    if rows_read is not None and rows_read[1].grad is not None:
        grads.append(("bigrams.weight", rows_read[1].grad))
    squares: dict[str, float] = {}
    for name, grad in grads:
        if grad is not None:
            group = _group(name)
            squares[group] = squares.get(group, 0.0) + float((grad.astype("float32") ** 2).sum())
    return {g: s ** 0.5 for g, s in squares.items()}


def write_histograms(writer: LogWriter, model: paddle.nn.Layer, grad_norms: dict[str, list[float]],
                     epoch: int) -> None:
    """weights/<group>: the group's weights at the end of the epoch; grad_norm/<group>: the
    gradient norms sampled during the epoch."""
    by_group: dict[str, list[np.ndarray]] = {}
    for name, p in model.named_parameters():
        group = _group(name)
        by_group.setdefault(group, []).append(p.numpy().ravel())
    for group, arrays in by_group.items():
        values = np.concatenate(arrays)
        if len(values) > 200_000:  # a large embedding: a fixed sample keeps records small
            values = values[np.random.default_rng(epoch).choice(len(values), 200_000, replace=False)]
        writer.add_histogram(f"weights/{group}", values, epoch, buckets=30)
    for group, norms in grad_norms.items():
        if norms:
            writer.add_histogram(f"grad_norm/{group}", np.asarray(norms), epoch, buckets=20)
