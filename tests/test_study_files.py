"""What a sweep writes into its study folder replaces only what gru-exp wrote there: the
best-so-far curve never deletes a user's folder (or a link's target) of that name."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

from gru_exp.sweep.best_so_far import MARK


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gru_exp.sweep", *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600)


def test_best_so_far_replaces_its_own_folder_and_never_a_users(sweep_env, tmp_path):
    name = sweep_env(n_trials=1, epochs=1)
    assert cli(f"sweep={name}").returncode == 0
    folder = sweep_env.sweeps_dir / name / "best_so_far"
    assert (folder / MARK).is_file() and list(folder.glob("vdlrecords*"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")

    # the folder gru-exp wrote is rewritten after the next trial (nothing else left beside it)
    proc = cli(f"sweep={name}", "n_trials=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (folder / MARK).is_file()
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".best")]

    # a user's folder of that name, or a link to one, is kept as it is
    for replacement in ("folder", "link"):
        import shutil

        shutil.rmtree(folder) if not folder.is_symlink() else folder.unlink()
        if replacement == "folder":
            folder.mkdir()
            (folder / "notes.txt").write_text("my notes")
        else:
            folder.symlink_to(mine, target_is_directory=True)
        n = 3 if replacement == "folder" else 4
        proc = cli(f"sweep={name}", f"n_trials={n}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Not writing the best-so-far curve" in proc.stderr
        assert (folder / "notes.txt").read_text() == "my notes" and not (folder / MARK).exists()
        assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
        assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".best")]


def test_best_so_far_from_before_the_mark_is_replaced_and_a_users_records_are_not(sweep_env, tmp_path):
    """Without the mark, only records of this study's curve count as gru-exp's: a user's own
    VisualDL run of that folder name used to be replaced (and deleted) because it held records only."""
    import shutil

    from visualdl import LogWriter

    name = sweep_env(n_trials=1, epochs=1)
    assert cli(f"sweep={name}").returncode == 0
    folder = sweep_env.sweeps_dir / name / "best_so_far"
    (folder / MARK).unlink()  # as gru-exp wrote it before the mark: its records alone
    proc = cli(f"sweep={name}", "n_trials=2")
    assert proc.returncode == 0 and (folder / MARK).is_file(), proc.stderr[-3000:]
    shutil.rmtree(folder)
    with LogWriter(logdir=str(folder), display_name="my own run") as writer:
        writer.add_scalar("mine", 1.0, 1)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    proc = cli(f"sweep={name}", "n_trials=3")
    assert proc.returncode == 0 and "Not writing the best-so-far curve" in proc.stderr, proc.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
