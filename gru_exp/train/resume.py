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
from gru_exp.train.record import RECORD_FILE
from gru_exp.train.rundir import LAST_CKPT

log = logging.getLogger(__name__)


def resume_from(state: TrainState, ckpt: Path, done: int, run_dir: Path) -> None:
    """Continue from ``ckpt``, whose run's record has ``done`` finished epochs."""
    restore_checkpoint(state, ckpt)
    _check_epoch(ckpt, state.epoch, done)
    state.resumed_from = str(ckpt.parent.parent)
    _carry_best(state, ckpt.parent.parent / BEST_CKPT, run_dir / BEST_CKPT)
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


def _carry_best(state: TrainState, best: Path, target: Path) -> None:
    """The best epoch's weights for the continued run at ``target``, checked against the restored
    state: a best.pdparams one epoch behind last.pdparams (a kill between the two renames) is
    written again from last.pdparams, whose epoch is then the best; any other mismatch is refused."""
    found = model_checkpoint(state.model, best)["epoch"] if best.is_file() else None  # damaged: refused now
    if not _best_lags(best, found, state.best_epoch, state.epoch):
        if found is not None and best.resolve() != target.resolve():
            _copy_whole(best, target)
        return
    log.info("%s lags its last.pdparams (epoch %s, the best is %d): written again from last.pdparams", best, found,
             state.epoch)
    save_checkpoint(state, target)


def check_continuable(resume_dir: Path, done: int) -> None:
    """What :func:`resume_from` will check of ``resume_dir``'s checkpoints, read without building the
    model (ConfigError, one paragraph): last.pdparams readable, of an epoch its record knows, and a
    best.pdparams of the best epoch it names, or one epoch behind it (repaired on resume)."""
    ckpt = resume_dir / LAST_CKPT
    last = load_checkpoint(ckpt)
    _check_epoch(ckpt, last["epoch"], done)
    best = resume_dir / BEST_CKPT
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
