"""The study's best objective after each finished trial as its own VisualDL run
(``<study>/best_so_far``), linked into the dashboard folder: the story of the sweep.

The folder is rewritten after every trial, and only ever replaces a folder gru-exp made: one
holding its mark file (``MARK``), or, from before the mark, nothing but VisualDL records that
name this study's curve. Anything else under that name (a user's folder or VisualDL records, a
symlink, a file) is left alone with a warning. The swap is a rename (:func:`replace_own_folder`),
so another worker's reader sees the old run or the new one; the old one is checked again once
renamed away, and its files are removed only if it is still gru-exp's."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import optuna
from optuna.trial import TrialState
from visualdl import LogWriter

from gru_exp.config.paths import holds_only_own_records
from gru_exp.files import new_folder_beside, replace_own_folder
from gru_exp.sweep.summary import objectives
from gru_exp.train.vdl_view import link_into_view

log = logging.getLogger(__name__)
MARK = ".gru_exp_best_so_far"  # in every best_so_far folder gru-exp writes


def is_ours(folder: Path, name: str) -> bool:
    """Whether ``folder`` is a best_so_far run gru-exp wrote, its display name ``name`` (a real
    folder, not a link, holding only its records and mark, or from before the mark, records of
    that name)."""
    return holds_only_own_records(folder, MARK, name, need_records=False)


def write_best_so_far(study: optuna.Study, out: Path, output_dir: Path) -> None:
    objs = objectives(study)
    metric, direction = objs[0]
    points, best = [], None
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and t.values:
            best = t.values[0] if best is None else (max if direction == "maximize" else min)(best, t.values[0])
            points.append((t.number, best))
    target = out / "best_so_far"
    if not points:
        return
    name = f"{study.study_name} best so far ({metric})"
    if os.path.lexists(target) and not is_ours(target, name):
        log.warning("Not writing the best-so-far curve: %s exists and is not a folder gru-exp wrote (no %s in it); "
                    "it is left as it is. Move it away to get the curve.", target, MARK)
        return
    tmp, placed = new_folder_beside(target, "new"), False
    try:
        with LogWriter(logdir=str(tmp), display_name=name) as writer:
            for number, value in points:
                writer.add_scalar(f"study/best_{metric}", value, number)
        (tmp / MARK).write_text("written by gru-exp: the study's best objective per trial; rewritten after each\n")
        placed = replace_own_folder(tmp, target, lambda folder: is_ours(folder, name))
        if not placed:
            log.debug("best_so_far changed meanwhile (another worker's curve, or a file gru-exp did not write): kept")
    finally:
        if not placed:  # once placed, its name is free again: whatever appears there is not this call's
            shutil.rmtree(tmp, ignore_errors=True)  # this call's own folder, not moved into place
    link_into_view(output_dir, target, name)
