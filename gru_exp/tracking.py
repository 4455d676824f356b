"""VisualDL tracking: per-epoch curves, per-step batch loss, and hparams with final metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import paddle

from gru_exp.baseline import METRIC_TAGS
from gru_exp.config import flatten, hparam_value
from gru_exp.training import Callback, EpochMetrics, TrainState

HPARAM_KEYS = (
    "model.embedding_size", "model.hidden_size", "model.num_layers", "model.direction", "model.dropout",
    "model.layer_dropout", "model.use_lengths", "data.seq_len", "data.cutoff", "data.val_size", "data.train_limit",
    "data.bucket_size", "trainer.batch_size", "trainer.lr", "trainer.epochs", "trainer.seed",
    "trainer.grad_clip", "model.pooling", "model.word_dropout", "trainer.weight_decay", "trainer.lr_schedule",
    "trainer.warmup", "trainer.patience", "data.test_limit",
)


def flat_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The compared knobs as VisualDL accepts them: int, float or str (no bool, no None)."""
    flat = flatten(config)
    return {key: hparam_value(flat[key]) for key in HPARAM_KEYS}


class VisualDLTracker(Callback):
    """One VisualDL run per run folder (``<run_dir>/vdl``): VisualDL 2.5.3 reads only the newest
    records file of a folder, so a folder is never shared or reopened."""

    def __init__(self, logdir: Path, display_name: str, batch_loss_every: int) -> None:
        self.logdir, self.display_name, self.batch_loss_every = Path(logdir), display_name, batch_loss_every
        self.writer: Optional[Any] = None

    def _log_epoch(self, h: EpochMetrics) -> None:
        assert self.writer is not None
        for tag, value in (("train/loss", h.train_loss), ("train/acc", h.train_acc), ("eval/loss", h.eval_loss),
                           ("eval/acc", h.eval_acc), ("time/epoch_s", h.train_time_s + h.eval_time_s),
                           ("time/train_samples_per_s", h.train_samples_per_s)):
            self.writer.add_scalar(tag, value, h.epoch)

    def on_train_start(self, state: TrainState) -> None:
        from visualdl import LogWriter

        self.writer = LogWriter(logdir=str(self.logdir), display_name=self.display_name)
        for h in state.history:  # a resumed run carries the epochs it continues from
            self._log_epoch(h)

    def on_step_end(self, state: TrainState, loss: paddle.Tensor) -> None:
        if self.batch_loss_every and state.step % self.batch_loss_every == 0:
            self.writer.add_scalar("train/batch_loss", float(loss), state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        self._log_epoch(state.history[-1])
        self.writer.flush()

    def on_train_end(self, state: TrainState, result: dict[str, Any]) -> None:
        if self.writer is None:
            return
        test = result.get("test") or {}
        if "acc" in test:
            self.writer.add_scalar("test/acc", test["acc"], state.best_epoch or state.epoch)
            self.writer.add_scalar("test/loss", test["loss"], state.best_epoch or state.epoch)
        hparams = dict(state.hparams)
        hparams["status"] = result.get("status", "unknown")
        self.writer.add_hparams(hparams, list(METRIC_TAGS))
        self.writer.close()
        self.writer = None
