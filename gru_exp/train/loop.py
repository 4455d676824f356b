"""The training loop: epochs of Adam steps, an evaluation per epoch, callbacks after each.

Everything that is not the arithmetic of training (progress, VisualDL, checkpoints, metrics.json,
trial reporting) is a :class:`Callback`. A callback stops a run early by raising
:class:`StopRun` with a status (a sweep's pruner uses "pruned"; early stopping ends a run that is
complete, so its best epoch is still scored on the test set).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from gru_exp.config.knobs import LrSchedule, RunConfig
from gru_exp.data.batches import batch_order, iter_batches
from gru_exp.data.splits import DataSplits, Split
from gru_exp.errors import GruExpError
from gru_exp.train.optim import Optimizer
from gru_exp.train.record import RunRecord
from gru_exp.train.scores import add_to_confusion, macro_f1


class StopRun(Exception):
    """Raised by a callback to end training after the current epoch, with a status.

    Status "completed" means the run is done as intended (early stopping): its best epoch is
    scored on the test set; any other status (pruning) means it is not."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason or status)
        self.status = status


class NonFiniteLossError(GruExpError, RuntimeError):
    """The training loss became NaN or infinite (a user-facing outcome: exit status 2)."""


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's samples
    train_acc: float
    eval_loss: float
    eval_acc: float
    train_time_s: float
    eval_time_s: float
    train_samples_per_s: float
    eval_macro_f1: float = math.nan  # nan: an epoch trained before the metric existed (a resumed older run)


@dataclass
class TrainState:
    """What callbacks read. The loop owns it; callbacks must not change it."""

    run_dir: Path
    hparams: dict[str, Any]  # the flat config, for trackers
    model: paddle.nn.Layer
    optimizer: Optimizer  # paddle's, or with trainer.bag_update=rows a WithRowAdam
    epochs: int
    steps_per_epoch: int
    eval_name: str  # "val" or "test"
    epoch: int = 0  # last completed epoch
    committed_epoch: int = 0  # the epoch checkpoints/last.pdparams holds (the record never runs ahead of it)
    step: int = 0  # global optimizer steps
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: Optional[int] = None
    best_eval_acc: float = -math.inf
    resumed_from: Optional[str] = None
    # The best epoch's test predictions (set when the run is scored on test), for trackers: two
    # classes only, P(positive class) per text (scores.positive_class), in the test split's order.
    test_positive_prob: Optional[np.ndarray] = None
    eval_confusion: Optional[np.ndarray] = None  # the last epoch's on the eval split (rows: true class)

    @property
    def is_best(self) -> bool:
        return self.best_epoch == self.epoch

    def history_dict(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.history]


class Callback:
    """Hooks in the order they run. Override what you need."""

    def on_train_start(self, state: TrainState) -> None: ...
    def on_backward(self, state: TrainState) -> None: ...  # gradients present, before the optimizer step
    def on_step_end(self, state: TrainState, loss: paddle.Tensor) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState, record: "RunRecord") -> None: ...


