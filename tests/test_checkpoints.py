"""Damaged, mismatched or hand-edited checkpoints and run records: refused before training (on a
resume, a test score, a report) with one paragraph and exit 2, never loaded half-way."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import cli, files_under, tiny_overrides

from gru_exp.errors import ConfigError

HUGE_PICKLE = b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"xx"  # BINBYTES8 of 2**62 bytes: MemoryError


# -- damaged files --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "huge_length", "other_model"])
def test_a_damaged_or_mismatched_checkpoint_is_one_paragraph_and_exit_2(tiny_archive, tmp_path, damage):
    out = tmp_path / "out"
    first = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=1"))
    assert first.returncode == 0, first.stderr
    (run,) = [p.parent for p in out.rglob("metrics.json")]
    ckpt = run / "checkpoints" / "last.pdparams"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "random":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "huge_length":  # a pickle whose first item claims 2**62 bytes: paddle.load raises MemoryError
        ckpt.write_bytes(HUGE_PICKLE)
    else:  # a checkpoint of another model shape, under the same name
        other = tmp_path / "other"
        assert cli("gru_exp.train", *tiny_overrides(tiny_archive, other, "trainer.epochs=1",
                                                     "model.hidden_size=24")).returncode == 0
        ckpt.write_bytes(next(other.rglob("last.pdparams")).read_bytes())
    before = files_under(out)
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, out, "trainer.epochs=2", f"trainer.resume={run}"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "checkpoint" in proc.stderr and str(ckpt) in proc.stderr
    assert files_under(out) == before  # no new run folder left behind


@pytest.fixture
def finished_run(tiny_cfg, tmp_path) -> Path:
    from gru_exp.train.run import run_training

    run_training(tiny_cfg("trainer.epochs=1", "logger.visualdl=false"), tmp_path / "done")
    return tmp_path / "done"


# -- run records and checkpoints on resume (rows 130, 132, 177) -------------------------------------------------

def test_a_record_with_wrong_field_types_is_one_clear_error_on_resume_and_in_reports(finished_run, tiny_cfg,
                                                                                      tmp_path, capsys):
    from gru_exp.report.__main__ import main as report
    from gru_exp.train.run import run_training

    record = finished_run / "metrics.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "epochs_done": "abc"}))
    with pytest.raises(ConfigError, match=r"metrics.json is a damaged run record: epochs_done=\"abc\" is not of type "
                                          r"integer"):
        run_training(tiny_cfg("trainer.epochs=2", f"trainer.resume={finished_run}"), tmp_path / "new")
    assert not (tmp_path / "new").exists()
    record.write_text(json.dumps({**data, "best_eval_acc": "high", "series": {**data["series"], "eval_acc": ["abc"]}}))
    assert report([str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert str(record) in err and "best_eval_acc=\"high\" is not of type number or null" in err
    assert "series=" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["random", "huge_length"])
def test_a_damaged_best_checkpoint_is_refused_before_training(finished_run, tiny_cfg, tmp_path, damage):
    """Random bytes (which now and then make the unpickler raise MemoryError: a CI run of 2026-11-29
    did) and a pickle claiming 2**62 bytes (always MemoryError) are both 'cannot be read'."""
    from gru_exp.train.run import run_training

    best = finished_run / "checkpoints" / "best.pdparams"
    best.write_bytes(os.urandom(4096) if damage == "random" else b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"xx")
    with pytest.raises(ConfigError, match=re.escape(f"The checkpoint {best} cannot be read")):
        run_training(tiny_cfg("trainer.epochs=2", f"trainer.resume={finished_run}"), tmp_path / "new")
    assert not (tmp_path / "new" / "metrics.json").exists()


@pytest.mark.parametrize("key,value,says", [
    ("model", "str", "model='str' is not what gru-exp writes"),
    ("optimizer", "x", "optimizer='x' is not what gru-exp writes"),
    ("epoch", "two", "epoch='two' is not what gru-exp writes"),
    ("best_eval_acc", None, "best_eval_acc='None' is not what gru-exp writes"),
    ("history", [{"foo": 1}], "holds contents gru-exp did not write (TypeError"),
    ("rng", [1, 2], "holds contents gru-exp did not write"),
    ("epoch", 99, "is after epoch 99 but its run's metrics.json records 1 finished epochs"),
])
def test_a_checkpoint_that_loads_but_holds_other_contents_is_refused(finished_run, tiny_cfg, tmp_path, key, value,
                                                                     says):
    """Row 216: a readable pickle with a wrong field was a traceback (exit 1) and a half-made run
    folder; an epoch that its run's record does not know made a 'completed' run of 99 epochs."""
    import paddle

    from gru_exp.train.run import run_training

    last = finished_run / "checkpoints" / "last.pdparams"
    ckpt = paddle.load(str(last))
    ckpt[key] = value
    if key == "epoch" and value == 99:
        ckpt["history"] = ckpt["history"] * 99
    paddle.save(ckpt, str(last))
    with pytest.raises(ConfigError, match=re.escape(says)):
        run_training(tiny_cfg("trainer.epochs=3", f"trainer.resume={finished_run}"), tmp_path / "new")
    assert not (tmp_path / "new" / "metrics.json").exists()
