"""VisualDL: the tracker callback of every run (per-epoch curves, per-step batch loss, hparams
with final metrics) and the notebook's reference run that every dashboard shows beside them."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import paddle
from visualdl import LogWriter

from gru_exp.config.knobs import hparam_keys, knobs
from gru_exp.config.values import flatten, hparam_value
from gru_exp.notebook import (
    METRIC_TAGS,
    NOTEBOOK,
    NOTEBOOK_CONFIG,
    NOTEBOOK_FINAL_ACC,
    NOTEBOOK_PROTOCOL,
)
from gru_exp.train.loop import Callback, EpochMetrics, TrainState
from gru_exp.train.record import RunRecord

log = logging.getLogger(__name__)


def flat_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The knobs that change results (the register's ``result`` role), as VisualDL accepts them."""
    flat = flatten(config)
    return {key: hparam_value(flat.get(key)) for key in hparam_keys()}


def baseline_hparams() -> dict[str, Any]:
    """The notebook's configuration over every compared knob: register defaults, then its values."""
    defaults = {key: f.default for key, f, _ in knobs() if key in hparam_keys()}
    defaults = {k: (v.value if isinstance(v, Enum) else v) for k, v in defaults.items()}
    return {k: hparam_value(v) for k, v in {**defaults, **NOTEBOOK_CONFIG, **NOTEBOOK_PROTOCOL}.items()}


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
        self.writer = LogWriter(logdir=str(self.logdir), display_name=self.display_name)
        for h in state.history:  # a resumed run carries the epochs it continues from
            self._log_epoch(h)

    def on_step_end(self, state: TrainState, loss: paddle.Tensor) -> None:
        if self.batch_loss_every and state.step % self.batch_loss_every == 0:
            self.writer.add_scalar("train/batch_loss", float(loss), state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        self._log_epoch(state.history[-1])
        self.writer.flush()

    def on_train_end(self, state: TrainState, record: RunRecord) -> None:
        if self.writer is None:
            return
        test = record.test
        if "acc" in test:
            self.writer.add_scalar("test/acc", test["acc"], state.best_epoch or state.epoch)
            self.writer.add_scalar("test/loss", test["loss"], state.best_epoch or state.epoch)
        hparams = dict(state.hparams)
        hparams["status"] = str(record.status)
        self.writer.add_hparams(hparams, list(METRIC_TAGS))
        self.writer.close()
        self.writer = None


def has_records(logdir: Path) -> bool:
    return logdir.is_dir() and any(p.name.startswith("vdlrecords") for p in logdir.iterdir())


def write_baseline(logdir: Path) -> Path:
    """Write the notebook's curves as one VisualDL run in ``logdir`` (replacing what is there)."""
    logdir = Path(logdir)
    logdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".baseline-", dir=logdir.parent))
    with LogWriter(logdir=str(tmp), display_name="baseline: notebook 84-85%") as writer:
        for tag, values in NOTEBOOK.items():
            for epoch, value in enumerate(values, start=1):
                writer.add_scalar(tag, value, epoch)
        writer.add_scalar("test/acc", NOTEBOOK_FINAL_ACC, len(NOTEBOOK["eval/acc"]))
        writer.add_hparams(dict({**baseline_hparams(), "run": "notebook (published)"}), METRIC_TAGS)
    if logdir.exists():
        shutil.rmtree(logdir)
    os.replace(tmp, logdir)
    return logdir


def ensure_baseline(logdir: Path) -> None:
    """Write the baseline run unless it is already there (safe when processes race)."""
    logdir = Path(logdir)
    if has_records(logdir):
        return
    try:
        write_baseline(logdir)
        log.info("Wrote the notebook baseline run to %s", logdir)
    except OSError as exc:  # another process won the race, or a read-only folder: not fatal
        if not has_records(logdir):
            log.warning("Could not write the baseline run to %s: %s", logdir, exc)


