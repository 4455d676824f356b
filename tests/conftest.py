"""Shared fixtures: tiny generated IMDB archives and the real config, shrunk to run in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gru_exp.synthetic import make_imdb_archive

REPO = Path(__file__).resolve().parent.parent
REAL_IMDB = Path(os.environ.get("GRU_EXP_IMDB") or REPO.parent / "shared" / "data" / "aclImdb_v1.tar.gz")


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    return make_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz", n_per_class=40, seed=0)


def tiny_overrides(archive: Path, out: Path, *extra: str) -> list[str]:
    """The real config shrunk: tiny model, 2 epochs, tiny data, outputs under ``out``."""
    return [
        f"data.path={archive}", f"paths.root_dir={out}", "data.cutoff=2", "data.val_size=16",
        "model.embedding_size=16", "model.hidden_size=16", "trainer.epochs=2", "trainer.batch_size=16",
        "trainer.progress_every_s=0", "logger.batch_loss_every=2", *extra,
    ]


@pytest.fixture
def tiny_cfg(tiny_archive, tmp_path):
    from gru_exp.cli import compose_config

    def make(*extra: str):
        return compose_config(tiny_overrides(tiny_archive, tmp_path / "out", *extra))

    return make
