"""Scores of a classifier from its confusion matrix, for any number of classes: macro-F1 and each
class's precision, recall and F1; the majority-class baseline of any data; and which class counts
as "positive" for binary-only views (ROC, PR, the confident mistakes)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


def add_to_confusion(confusion: np.ndarray, labels: np.ndarray, predicted: np.ndarray) -> None:
    """Count each (true class, predicted class) pair into ``confusion`` (int64 [C, C], rows = truth)."""
    c = confusion.shape[0]
    confusion += np.bincount(labels * c + predicted, minlength=c * c).reshape(c, c)


def per_class(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """{class name: precision, recall, f1, support} (0 where nothing was predicted or present)."""
    tp = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": float(support[i])} for i, name in enumerate(class_names)}


def macro_f1(confusion: np.ndarray) -> float:
    """The mean F1 over the classes that occur in the truth or the predictions (as scikit-learn's
    ``f1_score(average="macro")``); 0.0 for an empty matrix."""
    scores = per_class(confusion, [str(i) for i in range(confusion.shape[0])])
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    f1 = [scores[str(i)]["f1"] for i in np.flatnonzero(present)]
    return float(np.mean(f1)) if f1 else 0.0


def majority(train_labels: np.ndarray, test_labels: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """The majority-class baseline: the class most frequent among the training labels (the first in
    class order on a tie) predicted for every test text; its name, test accuracy and macro-F1."""
    c = len(class_names)
    top = int(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=c).argmax())
    truth = np.asarray(test_labels, dtype=np.int64)
    confusion = np.zeros((c, c), dtype=np.int64)
    add_to_confusion(confusion, truth, np.full(len(truth), top, dtype=np.int64))
    acc = float(np.mean(truth == top)) if len(truth) else float("nan")
    return {"class": str(class_names[top]), "acc": acc, "macro_f1": macro_f1(confusion)}


def positive_class(class_names: Sequence[str]) -> Optional[int]:
    """The class that ROC/PR curves call positive: None unless there are two classes; IMDB's "pos"
    (class 0), else the second class in class order (e.g. 1 of 0/1, "pos" of neg/pos, "true")."""
    if len(class_names) != 2:
        return None
    return list(class_names).index("pos") if "pos" in class_names else 1
