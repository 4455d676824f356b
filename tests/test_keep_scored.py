"""trainer.keep_checkpoints never removes the weights a run was scored with (adversarial findings):
``best`` keeps the scored file (last.pdparams with trainer.test_epoch=last), ``last`` with the
best epoch scored is refused up front, and a run that kept only last.pdparams (test_epoch=last)
resumes and predicts."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli, tiny_overrides


def _train(archive: Path, home: Path, *extra: str) -> Path:
    proc = cli("gru_exp.train", *tiny_overrides(archive, home, "trainer.epochs=2", *extra))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.split()[0])


def test_best_keeps_the_scored_weights_also_when_the_last_epoch_is_scored(tiny_archive, tmp_path):
    run = _train(tiny_archive, tmp_path / "h", "trainer.keep_checkpoints=best", "trainer.test_epoch=last")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pdparams"]
    out = _predict(run)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr[-2000:]


def _predict(run: Path):
    import subprocess
    import sys

    from conftest import REPO

    return subprocess.run([sys.executable, "-m", "gru_exp.predict", str(run), "-"], input="a great film\n",
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_last_with_the_best_epoch_scored_is_refused_before_anything_is_written(tiny_archive, tmp_path):
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "h", "trainer.keep_checkpoints=last"))
    assert proc.returncode == 2 and "trainer.keep_checkpoints=last removes best.pdparams" in proc.stderr
    assert not (tmp_path / "h").exists() or not list((tmp_path / "h").rglob("metrics.json"))


def test_a_run_that_kept_only_last_resumes_and_predicts(tiny_archive, tmp_path):
    run = _train(tiny_archive, tmp_path / "h", "trainer.keep_checkpoints=last", "trainer.test_epoch=last")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pdparams"]
    assert _predict(run).returncode == 0
    resumed = cli("gru_exp.train", f"trainer.resume={run}", "trainer.epochs=3", f"paths.root_dir={tmp_path / 'h'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    longer = Path(resumed.stdout.split()[0])
    assert json.loads((longer / "metrics.json").read_text())["series"]["epoch"] == [1, 2, 3]