def lr_at(step: int, total_steps: int, lr: float, schedule: LrSchedule, warmup: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``: a linear warm-up
    over the first ``warmup`` share of the steps, then constant, cosine or linear decay to 0.
    A function of the step alone, so a resumed run continues the same schedule."""
    warm = int(warmup * total_steps)
    if step < warm:
        return lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total_steps - warm))
    if schedule == LrSchedule.cosine:
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == LrSchedule.linear:
        return lr * (1.0 - progress)
    return lr


def _forward(model: paddle.nn.Layer, ids: np.ndarray, lengths: np.ndarray, use_lengths: bool) -> paddle.Tensor:
    return model(paddle.to_tensor(ids), paddle.to_tensor(lengths) if use_lengths else None)


def eval_batches(split: Split, size: int, use_lengths: bool, drop_last: bool = False) -> list[np.ndarray]:
    """Index arrays of evaluation's batches of ``size`` texts (``trainer.eval_batch_size``): with
    lengths, texts sorted by length (stable) so each batch carries little padding; else in split
    order. Evaluation and prediction (:mod:`gru_exp.use`) batch through this one function."""
    order = np.argsort(split.lengths, kind="stable") if use_lengths else np.arange(len(split))
    batches = [order[i : i + size] for i in range(0, len(split), size)]
    if drop_last and batches and len(batches[-1]) < size:
        batches.pop()
    return batches


@paddle.no_grad()
def evaluate(model: paddle.nn.Layer, split: Split, cfg: RunConfig, probs: Optional[np.ndarray] = None,
             confusion: Optional[np.ndarray] = None) -> tuple[float, float]:
    """Mean loss and accuracy over ``split``. With lengths, reviews are sorted by length so each
    batch carries little padding (order does not change the result). ``probs`` (float32 [N, C]),
    when given, receives each review's class probabilities in the split's order; ``confusion``
    (int64 [C, C]) the count of each (true, predicted) class pair."""
    model.eval()
    t, use_lengths = cfg.trainer, cfg.model.use_lengths
    batches = eval_batches(split, t.eval_batch_size, use_lengths, t.eval_drop_last)
    loss_sum, correct, seen = 0.0, 0, 0
    for index, batch in zip(batches, iter_batches(split, batches, trim=use_lengths)):
        with paddle.amp.auto_cast(enable=t.amp):
            logits = _forward(model, batch.ids, batch.lengths, use_lengths)  # [B, C]
        labels = paddle.to_tensor(batch.labels)
        loss_sum += float(F.cross_entropy(logits.astype("float32"), labels, reduction="sum"))
        predicted = logits.argmax(axis=-1)
        correct += int((predicted == labels).sum())
        seen += len(batch.labels)
        if confusion is not None:
            add_to_confusion(confusion, batch.labels, predicted.numpy())
        if probs is not None:
            probs[index] = F.softmax(logits.astype("float32"), axis=-1).numpy()  # [B, C]
    return loss_sum / seen, correct / seen


def steps_per_epoch(n_train: int, cfg: RunConfig) -> int:
    """Optimizer steps in one epoch over ``n_train`` texts."""
    t = cfg.trainer
    return n_train // t.batch_size if t.drop_last else -(-n_train // t.batch_size)


def fit(state: TrainState, splits: DataSplits, cfg: RunConfig, callbacks: Sequence[Callback]) -> None:
    """Train from ``state.epoch + 1`` to ``trainer.epochs``; each epoch's batch order depends only
    on (seed, epoch), so a resumed run sees the same batches as an uninterrupted one."""
    model, optimizer, t, use_lengths = state.model, state.optimizer, cfg.trainer, cfg.model.use_lengths
    scheduled = t.lr_schedule != LrSchedule.constant or t.warmup > 0
    scaler = paddle.amp.GradScaler() if t.amp else None
    for cb in callbacks:
        cb.on_train_start(state)
    for epoch in range(state.epoch + 1, t.epochs + 1):
        model.train()
        batches = batch_order(splits.train, t.batch_size, rng=np.random.default_rng([t.seed, 1, epoch]),
                              drop_last=t.drop_last, bucket_size=cfg.data.bucket_size)
        loss_sum = paddle.zeros([], dtype="float32")  # summed on the device: no sync per step
        correct = paddle.zeros([], dtype="int64")
        seen = 0
        start = time.perf_counter()
        for batch in iter_batches(splits.train, batches, trim=use_lengths):
            if scheduled:
                optimizer.set_lr(lr_at(state.step, t.epochs * state.steps_per_epoch, t.lr, t.lr_schedule, t.warmup))
            labels = paddle.to_tensor(batch.labels)
            with paddle.amp.auto_cast(enable=t.amp):
                logits = _forward(model, batch.ids, batch.lengths, use_lengths)  # [B, C]
                loss = F.cross_entropy(logits.astype("float32"), labels) + model.aux_loss(labels)  # [] batch means
            if scaler is not None:  # AMP: the gradients are unscaled before the callbacks read them
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                for cb in callbacks:
                    cb.on_backward(state)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                for cb in callbacks:
                    cb.on_backward(state)
                optimizer.step()
            optimizer.clear_grad()
            loss_sum += loss.detach() * len(batch.labels)
            correct += (logits.argmax(axis=-1) == labels).sum()
            seen += len(batch.labels)
            state.step += 1
            for cb in callbacks:
                cb.on_step_end(state, loss)
        train_time = time.perf_counter() - start
        train_loss = float(loss_sum) / max(seen, 1)
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(f"training loss is {train_loss} in epoch {epoch} (lr too high?)")
        start = time.perf_counter()
        confusion = np.zeros((len(splits.class_names),) * 2, dtype=np.int64)
        eval_loss, eval_acc = evaluate(model, splits.eval, cfg, confusion=confusion)
        state.epoch, state.eval_confusion = epoch, confusion
        state.history.append(EpochMetrics(
            epoch=epoch, train_loss=train_loss, train_acc=int(correct) / max(seen, 1), eval_loss=eval_loss,
            eval_acc=eval_acc, train_time_s=train_time, eval_time_s=time.perf_counter() - start,
            train_samples_per_s=seen / train_time if train_time > 0 else 0.0, eval_macro_f1=macro_f1(confusion),
        ))
        if eval_acc > state.best_eval_acc:
            state.best_epoch, state.best_eval_acc = epoch, eval_acc
        for cb in callbacks:
            cb.on_epoch_end(state)
