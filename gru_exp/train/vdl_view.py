"""The VisualDL records shared by every run and the dashboard, without paddle: the hyperparameters
as VisualDL compares them, the dashboard folder of readable links (``<outputs>/vdl``), and the
notebook's reference run (written into a folder gru-exp owns, replaced only whole)."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

from visualdl import LogWriter

from gru_exp.config.knobs import defaults, hparam_tags, read_by
from gru_exp.config.paths import BASELINE_MARK, BASELINE_NAME, VIEW_DIR, baseline_dir_problem, is_baseline_run
from gru_exp.config.values import hparam_value
from gru_exp.errors import ConfigError, GruExpError
from gru_exp.files import new_folder_beside, replace_own_folder
from gru_exp.notebook import (
    NOTEBOOK,
    NOTEBOOK_BEST_ACC,
    NOTEBOOK_CONFIG,
    NOTEBOOK_FINAL_ACC,
    NOTEBOOK_PROTOCOL,
)

log = logging.getLogger(__name__)
# The HParams metric: a scalar every run with a validation split (and the baseline) logs once, at its
# end: the best validation accuracy (the objective of eval_acc sweeps). No test score: the HParams
# views are where runs are sorted and chosen, and every run, pruned or not, has this one (no NaN).
METRICS = ["best_val"]


def axis_value(value: Any) -> Any:
    """A hyperparameter as VisualDL's HParams views order it: numbers as floats (VisualDL draws a
    float on a linear axis, an int as a category in the order runs were first seen:
    docs/dashboard.md), rounded to 4 significant digits; booleans, choices and nulls as text."""
    value = hparam_value(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(f"{value:.4g}") if isinstance(value, float) else float(value)
    return value


def hparams(flat: dict[str, Any], in_effect: dict[str, Any]) -> dict[str, Any]:
    """The knobs that change results (``flat``: a flattened config), by their VisualDL tags, as
    VisualDL can compare them (:func:`axis_value`), a null replaced by the value in effect. The
    knobs set away from their declared defaults (a sweep's searched and base knobs, an experiment's)
    come first, in the register's order; those at their defaults after them. Data knobs its data
    source does not read are left out."""
    declared = defaults()
    flat = {**declared, **flat}
    changed, constant = {}, {}
    for key, tag in hparam_tags().items():
        if not read_by(key, flat["data.source"]):  # e.g. the table's columns on an IMDB run: not a setting of it
            continue
        value = flat.get(key)
        (constant if value == declared.get(key) else changed)[tag] = axis_value(
            in_effect.get(key, "null") if value is None else value)
    return {**changed, **constant}


def logged_metrics(best_val: bool) -> list[str]:
    """The HParams metrics a run logged: VisualDL shows a listed metric without its scalar as NaN,
    so a run without a validation split (the notebook's protocol) lists none."""
    return list(METRICS) if best_val else []


def in_effect(flat: dict[str, Any], n_train: int, n_test: int, longest: int) -> dict[str, Any]:
    """What a null knob means for this run (``flat``: its flattened config), as a number of the
    same type as its other values."""
    return {"data.seq_len": longest, "data.train_limit": n_train, "data.test_limit": n_test,
            "model.layer_dropout": flat["model.dropout"], "data.split_seed": flat["trainer.seed"],
            "model.attention_size": flat["model.hidden_size"] * (2 if str(flat["model.direction"]) == "bidirectional" else 1)}


def view_name(text: str) -> str:
    """A display name as a link name in the dashboard folder (no '/', no leading dot)."""
    return re.sub(r"[/\\\x00-\x1f]", " ", text).strip(" .")[:180] or "run"


def run_display_name(name: str) -> str:
    """A run's display name in VisualDL: never the baseline's (a run in a folder named like it)."""
    return f"{name} (a run)" if view_name(name) == BASELINE_NAME else name


def link_into_view(output_dir: Path, target: Path, name: str) -> None:
    """``<output_dir>/vdl/<name>`` -> ``target`` (relative, so the outputs folder can move). VisualDL
    names a run in its HParams views by its folder as walked, so the link gives it a readable ID.
    A link never replaces another: a name already linked to another run (or a file there) gets
    " (2)", " (3)"...; the baseline's name is the baseline's alone. A link is never removed, not
    even one whose folder is gone: nothing tells a link gru-exp made from one a user made."""
    view = Path(output_dir) / VIEW_DIR
    base = view_name(name)
    if base == BASELINE_NAME and not is_baseline_run(Path(target)):
        base = f"{base} (a run)"
    try:
        view.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            link = view / (base if n == 1 else f"{base} ({n})")
            if link.is_symlink() and link.resolve() == Path(target).resolve():
                return
            if not os.path.lexists(link):
                _warn_stale_names(view, target, link.name)
                link.symlink_to(os.path.relpath(target, view), target_is_directory=True)
                return
        log.warning("Not linking %s into the dashboard folder: 999 names %r are taken.", target, base)
    except OSError as exc:  # a file system without symlinks: the run's own folder still has its records
        log.warning("Could not link %s into the dashboard folder %s: %s", target, view, exc)


def _warn_stale_names(view: Path, target: Path, name: str) -> None:
    """Warn about links in ``view`` under other names that lead to ``target``: made for an earlier
    run in the same folder (a study started over), they now show this run under that run's name.
    Never removed (nothing tells a link gru-exp made from a user's): the warning names them."""
    here = Path(target).resolve()
    others = sorted(p.name for p in view.iterdir() if p.is_symlink() and p.name != name and p.resolve() == here)
    if others:
        log.warning("The dashboard folder %s also links %s under %s, made for an earlier run in that folder: "
                    "VisualDL shows this run under those names too. Remove those links to end it.", view, target,
                    ", ".join(repr(o) for o in others[:5]))


def has_records(logdir: Path) -> bool:
    return logdir.is_dir() and any(p.name.startswith("vdlrecords") for p in logdir.iterdir())


def baseline_hparams() -> dict[str, Any]:
    """The notebook's configuration over every compared knob (register defaults, then its values),
    with its nulls in effect: it trained on all 25,000 reviews and scored all 25,000 test reviews."""
    flat = {**defaults(), **NOTEBOOK_CONFIG, **NOTEBOOK_PROTOCOL}
    effect = in_effect(flat, 25000, 25000, NOTEBOOK_CONFIG["data.seq_len"])
    return hparams(flat, effect)




def write_baseline(logdir: Path) -> Path:
    """Write the notebook's curves as one VisualDL run in ``logdir``: a new or empty folder, or one
    holding an earlier baseline run that gru-exp wrote (replaced as a whole: the new run is written
    beside it and moved into place by :func:`replace_own_folder`, which checks the earlier one again
    once it is out of the way). Any other folder is refused (ConfigError): gru-exp never removes
    what it did not write."""
    logdir = Path(os.path.abspath(logdir))
    problem = baseline_dir_problem(logdir)
    if problem:
        raise ConfigError(f"Cannot write the notebook baseline: {problem}.")
    logdir.parent.mkdir(parents=True, exist_ok=True)
    tmp, placed = new_folder_beside(logdir, "new"), False
    try:
        with LogWriter(logdir=str(tmp), display_name=BASELINE_NAME) as writer:
            for tag, values in NOTEBOOK.items():
                for epoch, value in enumerate(values, start=1):
                    writer.add_scalar(tag, value, epoch)
            final = len(NOTEBOOK["eval/acc"])
            writer.add_scalar("test/acc", NOTEBOOK_FINAL_ACC, final)
            # Its evaluation set was the test set: its best epoch (87.10%) is its "best_val"; the
            # accuracy it published, after 10 epochs, is its test accuracy.
            writer.add_scalar("best_val", NOTEBOOK_BEST_ACC, final)
            writer.add_hparams({**baseline_hparams(), "status": "published"}, METRICS)
        (tmp / BASELINE_MARK).write_text("The notebook's published curves, written by gru-exp (gru-exp baseline); "
                                         "gru-exp replaces this folder only while it holds nothing else.\n")
        placed = replace_own_folder(tmp, logdir, is_baseline_run)
        if not placed and not is_baseline_run(logdir):  # else another process wrote it meanwhile
            raise GruExpError(f"Did not write the notebook baseline: {logdir} changed while it was written (a file "
                              "gru-exp did not write appeared in it, or another process wrote its baseline); it is "
                              "left as it is.")
    finally:
        if not placed:  # once placed, its name is free again: whatever appears there is not this call's
            shutil.rmtree(tmp, ignore_errors=True)  # this call's own staging folder, not moved into place
    return logdir


def ensure_baseline(logdir: Path, output_dir: Optional[Path] = None) -> None:
    """Write the baseline run unless it is already there (safe when processes race), and link it
    into the dashboard folder of ``output_dir``."""
    logdir = Path(logdir)
    if not has_records(logdir):
        try:
            write_baseline(logdir)
            log.info("Wrote the notebook baseline run to %s", logdir)
        except (OSError, GruExpError) as exc:  # another process won the race, a read-only folder: not fatal
            if not has_records(logdir):
                log.warning("Could not write the baseline run to %s: %s", logdir, exc)
    link = Path(output_dir or ".") / VIEW_DIR / BASELINE_NAME
    shown = link.is_symlink() and is_baseline_run(link.resolve())  # one baseline in the view
    if output_dir is not None and is_baseline_run(logdir) and not shown:
        if link.is_symlink():
            log.warning("The dashboard link %s leads to %s, which holds no baseline run any more (never removed: it "
                        "may be yours); the baseline %s is linked beside it.", link, os.readlink(link), logdir)
        link_into_view(output_dir, logdir, BASELINE_NAME)
