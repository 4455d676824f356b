"""VisualDL: the tracker callback of every run (per-epoch curves, per-step batch loss, hparams
with final metrics, and the extra views of :mod:`.visualdl_extras`). The hyperparameters, the
dashboard folder's links and the notebook's reference run, which need no paddle, are in
:mod:`.vdl_view`.

Records follow what VisualDL 2.5.3's HParams views can render (found in a real browser,
tests/test_dashboard.py): hparam and metric names without dots (its table reads a dotted name as
a path: empty cells) and at most 8 characters (its parallel-coordinates label truncation never
ends on a wider label: the tab freezes), the same keys with one type in every run (nulls
resolved to the value in effect), and only metrics every run logs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import paddle
from visualdl import LogWriter

from gru_exp.train import visualdl_extras as extras
from gru_exp.train.loop import Callback, EpochMetrics, TrainState
from gru_exp.train.record import RunRecord
from gru_exp.train.scores import positive_class
from gru_exp.train.vdl_view import link_into_view, logged_metrics

log = logging.getLogger(__name__)


class VisualDLTracker(Callback):
    """One VisualDL run per run folder (``<run_dir>/vdl``): VisualDL 2.5.3 reads only the newest
    records file of a folder, so a folder is never shared or reopened."""

    def __init__(self, logdir: Path, display_name: str, logger: Any, words: list[bytes], test_ids: Any,
                 test_labels: np.ndarray, output_dir: Optional[Path] = None,
                 class_names: Sequence[str] = ("pos", "neg")) -> None:
        self.logdir, self.display_name, self.logger = Path(logdir), display_name, logger
        self.class_names, self.positive = list(class_names), positive_class(class_names)
        self.words, self.test_ids, self.test_labels, self.output_dir = words, test_ids, test_labels, output_dir
        self.writer: Optional[LogWriter] = None
        self.grad_norms: dict[str, list[float]] = {}

    def _log_epoch(self, h: EpochMetrics) -> None:
        assert self.writer is not None
        for tag, value in (("train/loss", h.train_loss), ("train/acc", h.train_acc), ("eval/loss", h.eval_loss),
                           ("eval/acc", h.eval_acc), ("eval/macro_f1", h.eval_macro_f1),
                           ("time/epoch_s", h.train_time_s + h.eval_time_s),
                           ("time/train_samples_per_s", h.train_samples_per_s)):
            if value == value:  # not nan: an epoch of an older run has no macro-F1
                self.writer.add_scalar(tag, value, h.epoch)

    def on_train_start(self, state: TrainState) -> None:
        earlier = _batch_losses(self.logdir, state.step)  # a run resumed in its own folder: its earlier records
        self.writer = LogWriter(logdir=str(self.logdir), display_name=self.display_name)
        if self.output_dir is not None:
            link_into_view(self.output_dir, self.logdir, self.display_name)
        for h in state.history:  # a resumed run carries the epochs it continues from
            self._log_epoch(h)
        for step, value in earlier:  # VisualDL reads only the newest records file: the curve goes on in it
            self.writer.add_scalar("train/batch_loss", value, step)

    def on_backward(self, state: TrainState) -> None:
        if self.logger.histograms and state.step % 10 == 0:  # every 10th step: the norms cost little
            for group, norm in extras.gradient_norms(state.model).items():
                self.grad_norms.setdefault(group, []).append(norm)

    def on_step_end(self, state: TrainState, loss: paddle.Tensor) -> None:
        every = self.logger.batch_loss_every
        if every and state.step % every == 0:
            self.writer.add_scalar("train/batch_loss", float(loss), state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        self._log_epoch(state.history[-1])
        if self.logger.histograms:
            extras.write_histograms(self.writer, state.model, self.grad_norms, state.epoch)
            self.grad_norms = {}
        self.writer.flush()

    def on_train_end(self, state: TrainState, record: RunRecord) -> None:
        if self.writer is None:
            return
        step = state.best_epoch or state.epoch
        best_val = record.best_eval_acc is not None and record.eval_split == "val"  # never a test score under "val"
        if best_val:
            self.writer.add_scalar("best_val", record.best_eval_acc, step)
        step = record.test_epoch or step  # the epoch whose weights were scored on test
        if "acc" in record.test:
            self.writer.add_scalar("test/acc", record.test["acc"], step)
            self.writer.add_scalar("test/loss", record.test["loss"], step)
            if "macro_f1" in record.test:
                self.writer.add_scalar("test/macro_f1", record.test["macro_f1"], step)
        for name, score in (record.baselines.get("majority") or {}).items():  # the floor beside test/acc
            if name in ("acc", "macro_f1") and score == score:
                self.writer.add_scalar(f"test/majority_{name}", score, step)
        if "auc" in record.test:  # ROC AUC of the scored epoch's test predictions
            self.writer.add_scalar("test/auc", record.test["auc"], step)
        probs = state.test_positive_prob
        if self.positive is None and "acc" in record.test and (self.logger.roc_pr or self.logger.text_samples):
            log.info("ROC/PR curves and confident mistakes are drawn for two classes only; this run has %d: skipped",
                     len(self.class_names))
        if probs is not None and self.positive is not None:
            names = [{"pos": "positive", "neg": "negative"}.get(n, n) for n in self.class_names]
            other = names[1 - self.positive]
            if self.logger.roc_pr:
                extras.write_roc_pr(self.writer, self.test_labels, probs, step, self.positive)
            if self.logger.text_samples:
                extras.write_mistakes(self.writer, self.test_ids, self.test_labels, probs, self.words,
                                      self.logger.text_samples, step, self.positive, (names[self.positive], other))
        if record.test_confusion:  # the scored epoch's (every class count); after the mistakes, on the text page
            extras.write_confusion(self.writer, np.array(record.test_confusion), self.class_names, step)
        if self.logger.embeddings and record.status == "completed":
            extras.write_embeddings(self.writer, state.model, self.words, self.logger.embeddings)
        metrics = logged_metrics(best_val)
        self.writer.add_hparams({**state.hparams, "status": str(record.status)}, metrics)
        self.writer.close()
        self.writer = None


def _batch_losses(logdir: Path, last_step: int) -> list[tuple[int, float]]:
    """The per-step batch losses up to ``last_step`` in the newest records file of ``logdir`` (a run
    resumed in its own folder), [] when there is none or it cannot be read."""
    files = sorted(logdir.glob("vdlrecords*"), key=lambda p: p.stat().st_mtime) if logdir.is_dir() else []
    if not files:
        return []
    try:
        from visualdl import LogReader

        reader = LogReader(file_path=str(files[-1]))
        if "train/batch_loss" not in reader.get_tags().get("scalar", []):
            return []
        return sorted((r.id, r.value) for r in reader.get_data("scalar", "train/batch_loss") if r.id <= last_step)
    except Exception as exc:  # noqa: BLE001 - a damaged earlier file: the new one starts afresh, said in the log
        log.warning("Could not read the earlier VisualDL records %s (%s): the batch-loss curve restarts", files[-1], exc)
        return []
