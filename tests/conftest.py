"""Shared fixtures: tiny generated IMDB archives and the real config, shrunk to run in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Union

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


# -- children whose pipes are always drained, with a deadline on every wait ---------------------------------------

class Drain:
    """Reads one pipe of a child to its end in a thread, so the child never blocks on a full pipe
    (64 KiB), and lets a test wait for a line with a deadline (a bare ``readline`` can block forever)."""

    def __init__(self, proc: subprocess.Popen, stream):
        self.proc, self.lines, self.closed = proc, [], False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        try:
            for line in iter(stream.readline, ""):
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, wanted: Union[str, Callable[[str], bool]], timeout: float) -> str:
        """The first line holding ``wanted`` (or for which it is true); the child is killed and the
        test fails when the pipe closes or ``timeout`` s pass first."""
        match = (lambda line: wanted in line) if isinstance(wanted, str) else wanted
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if match(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    break
                self._cond.wait(left)
        self.proc.kill()
        why = "the output ended" if self.closed else f"{timeout} s passed"
        raise AssertionError(f"{why} before a line with {wanted!r}; the output so far:\n{self.text()[-3000:]}")

    def join(self, timeout: float) -> str:
        self._thread.join(timeout)
        return self.text()


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m <args>`` from the checkout, Hydra's short errors, output captured."""
    full = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=timeout)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def start(cmd: list, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` in text mode with stdout and stderr (unless given) drained by threads:
    ``proc.out`` and ``proc.err`` (``Drain``s; ``proc.err`` is ``proc.out`` with ``stderr=STDOUT``)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen([str(c) for c in cmd], text=True, **kwargs)
    proc.out = Drain(proc, proc.stdout) if proc.stdout else None
    proc.err = Drain(proc, proc.stderr) if proc.stderr else proc.out
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """Wait up to ``timeout`` s for a child of :func:`start` (killed and failing the test past it);
    returns (exit status, stdout, stderr), both read to their end."""
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        raise AssertionError(f"{proc.args} still running after {timeout} s (killed); its stderr:\n"
                             f"{(proc.err.text() if proc.err else '')[-3000:]}") from None
    out = proc.out.join(30) if proc.out else ""
    err = proc.err.join(30) if proc.err and proc.err is not proc.out else out
    return code, out, err


# -- secrets: a storage password must never be written anywhere -----------------------------------------------

def secret_leaks(secret: str, folder: Path, storage_url: str = "", studies: tuple = ()) -> list[str]:
    """Every place ``secret`` (a storage password) was written: files under ``folder`` read as bytes
    (logs, summaries, reports, Slurm task logs and submitted pickles, checkpoints: nothing skipped),
    and in ``storage_url``, the named studies' user and system attributes and their trials'
    attributes, params and intermediate values as stored in the database."""
    assert len(secret) >= 8, "a scan for a short secret would prove nothing"
    found = [str(p) for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()
             and secret.encode() in p.read_bytes()]
    if storage_url and studies:
        import json

        import optuna

        storage = optuna.storages.get_storage(storage_url)
        for name in studies:
            try:
                study_id = storage.get_study_id_from_name(name)
            except KeyError:  # refused before the study was made
                continue
            stored = [storage.get_study_user_attrs(study_id), storage.get_study_system_attrs(study_id)]
            if secret in json.dumps(stored, default=str):
                found.append(f"study {name!r}: its attributes")
            for t in storage.get_all_trials(study_id, deepcopy=False):
                stored = [t.user_attrs, t.system_attrs, t.params, t.intermediate_values, t.values]
                if secret in json.dumps(stored, default=str):
                    found.append(f"study {name!r}, trial {t.number}: its attributes")
    return found


def studies_under(home: Path) -> tuple:
    """The names of the studies whose folders a test's sweeps made under ``home``."""
    return tuple(sorted({p.parent.name for p in home.rglob("study.json")}))


def report_table(text: str) -> list[dict[str, str]]:
    """The rows of a report.md's (first) table, each by its column headers."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines, text
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]


def pytest_sessionfinish(session, exitstatus):
    """With GRU_EXP_REQUIRE_NO_SKIPS=1 (CI: every service is there) a skipped test fails the run: a
    test that skipped itself is a promise nobody checked."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if os.environ.get("GRU_EXP_REQUIRE_NO_SKIPS") == "1" and skipped and session.exitstatus == 0:
        session.exitstatus = 1
        reporter.write_line(f"GRU_EXP_REQUIRE_NO_SKIPS=1: {skipped} test(s) skipped; here every test must run.",
                            red=True)
