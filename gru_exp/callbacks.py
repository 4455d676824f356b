"""Standard callbacks of every run: progress lines, checkpoints, the metrics.json record, early stopping."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import paddle

from gru_exp.files import write_json
from gru_exp.training import Callback, EpochMetrics, StopRun, TrainState

log = logging.getLogger(__name__)

LAST_CKPT = "checkpoints/last.pdparams"
BEST_CKPT = "checkpoints/best.pdparams"


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ProgressLogger(Callback):
    """A progress bar in the log: steps, steps/s and ETA every ``every_s`` seconds, and one line
    per epoch with its metrics."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s

    def on_train_start(self, state: TrainState) -> None:
        self.run_start = time.perf_counter()
        self.first_epoch = state.epoch + 1
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.epoch_start = self.last_line = time.perf_counter()
        self.epoch_steps = 0

    def on_step_end(self, state: TrainState, loss: paddle.Tensor) -> None:
        self.epoch_steps += 1
        now = time.perf_counter()
        if self.every_s and now - self.last_line >= self.every_s:
            self.last_line = now
            rate = self.epoch_steps / (now - self.epoch_start)
            total = state.steps_per_epoch
            done = int(20 * self.epoch_steps / max(total, 1))
            eta = (total - self.epoch_steps) / rate if rate else 0.0
            log.info(
                "epoch %d/%d [%s%s] %d/%d steps, %.2f steps/s, loss %.4f, epoch ETA %s",
                state.epoch + 1, state.epochs, "#" * done, "." * (20 - done), self.epoch_steps, total,
                rate, float(loss), _fmt_duration(eta),
            )

    def on_epoch_end(self, state: TrainState) -> None:
        h = state.history[-1]
        elapsed = time.perf_counter() - self.run_start
        done = state.epoch - self.first_epoch + 1
        eta = elapsed / done * (state.epochs - state.epoch)
        log.info(
            "epoch %d/%d: train loss %.4f acc %.4f | %s loss %.4f acc %.4f%s | %.1f s train (%.0f samples/s) "
            "+ %.1f s eval | run ETA %s",
            h.epoch, state.epochs, h.train_loss, h.train_acc, state.eval_name, h.eval_loss, h.eval_acc,
            " (best)" if state.is_best else "", h.train_time_s, h.train_samples_per_s, h.eval_time_s,
            _fmt_duration(eta),
        )
        self._start_epoch()


def _portable_optimizer_state(model: paddle.nn.Layer, state: dict[str, Any]) -> dict[str, Any]:
    """Key optimizer accumulators by structural parameter name ('gru.weight_ih_l0') instead of
    paddle's process-global names ('gru_3.w_0'), which differ between processes and models."""
    by_name = {p.name: f"@{n}" for n, p in model.named_parameters()}
    out = {}
    for key, value in state.items():
        owner = max((name for name in by_name if key.startswith(name + "_")), key=len, default=None)
        out[by_name[owner] + key[len(owner):] if owner else key] = value
    return out


def _local_optimizer_state(model: paddle.nn.Layer, state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_portable_optimizer_state` for this process's parameter names."""
    by_structure = {f"@{n}": p.name for n, p in model.named_parameters()}
    out = {}
    for key, value in state.items():
        owner = max((s for s in by_structure if key.startswith(s + "_")), key=len, default=None)
        out[by_structure[owner] + key[len(owner):] if owner else key] = value
    return out


def save_checkpoint(state: TrainState, path: Path) -> None:
    """Everything needed to continue: weights, optimizer, epoch, history and paddle's RNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    paddle.save(
        {
            "model": state.model.state_dict(),
            "optimizer": _portable_optimizer_state(state.model, state.optimizer.state_dict()),
            "epoch": state.epoch,
            "step": state.step,
            "history": state.history_dict(),
            "best_epoch": state.best_epoch,
            "best_eval_acc": state.best_eval_acc,
            "rng": paddle.get_rng_state(),
        },
        str(tmp),
    )
    os.replace(tmp, path)  # never a half-written checkpoint under the real name


def restore_checkpoint(state: TrainState, path: Path) -> None:
    """Load a :func:`save_checkpoint` file into ``state`` (model, optimizer, counters, RNG)."""
    ckpt = paddle.load(str(path))
    state.model.set_state_dict(ckpt["model"])
    state.optimizer.set_state_dict(_local_optimizer_state(state.model, ckpt["optimizer"]))
    state.epoch, state.step = ckpt["epoch"], ckpt["step"]
    state.history = [EpochMetrics(**h) for h in ckpt["history"]]
    state.best_epoch, state.best_eval_acc = ckpt["best_epoch"], ckpt["best_eval_acc"]
    paddle.set_rng_state(ckpt["rng"])


class Checkpointer(Callback):
    """checkpoints/last.pdparams after every epoch; checkpoints/best.pdparams when eval acc improves."""

    def on_epoch_end(self, state: TrainState) -> None:
        save_checkpoint(state, state.run_dir / LAST_CKPT)
        if state.is_best:
            save_checkpoint(state, state.run_dir / BEST_CKPT)


class MetricsRecorder(Callback):
    """Keeps ``metrics.json`` current: status 'running' with the epochs so far, then the final
    record (written by the pipeline through on_train_end)."""

    def __init__(self, static: dict[str, Any]) -> None:
        self.static = static  # config, device, versions, ...
        self.last: dict[str, Any] = {}

    def record(self, state: TrainState, **extra: Any) -> dict[str, Any]:
        h = state.history
        record = {
            **self.static,
            "run_dir": str(state.run_dir),
            "eval_split": state.eval_name,
            "epochs_done": state.epoch,
            "best_epoch": state.best_epoch,
            "best_eval_acc": state.best_eval_acc if state.best_epoch else None,
            "resumed_from": state.resumed_from,
            "series": {key: [getattr(e, key) for e in h] for key in (
                "epoch", "train_loss", "train_acc", "eval_loss", "eval_acc", "train_time_s", "eval_time_s",
                "train_samples_per_s")},
            **extra,
        }
        write_json(state.run_dir / "metrics.json", record)
        self.last = record
        return record

    def on_train_start(self, state: TrainState) -> None:
        self.record(state, status="running")

    def on_epoch_end(self, state: TrainState) -> None:
        self.record(state, status="running")

    def on_train_end(self, state: TrainState, result: dict[str, Any]) -> None:
        self.record(state, **result)


class EarlyStopping(Callback):
    """Ends the run when the evaluation accuracy has not improved for ``patience`` epochs.

    Runs after every other callback, so trackers and checkpoints see the last epoch. The run
    counts as completed: the best epoch (by evaluation accuracy) is scored on the test set."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, state: TrainState) -> None:
        if state.best_epoch is None or state.epoch >= state.epochs:
            return
        stale = state.epoch - state.best_epoch
        if stale >= self.patience:
            raise StopRun("completed", f"early stopping: {state.eval_name} accuracy has not improved for {stale} "
                          f"epoch(s) since epoch {state.best_epoch} (trainer.patience={self.patience})")
