"""Standard callbacks of every run: progress lines, checkpoints, the metrics.json record, early stopping;
and the config records of a run started from the command line."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

import paddle
from omegaconf import DictConfig, OmegaConf

from gru_exp.files import atomic_write_text
from gru_exp.train.checkpoints import keep_only, save_checkpoint
from gru_exp.train.loop import Callback, StopRun, TrainState
from gru_exp.train.record import SERIES_KEYS, RunRecord, Status
from gru_exp.train.rundir import BEST_CKPT, CONFIG_RECORDS, LAST_CKPT

log = logging.getLogger(__name__)


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


class TerminalProgressBar(Callback):
    """On a terminal, an in-place bar per epoch (steps, steps/s, loss, ETA), beside the periodic
    log lines that files and sweep workers keep. Does nothing when stderr is not a terminal."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stderr
        self.bar = None

    def on_step_end(self, state: TrainState, loss: paddle.Tensor) -> None:
        if not self.stream.isatty():
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=state.steps_per_epoch, desc=f"epoch {state.epoch + 1}/{state.epochs}",
                            file=self.stream, leave=False, unit="step", dynamic_ncols=True)
        self.bar.update(1)
        if self.bar.n % 10 == 0:
            self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, state: TrainState, record: RunRecord) -> None:
        self.on_epoch_end(state)


class Checkpointer(Callback):
    """checkpoints/last.pdparams after every epoch, then checkpoints/best.pdparams when eval acc
    improved; metrics.json follows (MetricsRecorder runs after this).

    last.pdparams is the commit point of an epoch: it holds everything (weights, optimizer, history,
    the best epoch's number), and each file is renamed into place whole. A kill at any instant
    therefore leaves last.pdparams at the previous epoch or at the new one; best.pdparams and
    metrics.json may lag it by that one epoch, never lead it. A resume repairs the lag from
    last.pdparams (:mod:`gru_exp.train.resume`), and the test score is taken only from a checkpoint
    whose epoch is the one it is reported under.

    ``keep`` (trainer.keep_checkpoints) applies in :meth:`finish`, which the run calls once it has
    finished (completed or pruned), been scored and recorded; only files this run wrote are removed.
    best.pdparams holds no optimizer state: only last.pdparams, written in full, is ever resumed."""

    def __init__(self, keep: str = "all", scored: str = BEST_CKPT) -> None:
        self.keep, self.scored = str(keep), scored  # scored: the file the test score is read from
        self.written: set[str] = set()

    def on_train_start(self, state: TrainState) -> None:
        """A resume into a new folder copied its checkpoints there: this run's. Resumed in place,
        the files there are the earlier run's until this run writes them."""
        if not (state.resumed_from and Path(state.resumed_from).resolve() == state.run_dir.resolve()):
            self.written.update(n for n in (BEST_CKPT, LAST_CKPT) if (state.run_dir / n).is_file())

    def on_epoch_end(self, state: TrainState) -> None:
        save_checkpoint(state, state.run_dir / LAST_CKPT)
        self.written.add(LAST_CKPT)
        state.committed_epoch = state.epoch
        if state.is_best:
            save_checkpoint(state, state.run_dir / BEST_CKPT, optimizer=False)  # scored, never resumed
            self.written.add(BEST_CKPT)

    def finish(self, state: TrainState, record: RunRecord) -> None:
        """Keep what ``keep`` says, once the run finished; an interrupted or failed run keeps all."""
        if record.status not in (Status.completed, Status.pruned) or self.keep == "all":
            return
        removed = keep_only(state.run_dir, self.keep, self.written, self.scored)
        if removed:
            log.info("trainer.keep_checkpoints=%s: removed %s", self.keep, ", ".join(removed))


class MetricsRecorder(Callback):
    """Keeps the run record (``metrics.json``) current: status running with the epochs so far,
    then the final status, test score and wall time."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def _update(self, state: TrainState) -> None:
        """The record of the epochs last.pdparams holds: an epoch whose checkpoint was never
        committed (a signal or a full disk while writing it) is not in the record either, so the
        record never runs ahead of what a resume continues from."""
        r, done = self.record, state.committed_epoch
        history = state.history[:done]
        if done == state.epoch:
            r.best_epoch, r.best_eval_acc = state.best_epoch, state.best_eval_acc if state.best_epoch else None
        else:  # the best among the committed epochs (the first of equals, as fit chooses)
            best = max(history, key=lambda h: h.eval_acc) if history else None
            r.best_epoch, r.best_eval_acc = (best.epoch, best.eval_acc) if best else (None, None)
        r.eval_split, r.epochs_done, r.resumed_from = state.eval_name, done, state.resumed_from
        r.series = {key: [getattr(e, key) for e in history] for key in SERIES_KEYS}
        r.write()

    def on_train_start(self, state: TrainState) -> None:
        self.record.status = Status.running
        self._update(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self._update(state)

    def on_train_end(self, state: TrainState, record: RunRecord) -> None:
        self._update(state)


class EarlyStopping(Callback):
    """Ends the run when the evaluation accuracy has not improved for ``patience`` epochs.

    Runs after every other callback, so trackers and checkpoints see the last epoch. The run
    counts as completed: the best epoch (by evaluation accuracy) is scored on the test set."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_train_start(self, state: TrainState) -> None:
        self.on_epoch_end(state)  # a resumed run that had already stopped: it stops again, training nothing more

    def on_epoch_end(self, state: TrainState) -> None:
        if state.best_epoch is None or state.epoch >= state.epochs:
            return
        stale = state.epoch - state.best_epoch
        if stale >= self.patience:
            raise StopRun(Status.completed, f"early stopping: {state.eval_name} accuracy has not improved for {stale} "
                          f"epoch(s) since epoch {state.best_epoch} (trainer.patience={self.patience})")


class ConfigRecords(Callback):
    """The job's config in Hydra's layout, ``.hydra/{config,hydra,overrides}.yaml``, written when the
    run starts (after its checks), as Hydra itself would have written them before."""

    def __init__(self, cfg: DictConfig, hydra: DictConfig) -> None:
        self.files = {"config.yaml": OmegaConf.to_yaml(cfg), "hydra.yaml": OmegaConf.to_yaml({"hydra": hydra}),
                      "overrides.yaml": OmegaConf.to_yaml(list(hydra.overrides.task))}

    def on_train_start(self, state: TrainState) -> None:
        (state.run_dir / CONFIG_RECORDS).mkdir(exist_ok=True)
        for name, text in self.files.items():
            atomic_write_text(state.run_dir / CONFIG_RECORDS / name, text)
