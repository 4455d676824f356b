"""Views of several classes and the reference baselines of any data (issue #25): a 3-class CSV run's
test confusion matrix as a VisualDL image and a report PNG, its macro-F1 and per-class precision /
recall in report.md, the majority-class baseline in metrics.json and report.md, and the linear
bag-of-words/bigrams model (model.gru=false, experiment=linear_baseline)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import report_table
from test_data_sources import rows, write_csv

from gru_exp.report.__main__ import main as report
from gru_exp.train.visualdl_extras import CELL

TINY = ["data.source=table", "data.cutoff=0", "data.val_size=12", "model.embedding_size=16", "model.hidden_size=16",
        "trainer.epochs=2", "trainer.batch_size=8", "trainer.progress_every_s=0", "logger.batch_loss_every=0",
        "logger.embeddings=0", "logger.histograms=false"]


def table_run(tmp_path: Path, name: str, *extra: str) -> Path:
    """A 3-class CSV ("good" the most frequent label) trained in this process; its run folder."""
    from gru_exp.config.compose import compose_config
    from gru_exp.train.run import run_training

    csv = tmp_path / "reviews.csv"
    if not csv.exists():
        write_csv(csv, rows(90) + rows(30, labels=("good",), seed=3))
    cfg = compose_config([f"paths.root_dir={tmp_path / 'out'}", f"data.train_file={csv}", *TINY, *extra])
    run_dir = tmp_path / "runs" / name
    assert run_training(cfg, run_dir).status == "completed"
    return run_dir


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> Path:
    return table_run(tmp_path_factory.mktemp("classes"), "gru")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_confusion_matrix_is_a_visualdl_image_one_cell_per_class_pair(three_classes):
    from visualdl import LogReader

    record = json.loads((three_classes / "metrics.json").read_text())
    (path,) = sorted((three_classes / "vdl").glob("vdlrecords*"))
    reader = LogReader(file_path=str(path))
    assert "test/confusion" in reader.get_tags()["image"]
    (image,) = reader.get_data("image", "test/confusion")
    assert image.id == record["test_epoch"]
    assert png_size(image.image.encoded_image_string) == (3 * CELL, 3 * CELL)  # 3 classes: 3 x 3 cells
    (text,) = [r.text.encoded_text_string for r in reader.get_data("text", "test/confusion_counts")]
    assert f"in the order {', '.join(record['classes'])}." in text  # rows: true class, in class order
    for name, counts in zip(record["classes"], record["test_confusion"]):
        assert f"{name}: {', '.join(map(str, counts))}" in text


def test_the_image_shades_each_cell_by_its_share_of_the_true_class():
    from gru_exp.train.visualdl_extras import confusion_image

    image = confusion_image(np.array([[4, 0], [1, 1]]), cell=4)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert tuple(image[2, 2]) == (8, 48, 107) and tuple(image[2, 6]) == (255, 255, 255)  # 4/4 and 0/4
    assert tuple(image[6, 2]) == tuple(image[6, 6]) == (132, 152, 181)  # 1/2 each: half way
    assert tuple(image[0, 1]) == (160, 160, 160)  # the grid


def test_the_majority_class_baseline_is_recorded_from_the_training_labels(three_classes):
    record = json.loads((three_classes / "metrics.json").read_text())
    most = record["baselines"]["majority"]
    assert most["class"] == "good"  # 60 of the 120 texts
    test_counts = [sum(row) for row in record["test_confusion"]]
    good = record["classes"].index("good")
    assert most["acc"] == pytest.approx(test_counts[good] / sum(test_counts))
    precision, recall = test_counts[good] / sum(test_counts), 1.0
    assert most["macro_f1"] == pytest.approx(2 * precision * recall / (precision + recall) / 3)


def test_the_report_lists_macro_f1_per_class_scores_the_majority_and_draws_the_confusion_matrix(three_classes):
    out = three_classes.parent
    assert report([str(out)]) == 0
    record = json.loads((three_classes / "metrics.json").read_text())
    text = (out / "report.md").read_text()
    (row,) = report_table(text)
    assert row["test macro-F1"] == f"{record['test']['macro_f1']:.4f}"
    most = record["baselines"]["majority"]
    assert row["majority class: test acc % / macro-F1"] == f"{100 * most['acc']:.2f} / {most['macro_f1']:.4f}"
    # the notebook's numbers are IMDB sentiment's: no columns and no reference line for other data
    assert "test − 84.50" not in row and "test − 87.10" not in row and "84.50" not in text, text[:800]
    assert "Linear peers" not in text  # measured on IMDB sentiment only
    for name, s in record["test_classes"].items():
        assert f"- `{name}`: precision {s['precision']:.4f}, recall {s['recall']:.4f}" in text
    assert f"macro-F1 {record['test']['macro_f1']:.4f}" in text and "![confusion matrix](confusion_matrix.png)" in text
    width, height = png_size((out / "confusion_matrix.png").read_bytes())
    assert width >= 300 and height >= 250


# -- the linear baseline: model.gru=false ---------------------------------------------------------------------

def test_the_linear_baseline_trains_the_bags_without_a_gru_and_beats_the_majority_class(tmp_path):
    from gru_exp.train.checkpoints import load_checkpoint

    run_dir = table_run(tmp_path, "linear", "experiment=linear_baseline", "trainer.epochs=3")
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["config"]["name"] == "linear_baseline" and record["config"]["model"]["gru"] is False
    weights = load_checkpoint(run_dir / "checkpoints" / "best.pdparams")["model"]
    assert sorted({k.split(".")[0] for k in weights}) == ["bigrams", "classifier", "embedding"]  # no GRU
    assert list(weights["classifier.weight"].shape) == [16 + 16, 3]  # mean embedding + bigram bag -> 3 classes
    assert record["test"]["acc"] > record["baselines"]["majority"]["acc"]  # the cue words are learnt


def test_without_the_gru_the_model_is_a_mean_of_the_real_tokens_embeddings():
    import paddle

    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    paddle.seed(0)
    model = GRUClassifier(10, ModelConfig(gru=False, embedding_size=4, dropout=0.0), num_classes=3)
    model.eval()
    assert not hasattr(model, "gru") and model.classifier.weight.shape == [4, 3]
    ids, padded = paddle.to_tensor([[1, 2, 3]]), paddle.to_tensor([[1, 2, 3, 9, 9]])
    lengths = paddle.to_tensor([3])
    out = model(ids, lengths).numpy()
    assert np.allclose(model(padded, lengths).numpy(), out)  # padding is never averaged
    mean = model.embedding.weight.numpy()[[1, 2, 3]].mean(axis=0)
    assert np.allclose(out, mean @ model.classifier.weight.numpy() + model.classifier.bias.numpy(), atol=1e-6)
    assert np.allclose(model(paddle.to_tensor([[3, 1, 2]]), lengths).numpy(), out, atol=1e-6)  # a bag: order-free


def test_pooling_without_the_gru_is_refused():
    from gru_exp.config.compose import compose_config
    from gru_exp.config.validation import validate
    from gru_exp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.pooling=attention has no effect with model.gru=false"):
        validate(compose_config(["model.gru=false", "model.pooling=attention"]))
