"""VisualDL's HParams views: numbers on numeric axes (floats), rounded; changed knobs first and
constants last; one metric every run with a validation split logs (best_val: never a test score,
which a pruned trial lacks and VisualDL would show as NaN)."""

from __future__ import annotations

from test_train import read_scalars

from gru_exp.config.knobs import defaults, hparam_tags
from gru_exp.train.loop import Callback, StopRun, TrainState
from gru_exp.train.run import run_training
from gru_exp.train.vdl_view import axis_value, baseline_hparams, hparams


def test_numbers_are_floats_rounded_and_the_rest_text():
    assert axis_value(64) == 64.0 and isinstance(axis_value(64), float)  # an int is a category in VisualDL
    assert axis_value(0.33802945224243636) == 0.338 and axis_value(0.002143280230300595) == 0.002143
    assert axis_value(True) == "true" and axis_value(None) == "null" and axis_value("attention") == "attention"
    assert axis_value(4294967295) == 4294967295.0  # seeds: exact


def test_changed_knobs_come_first_and_constants_last():
    tags = hparam_tags()
    out = hparams({"model.hidden_size": 32, "trainer.lr": 0.0030558303200061165, "model.pooling": "attention"},
                  {"data.seq_len": 200, "data.train_limit": 22500, "data.test_limit": 25000, "model.layer_dropout": 0.5})
    order = list(out)
    changed = [tags["model.hidden_size"], tags["model.pooling"], tags["trainer.lr"]]
    assert sorted(order[:3]) == sorted(changed) and order[:3] == [t for t in tags.values() if t in changed]
    assert out[tags["trainer.lr"]] == 0.003056 and out[tags["model.hidden_size"]] == 32.0
    table_only = {tags[k] for k in ("data.text_column", "data.label_column", "data.group_column", "data.test_share")}
    assert set(order[3:]) == set(tags.values()) - set(changed) - table_only  # an IMDB run reads no table columns
    assert out[tags["model.num_layers"]] == float(defaults()["model.num_layers"])
    table = hparams({"data.source": "table", "data.train_file": "/t.csv"}, {})
    assert table_only <= set(table)


class _Prune(Callback):
    def on_epoch_end(self, state: TrainState) -> None:
        raise StopRun("pruned", "pruned after epoch 1")


def _hparam_record(vdl):
    _, records = read_scalars(vdl)
    record = records[0].hparam
    values = {h.name: getattr(h, h.WhichOneof("type")) for h in record.hparamInfos}
    return values, [m.name for m in record.metricInfos], [h.WhichOneof("type") for h in record.hparamInfos]


def test_finished_and_pruned_runs_list_the_same_metric_and_numbers_are_float_axes(tiny_cfg, tmp_path):
    run_training(tiny_cfg(), tmp_path / "done")
    values, metrics, types = _hparam_record(tmp_path / "done" / "vdl")
    assert metrics == ["best_val"]  # no test score in the views where runs are sorted and chosen
    assert "int_value" not in types and values["hidden"] == 16.0 and values["lengths"] == "true"
    run_training(tiny_cfg(), tmp_path / "pruned", callbacks=[_Prune()])
    _, metrics, _ = _hparam_record(tmp_path / "pruned" / "vdl")
    assert metrics == ["best_val"]  # the same column: a pruned trial has no test score, so no NaN beside it


def test_the_baseline_gives_every_column_the_type_a_run_gives_it(tiny_cfg, tmp_path):
    """VisualDL types a column by the earliest run (the baseline, written first): a knob that is a
    number in the runs must be a number in the baseline too, never its null as text."""
    run_training(tiny_cfg(), tmp_path / "run")
    values, _, _ = _hparam_record(tmp_path / "run" / "vdl")
    baseline = baseline_hparams()
    assert {t: type(v) for t, v in baseline.items()} == {t: type(v) for t, v in values.items() if t != "status"}
    assert baseline[hparam_tags()["data.split_seed"]] == baseline[hparam_tags()["trainer.seed"]]
