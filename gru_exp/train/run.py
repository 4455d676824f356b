"""One training run, start to finish: config -> data -> model -> loop -> callbacks -> run record.

:func:`run_training` is the library's single way to train; ``python -m gru_exp.train`` and every
sweep trial call it. All user errors (bad values, missing data, incompatible resume) are raised
before the first step, so a run folder never holds a half result that looks real.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from omegaconf import DictConfig

from gru_exp.config.knobs import BagUpdate, DataSource, NgramJoin, RunConfig, TestEpoch
from gru_exp.config.validation import validate
from gru_exp.config.values import flatten, override, run_config, split_seed, to_container
from gru_exp.errors import ConfigError, DiskFullError
from gru_exp.logs import RunLog
from gru_exp.redact import redact_all
from gru_exp.train import device as devices
from gru_exp.train.callbacks import (
    Checkpointer,
    EarlyStopping,
    MetricsRecorder,
    ProgressLogger,
    TerminalProgressBar,
)
from gru_exp.train.checkpoints import model_checkpoint
from gru_exp.data import sources
from gru_exp.data.cache import DataFiles
from gru_exp.data.splits import DataSplits, make_splits
from gru_exp.data.tokens import read_vocabulary, write_vocabulary
from gru_exp.train.loop import Callback, StopRun, TrainState, evaluate, fit, steps_per_epoch
from gru_exp.train.model import GRUClassifier, describe
from gru_exp.train.ngrams import fit_ratios, fit_vocabulary, fit_weights, training_ngrams
from gru_exp.train.optim import Optimizer, make_optimizer
from gru_exp.train.preflight import check_memory, check_resume
from gru_exp.train.record import RunRecord, Status, package_versions
from gru_exp.train.resume import carry_over, resume_from
from gru_exp.train.rundir import BEST_CKPT, LAST_CKPT, RUN_LOG, VOCAB_FILE, claimed_run_dir, display_name_of
from gru_exp.train.scores import macro_f1, majority, per_class, positive_class
from gru_exp.train.vdl_view import ensure_baseline, hparams, in_effect, run_display_name
from gru_exp.train.visualdl import VisualDLTracker
from gru_exp.train.visualdl_extras import roc_auc

log = logging.getLogger(__name__)


def load_data(rc: RunConfig, found: Union[DataFiles, Path]) -> DataSplits:
    """The run's splits of the data ``found`` (or an IMDB archive's path); ConfigError when a
    drop_last batch size leaves a split without a batch."""
    d, t = rc.data, rc.trainer
    if not isinstance(found, DataFiles):
        found = DataFiles(str(found), {"archive": Path(found)})
    splits = make_splits(sources.load(d, found), seq_len=d.seq_len, val_size=d.val_size,
                         train_limit=d.train_limit, test_limit=d.test_limit, val_split=d.val_split,
                         seed=split_seed(rc))
    for split, size, drop, key in ((splits.train, t.batch_size, t.drop_last, "batch_size"),
                                   (splits.eval, t.eval_batch_size, t.eval_drop_last, "eval_batch_size")):
        if drop and len(split) < size:
            raise ConfigError(f"trainer.{key}={size} with drop_last leaves no batch of the {len(split)} reviews "
                              f"in this split; use a smaller trainer.{key} or more data.")
    return splits


def build(rc: RunConfig, splits: DataSplits, fit: bool = True) -> tuple[GRUClassifier, Optimizer]:
    """The model and its optimizer, as the config says; ``fit`` false (a resume: the checkpoint holds
    them) leaves the n-gram model's vocabulary, ratios and prefit weights unfitted."""
    model = GRUClassifier(splits.vocab_size, rc.model, num_classes=len(splits.class_names),
                          read_rows=rc.trainer.bag_update == BagUpdate.rows)
    if model.ngrams is not None and fit:  # the n-gram model's fixed ratios (and prefit weights), from the training split
        fit_vocabulary(model.ngrams, splits.train)
        read = training_ngrams(model.ngrams, splits.train)
        model.ngrams.set_ratios(fit_ratios(model.ngrams, read, len(splits.class_names)))
        if rc.model.nb_join == NgramJoin.prefit:
            fit_weights(model.ngrams, read, rc.model.nb_c)
    return model, make_optimizer(rc, model)


