"""Continuing a run from its folder: the state restored from ``checkpoints/last.pdparams``,
checked against the run's record, and the new run folder given what it continues from (the last
and the best checkpoints), with a best checkpoint that lags the last one repaired (see
:class:`gru_exp.train.callbacks.Checkpointer` for why it can lag)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from gru_exp.errors import ConfigError
from gru_exp.train.checkpoints import (
    BEST_CKPT,
    load_checkpoint,
    model_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from gru_exp.train.loop import TrainState
from gru_exp.train.rundir import LAST_CKPT, RECORD_FILE

log = logging.getLogger(__name__)


def resume_from(state: TrainState, ckpt: Path, done: int, best_needed: bool = True) -> bool:
    """Restore ``state`` from ``ckpt``, whose run's record has ``done`` finished epochs, and check
    its best checkpoint against it (ConfigError for a damaged or mismatched one); nothing is
    written; without ``best_needed`` (trainer.test_epoch=last) a missing best checkpoint is no loss.
    Returns whether the best checkpoint lags the last one (repaired by :func:`carry_over`)."""
    restore_checkpoint(state, ckpt)
    _check_epoch(ckpt, state.epoch, done)
    state.resumed_from = str(ckpt.parent.parent)
    best = ckpt.parent.parent / BEST_CKPT
    if not best.is_file() and not best_needed:
        return False
    found = model_checkpoint(state.model, best)["epoch"] if best.is_file() else None  # damaged: refused now
    return _best_lags(best, found, state.best_epoch, state.epoch)


def carry_over(state: TrainState, ckpt: Path, run_dir: Path, best_lags: bool) -> None:
    """Give the continued run's folder (once claimed) what it continues from: the best epoch's
    weights (written again from ``ckpt`` when they lag it) and ``ckpt`` itself."""
    best, target = ckpt.parent.parent / BEST_CKPT, run_dir / BEST_CKPT
    if best_lags:
        log.info("%s lags its last.pdparams (the best is epoch %d): written again from last.pdparams", best,
                 state.epoch)
        save_checkpoint(state, target)
    elif best.is_file() and best.resolve() != target.resolve():
        _copy_whole(best, target)
    if ckpt.resolve() != (run_dir / LAST_CKPT).resolve():  # the new folder holds what it continues from
        _copy_whole(ckpt, run_dir / LAST_CKPT)
    log.info("Resuming %s after epoch %d", state.resumed_from, state.epoch)


def _copy_whole(source: Path, target: Path) -> None:
    """``source`` copied to ``target`` through a temporary file renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_continuable(resume_dir: Path, done: int, best_needed: bool = True) -> None:
    """What :func:`resume_from` will check of ``resume_dir``'s checkpoints, read without building the
    model (ConfigError, one paragraph): last.pdparams readable, of an epoch its record knows, and a
    best.pdparams of the best epoch it names, or one epoch behind it (repaired on resume)."""
    ckpt = resume_dir / LAST_CKPT
    last = load_checkpoint(ckpt)
    _check_epoch(ckpt, last["epoch"], done)
    best = resume_dir / BEST_CKPT
    if not best.is_file() and not best_needed:
        return
    found = load_checkpoint(best)["epoch"] if best.is_file() else None
    _best_lags(best, found, last["best_epoch"], last["epoch"])


def _check_epoch(ckpt: Path, epoch: int, done: int) -> None:
    """last.pdparams at the record's epoch, or one ahead (stopped between the checkpoint and the record)."""
    if epoch not in (done, done + 1):
        raise ConfigError(f"The checkpoint {ckpt} is after epoch {epoch} but its run's {RECORD_FILE} records {done} "
                          "finished epochs: the two do not belong together. Resume from another run folder or start a "
                          "new run.")


def _best_lags(best: Path, found: object, named: object, epoch: int) -> bool:
    """Whether best.pdparams (of epoch ``found``) lags last.pdparams (of ``epoch``, naming ``named``
    as its best): then the best epoch is the last one, whose weights last.pdparams holds. False when
    it is the named epoch (or none is named); ConfigError when the named best's weights are lost."""
    if named is None or found == named:
        return False
    if named != epoch:
        raise ConfigError(f"{best} holds epoch {found} but {best.parent / 'last.pdparams'} names epoch {named} as "
                          "the best: the best weights are lost, so the run cannot be scored honestly. Resume from "
                          "another run folder or start a new run.")
    return True
