"""Shared fixtures: tiny generated IMDB archives and the real config, shrunk to run in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthetic_imdb import make_imdb_archive

REPO = Path(__file__).resolve().parent.parent
REAL_IMDB = Path(os.environ.get("GRU_EXP_IMDB") or REPO.parent / "shared" / "data" / "aclImdb_v1.tar.gz")


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    return make_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz", n_per_class=40, seed=0)


def pg_unreachable(url: str) -> str:
    """Why the PostgreSQL test server at ``url`` cannot be used, or "" when it answers."""
    if not url:
        return "GRU_EXP_TEST_PG_URL is not set (CI starts a PostgreSQL server and sets it)"
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect():
            return ""
    except Exception as exc:
        return f"PostgreSQL at GRU_EXP_TEST_PG_URL is not reachable: {type(exc).__name__}: {str(exc)[:120]}"


def tiny_overrides(archive: Path, out: Path, *extra: str) -> list[str]:
    """The real config shrunk: tiny model, 2 epochs, tiny data, outputs under ``out``."""
    return [
        f"data.path={archive}", f"paths.root_dir={out}", "data.cutoff=2", "data.val_size=16",
        "model.embedding_size=16", "model.hidden_size=16", "trainer.epochs=2", "trainer.batch_size=16",
        "trainer.progress_every_s=0", "logger.batch_loss_every=2", *extra,
    ]


@pytest.fixture
def tiny_cfg(tiny_archive, tmp_path):
    from gru_exp.config.compose import compose_config

    def make(*extra: str):
        return compose_config(tiny_overrides(tiny_archive, tmp_path / "out", *extra))

    return make


# Sweeps on a generated archive a small GRU can learn; search spaces written per test.
SPACE = """
study_name: {name}
base: [data.path={archive}, data.cutoff=2, data.val_size=40, trainer.batch_size=16, trainer.epochs={epochs},
       model.embedding_size=16, model.hidden_size=16, model.use_lengths=true, trainer.progress_every_s=0,
       logger.batch_loss_every=0]
n_trials: {n_trials}
heartbeat_interval: 1
grace_period: 3
sampler: {{name: {sampler}, seed: 0}}
pruner: {pruner}
params:
{params}
"""
LR_SPACE = "  trainer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}"


@pytest.fixture(scope="module")
def learnable_archive(tmp_path_factory) -> Path:
    return make_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz", n_per_class=100, seed=1)


@pytest.fixture
def sweep_env(tmp_path, learnable_archive, monkeypatch):
    """Write sweeps/<name>.yaml files into a temp folder on GRU_EXP_SWEEPS_PATH; outputs in tmp_path."""
    folder = tmp_path / "sweeps"
    folder.mkdir()
    monkeypatch.setenv("GRU_EXP_SWEEPS_PATH", str(folder))
    monkeypatch.setenv("GRU_EXP_HOME", str(tmp_path / "home"))

    def write(name="s", n_trials=4, epochs=3, sampler="random", params=LR_SPACE,
              pruner="{name: median, n_startup_trials: 1, n_warmup_steps: 2}", **extra) -> str:
        text = SPACE.format(name=name, archive=learnable_archive, n_trials=n_trials, epochs=epochs, sampler=sampler,
                            params=params, pruner=pruner)
        text += "".join(f"{k}: {v}\n" for k, v in extra.items())
        (folder / f"{name}.yaml").write_text(text)
        return name

    write.sweeps_dir = tmp_path / "home" / "outputs" / "sweeps"
    return write


def run_sweep(*args: str) -> int:
    from gru_exp.sweep.__main__ import main

    return main(list(args))


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs mounted for the test, to fill up for real (needs root, as CI runs; skipped
    otherwise, saying why); unmounted afterwards."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill_disk(disk: Path) -> Path:
    """Write one file until the filesystem has no space left."""
    filler = disk / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
                fh.flush()
        except OSError:
            pass
    return filler