def _score_on_test(state: TrainState, splits: DataSplits, rc: RunConfig, record: RunRecord) -> None:
    """The test accuracy of the best eval epoch's weights, or of the last epoch's (a refit: no
    epoch chosen by any score). With data.val_size=0 every epoch was scored on test already."""
    which = rc.trainer.test_epoch
    record.test_epoch = state.best_epoch if which == TestEpoch.best else state.epoch
    if splits.eval_name == "test":
        scored = state.history[record.test_epoch - 1]
        record.test = {"acc": scored.eval_acc, "loss": scored.eval_loss, "macro_f1": scored.eval_macro_f1}
        if state.eval_confusion is not None and record.test_epoch == state.epoch:
            record.test_classes = per_class(state.eval_confusion, splits.class_names)
            record.test_confusion = state.eval_confusion.tolist()
        return
    weights = state.run_dir / (BEST_CKPT if which == TestEpoch.best else LAST_CKPT)
    ckpt = model_checkpoint(state.model, weights)
    if ckpt["epoch"] != record.test_epoch:  # never a score under another epoch's name
        raise ConfigError(f"{weights} holds epoch {ckpt['epoch']}, not epoch {record.test_epoch} that the run would "
                          "score on test: its checkpoints disagree. Resume it from its last.pdparams or start a new run.")
    state.model.set_state_dict(ckpt["model"])
    probs = np.zeros((len(splits.test), len(splits.class_names)), dtype=np.float32)
    confusion = np.zeros((len(splits.class_names),) * 2, dtype=np.int64)
    loss, acc = evaluate(state.model, splits.test, rc, probs=probs, confusion=confusion)
    positive = positive_class(splits.class_names)
    state.test_positive_prob = probs[:, positive] if positive is not None else None
    record.test = {"acc": acc, "loss": loss, "macro_f1": macro_f1(confusion)}
    if positive is not None:  # ROC AUC of the positive class (binary data only)
        auc = roc_auc(splits.test.labels == positive, state.test_positive_prob)  # NaN: a test set of one class
        if auc == auc:
            record.test["auc"] = auc
    record.test_classes, record.test_confusion = per_class(confusion, splits.class_names), confusion.tolist()


def _check_same_reading(resume_dir: Path, then: Sequence[str], splits: DataSplits) -> None:
    """ConfigError when the data, read now, gives other classes (names or order) than ``then`` (the
    record's) or another vocabulary than when the run at ``resume_dir`` trained (the same bytes read
    by other reading rules, e.g. numeric labels): continuing would train and score its weights under
    other labels."""
    words = resume_dir / VOCAB_FILE
    changed = [f"classes {list(then)} then, {list(splits.class_names)} now"] if then and list(then) != list(
        splits.class_names) else []
    if words.is_file() and read_vocabulary(words) != list(splits.words):
        changed.append("another vocabulary")
    if changed:
        raise ConfigError(f"trainer.resume={str(resume_dir)!r}: the same data reads differently now than when that run "
                          f"trained ({'; '.join(changed)}: gru-exp's reading rules changed since); continuing would "
                          "train and score its weights under other labels. Train it again in a new folder. Nothing was "
                          "written.")


def run_training(cfg: DictConfig, run_dir: Path, callbacks: Sequence[Callback] = (),
                 display_name: Optional[str] = None) -> RunRecord:
    """Train one model as ``cfg`` says, leaving a complete record in ``run_dir``: every check
    (config, data, resume, memory) comes first, and only then is the folder claimed and written
    (its run.log from this call's first line).

    ``callbacks`` run after the standard ones (progress, checkpoints, metrics.json, VisualDL); a
    callback may end the run early by raising :class:`~gru_exp.train.loop.StopRun`.
    """
    run_log = RunLog()
    try:
        return _train(cfg, Path(run_dir), callbacks, display_name, run_log)
    finally:
        run_log.close()


