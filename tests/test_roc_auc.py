"""ROC AUC of the scored test predictions: in metrics.json and as a VisualDL scalar."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_train import read_scalars

from gru_exp.train.run import run_training
from gru_exp.train.visualdl_extras import roc_auc


def pairwise_auc(positive, scores) -> float:
    """The definition: over every (positive, negative) pair, 1 if the positive scores higher, 1/2 on a tie."""
    pos = [s for p, s in zip(positive, scores) if p]
    neg = [s for p, s in zip(positive, scores) if not p]
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg)) / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_is_the_pairwise_definition_ties_included(seed):
    rng = np.random.default_rng(seed)
    positive = rng.random(60) < 0.4
    scores = np.round(rng.random(60) + 0.3 * positive, 1)  # rounded: many ties
    assert roc_auc(positive, scores) == pytest.approx(pairwise_auc(positive, scores), abs=1e-12)
    assert roc_auc(positive, np.where(positive, 0.9, 0.1)) == 1.0
    assert np.isnan(roc_auc(np.ones(5, dtype=bool), np.arange(5.0)))


def test_a_run_records_its_test_auc_and_shows_it_in_visualdl(tiny_cfg, tmp_path):
    record = run_training(tiny_cfg(), tmp_path / "r")
    auc = record.test["auc"]
    assert 0.0 <= auc <= 1.0 and record.test_auc == auc
    scalars, _ = read_scalars(tmp_path / "r" / "vdl")
    assert scalars["test/auc"] == {record.test_epoch: pytest.approx(auc, rel=1e-6)}
