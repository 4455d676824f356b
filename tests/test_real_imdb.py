"""Checks on the real IMDB archive; skipped when ../shared/data/aclImdb_v1.tar.gz (or $GRU_EXP_IMDB)
is absent, except where GRU_EXP_REQUIRE_IMDB=1 (CI) makes that an error."""

from __future__ import annotations

import os

import pytest
from conftest import REAL_IMDB

if not REAL_IMDB.is_file() and os.environ.get("GRU_EXP_REQUIRE_IMDB") == "1":  # CI: a wrong path must fail, not skip
    raise RuntimeError(f"GRU_EXP_REQUIRE_IMDB=1 but the real IMDB archive is not at {REAL_IMDB}")
pytestmark = pytest.mark.skipif(not REAL_IMDB.is_file(), reason=f"real IMDB archive not found at {REAL_IMDB}")


def test_small_model_on_a_subset_learns_imdb(tmp_path):
    from gru_exp.config.compose import compose_config
    from gru_exp.train.run import run_training

    cfg = compose_config([
        "experiment=cpu_quick", f"data.path={REAL_IMDB}", f"paths.root_dir={tmp_path}",
        "data.train_limit=6000", "data.val_size=500", "data.test_limit=2000", "data.seq_len=200",
        "model.embedding_size=64", "model.hidden_size=64", "trainer.epochs=2", "trainer.progress_every_s=0",
    ])
    result = run_training(cfg, tmp_path / "run")
    assert result.status == "completed"
    assert result.n_train == 6000 and result.n_test == 2000
    assert result.test["acc"] >= 0.75, result.test


@pytest.mark.slow
def test_real_archive_tokens_equal_paddles_imdb():
    from paddle.text.datasets import Imdb

    from gru_exp.data.imdb import parse_archive

    arrays = parse_archive(REAL_IMDB, 150)
    ref = Imdb(data_file=str(REAL_IMDB), mode="test", cutoff=150, download=False)
    assert len(ref.docs) == 25000 and arrays.docs("test") == ref.docs
    assert arrays.labels["test"].tolist() == ref.labels
    assert arrays.vocab_size == len(ref.word_idx) + 1  # + <pad>, as in the notebook