def _train(cfg: DictConfig, run_dir: Path, callbacks: Sequence[Callback], display_name: Optional[str],
           run_log: RunLog) -> RunRecord:
    wall_start = time.perf_counter()
    validate(cfg)
    config, rc = to_container(cfg), run_config(cfg)  # rc: the typed config
    found = sources.find(rc.data)  # the data's files, checked (the imdb source: the archive, or paddle's download)
    config["data"].update(sources.recorded_paths(rc.data, found))  # absolute: a resume from anywhere finds them
    resume_dir = Path(rc.trainer.resume).expanduser() if rc.trainer.resume else None
    resume_ckpt, resume_done = check_resume(config, resume_dir) if resume_dir else (None, 0)
    earlier = RunRecord.read(resume_dir) if resume_dir else None  # the run it continues
    earlier_s = (earlier.wall_time_s or 0.0) if earlier else 0.0
    device = devices.prepare(rc.trainer)
    devices.seed_everything(rc.trainer.seed)

    data_start = time.perf_counter()
    splits = load_data(rc, found)
    data_time = time.perf_counter() - data_start
    if resume_dir is not None and earlier is not None:
        _check_same_reading(resume_dir, earlier.classes, splits)
    log.info("Data: %d train, %d %s, %d test texts; %d classes; vocabulary %d; %.2f s", len(splits.train),
             len(splits.eval), splits.eval_name, len(splits.test), len(splits.class_names), splits.vocab_size, data_time)
    if splits.test_from:
        log.info("Test texts: %s", splits.test_from)
    most = majority(splits.train.labels, splits.test.labels, splits.class_names)  # the floor any model must beat
    log.info("Majority-class baseline ('%s' for every text): test acc %.4f, macro-F1 %.4f", most["class"], most["acc"],
             most["macro_f1"])
    check_memory(rc, splits)
    model, optimizer = build(rc, splits, fit=resume_ckpt is None)
    state = TrainState(run_dir=run_dir, hparams={}, model=model, optimizer=optimizer, epochs=rc.trainer.epochs,
                       steps_per_epoch=steps_per_epoch(len(splits.train), rc), eval_name=splits.eval_name)
    best_needed = rc.trainer.test_epoch == TestEpoch.best  # test_epoch=last: a run that kept only last.pdparams resumes
    best_lags = resume_from(state, resume_ckpt, resume_done, best_needed) if resume_ckpt is not None else False
    with claimed_run_dir(run_dir, resume_dir):  # from here on this run writes there, and no other
        run_log.open(run_dir / RUN_LOG)
        write_vocabulary(run_dir / VOCAB_FILE, splits.words)  # what predict and export tokenize new texts with
        if resume_ckpt is not None:
            carry_over(state, resume_ckpt, run_dir, best_lags)

        n_params = sum(int(p.numel()) for p in model.parameters())
        record = RunRecord(config=config, run_dir=run_dir, device=device, versions=package_versions(),
                           host=socket.gethostname(), pid=os.getpid(), command=redact_all(sys.argv), n_params=n_params,
                           data_load_s=data_time, archive=found.what, archive_sha256=found.sha256(),
                           n_train=len(splits.train), n_eval=len(splits.eval), n_test=len(splits.test),
                           classes=list(splits.class_names), test_from=splits.test_from, baselines={"majority": most})
        checkpointer = Checkpointer(rc.trainer.keep_checkpoints,
                                    BEST_CKPT if rc.trainer.test_epoch == TestEpoch.best else LAST_CKPT)
        every: list[Callback] = [ProgressLogger(rc.trainer.progress_every_s), TerminalProgressBar(), checkpointer,
                                 MetricsRecorder(record)]
        if rc.logger.visualdl:
            flat = flatten(config)
            state.hparams = hparams(flat, in_effect(flat, len(splits.train), len(splits.test), splits.longest))
            name = run_display_name(display_name or display_name_of(run_dir, rc.paths.output_dir))
            every.append(VisualDLTracker(run_dir / "vdl", name, rc.logger, splits.words, splits.test,
                                         splits.test.labels, Path(rc.paths.output_dir), splits.class_names))
        every.extend(callbacks)
        if rc.trainer.patience:
            every.append(EarlyStopping(rc.trainer.patience))  # last: every other callback sees the epoch
        if rc.logger.baseline and rc.data.source == DataSource.imdb:  # the notebook's curves are IMDB's
            ensure_baseline(Path(rc.paths.baseline_dir), Path(rc.paths.output_dir) if rc.logger.visualdl else None)
        log.info("Model: %s: %d parameters on %s", describe(rc.model, splits.vocab_size), n_params, device)

        failing = False
        try:
            try:
                fit(state, splits, rc, every)
                record.status = Status.completed
            except StopRun as stop:
                record.status, record.stop_reason = Status(stop.status), str(stop)
                log.info("Run stopped after epoch %d: %s", state.epoch, stop)
            if record.status == Status.completed and state.best_epoch is not None:
                _score_on_test(state, splits, rc, record)
                log.info("Test (%s epoch, %d): acc %.4f, loss %.4f, macro-F1 %.4f", rc.trainer.test_epoch,
                         record.test_epoch, record.test["acc"], record.test["loss"], record.test["macro_f1"])
        except KeyboardInterrupt as exc:
            record.status, record.error, failing = Status.interrupted, type(exc).__name__, True
            raise
        except BaseException as exc:
            record.status, record.error, failing = Status.failed, f"{type(exc).__name__}: {exc}", True
            if is_disk_full(exc):
                kept = (f"its folder {run_dir} keeps epoch {state.committed_epoch} (checkpoints/last.pdparams and "
                        f"metrics.json). Free some space, then continue it with "
                        f"{override('trainer.resume', str(run_dir))}") if state.committed_epoch else \
                    f"no epoch was saved in {run_dir}. Free some space, then start it again"
                raise DiskFullError(f"No space left on device while writing {getattr(exc, 'filename', None) or run_dir} "
                                    f"in epoch {state.epoch + 1 if state.committed_epoch == state.epoch else state.epoch}"
                                    f": the run stopped, and {kept}.") from None
            raise
        finally:
            record.wall_time_s = earlier_s + time.perf_counter() - wall_start  # every session of the run
            _finish(every, state, record, failing)
        checkpointer.finish(state, record)  # scored and recorded: now the checkpoints it does not keep go
    return record


def _finish(callbacks: Sequence[Callback], state: TrainState, record: RunRecord, failing: bool) -> None:
    """Every callback's end of training. While a run is already failing (e.g. disk full), a callback
    that cannot write is logged: the first error is the one to report. A signal meanwhile (Ctrl-C
    while the final record is written) leaves the record saying "interrupted", never "running"."""
    for cb in callbacks:
        try:
            cb.on_train_end(state, record)
        except OSError as exc:
            if not failing:
                raise
            log.warning("%s could not finish: %s", type(cb).__name__, exc)
        except KeyboardInterrupt:
            record.status, record.error = Status.interrupted, "KeyboardInterrupt"
            record.write()
            raise


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for want of space (disk full, quota, file size limit)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
