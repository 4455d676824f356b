"""Which finished run a ``predict`` or ``export`` uses, and what it recorded: a run folder given by
path, or a study's best trial (or the trial named), checked before any model is built. Reads only
(metrics.json, vocab.txt, the study's storage); never imports paddle."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import OmegaConf

from gru_exp.config.knobs import RunConfig, TestEpoch
from gru_exp.data.tokens import Vocabulary
from gru_exp.errors import GruExpError
from gru_exp.files import Terminated
from gru_exp.sweep.study_file import study_folder_around
from gru_exp.train.record import RecordError, RunRecord, Status
from gru_exp.train.rundir import BEST_CKPT, LAST_CKPT, RECORD_FILE, VOCAB_FILE

log = logging.getLogger(__name__)
STUDY_KEYS = ("study_name", "storage", "trial")
WHAT = ("give a finished run folder (it holds metrics.json, vocab.txt and checkpoints/), a study folder "
        "(it holds study.json) or study_name=<name> [storage=<url>] [trial=<number>]")


@dataclass
class UsableRun(Vocabulary):
    """A finished run as predict and export need it: its typed config, vocabulary, class names and
    the checkpoint whose weights were scored on test (epoch ``epoch``)."""

    run_dir: Path
    record: RunRecord
    config: RunConfig
    words: list[bytes]  # id -> word; <unk> = len(words), <pad> = len(words) + 1
    classes: list[str]  # class number -> name
    weights: Path
    epoch: int


def split_targets(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` study options (an existing path with '=' in its name stays a path) and the rest."""
    keys, rest = {}, []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in STUDY_KEYS and not Path(arg).exists():
            keys[key] = value
        elif eq and not Path(arg).exists() and key.isidentifier():
            raise GruExpError(f"{arg}: unknown option {key!r}; the options are study_name=, storage= and trial=. {WHAT}.")
        else:
            rest.append(arg)
    return keys, rest


def recorded_config(record: RunRecord, path: Path) -> RunConfig:
    """The run's resolved config (metrics.json ``config``) as the typed dataclasses it trained with."""
    config = {k: v for k, v in record.config.items() if k != "hydra"}
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), config))  # type: ignore[return-value]
    except Exception as exc:  # noqa: BLE001 - any schema mismatch: another gru-exp version wrote it
        raise GruExpError(f"{path}: its recorded config does not fit this gru-exp's knobs ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}); use the gru-exp version that trained it.") from None


def usable_run(run_dir: Path) -> UsableRun:
    """``run_dir`` checked: a finished run (status completed, scored on test) with its vocabulary
    and the checkpoint that was scored; GruExpError (one paragraph) otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GruExpError(f"{run_dir}: no such folder; {WHAT}.")
    if not (run_dir / RECORD_FILE).is_file():
        seeds = sorted(p.parent.name for p in run_dir.glob(f"seed_*/{RECORD_FILE}"))
        if seeds:
            raise GruExpError(f"{run_dir} holds the runs of {len(seeds)} seeds ({', '.join(seeds)}), each with its own "
                              f"weights; give one of them, e.g. {run_dir / seeds[0]}.")
        raise GruExpError(f"{run_dir} holds no {RECORD_FILE}: it is not a run folder; {WHAT}.")
    try:
        record = RunRecord.read(run_dir)
    except RecordError as exc:
        raise GruExpError(f"{exc} {WHAT}.") from None
    if record.status != Status.completed or record.test_epoch is None or not record.test:
        raise GruExpError(f"{run_dir} is not a finished run (status {record.status}, {record.epochs_done} epoch(s), "
                          "no epoch scored on test), so it has no final checkpoint to use; let it finish (resume it "
                          "with trainer.resume=<this folder>) or give a finished run.")
    if not record.classes or not (run_dir / VOCAB_FILE).is_file():
        raise GruExpError(f"{run_dir} was trained before gru-exp kept {VOCAB_FILE} and the class names in its record "
                          f"(missing: {'classes' if not record.classes else VOCAB_FILE}); train it again to use it.")
    try:
        from gru_exp.data.tokens import read_vocabulary

        words = read_vocabulary(run_dir / VOCAB_FILE)
    except OSError as exc:
        raise GruExpError(f"{run_dir / VOCAB_FILE} cannot be read: {exc.strerror or exc}.") from None
    rc = recorded_config(record, run_dir / RECORD_FILE)
    weights = run_dir / (BEST_CKPT if rc.trainer.test_epoch == TestEpoch.best else LAST_CKPT)
    if not weights.is_file():
        keep = str(rc.trainer.keep_checkpoints)
        why = (f"the run kept none of its weights (trainer.keep_checkpoints={keep})" if keep == "none" else
               "the folder is incomplete (copied in part?)")
        raise GruExpError(f"{weights}: no such checkpoint, though {run_dir}'s record says epoch {record.test_epoch} was "
                          f"scored from it: {why}. Give a run folder that kept its scored weights (trainer."
                          "keep_checkpoints=all or best).")
    return UsableRun(run_dir, record, rc, words, list(record.classes), weights, record.test_epoch)


def _study_pointer(folder: Path) -> dict[str, str]:
    try:
        pointer = json.loads((folder / "study.json").read_text())
        return {"study_name": str(pointer["study_name"]), "storage": str(pointer["storage"])}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise GruExpError(f"{folder / 'study.json'} is not a study pointer ({type(exc).__name__}: {exc}); "
                          "pass study_name=... storage=... instead.") from None


def trial_run_dir(keys: dict[str, str], folder: Optional[Path] = None) -> Path:
    """The run folder of a study's best trial (single objective) or of ``trial=N``."""
    from optuna.trial import TrialState

    from gru_exp.config.compose import compose_config
    from gru_exp.report.entries import open_study_readonly

    if folder is not None:
        pointer = _study_pointer(folder)
        if "***" in pointer["storage"] and "storage" not in keys:
            raise GruExpError(f"{folder}/study.json names a storage with a password ({pointer['storage']}); pass "
                              "storage=<full URL> too.")
        keys = {**pointer, **keys}
    if not keys.get("study_name"):
        raise GruExpError(f"{', '.join(f'{k}=' for k in keys)} without study_name=<name>; {WHAT}.")
    paths = compose_config([], config_name="sweep").paths
    storage = keys.get("storage") or f"sqlite:///{Path(paths.sweeps_dir) / 'optuna.db'}"
    study = open_study_readonly(keys["study_name"], storage)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if "trial" in keys:
        chosen = next((t for t in trials if str(t.number) == keys["trial"].strip()), None)
        if chosen is None or chosen.state != TrialState.COMPLETE:
            state = f"is {chosen.state.name}" if chosen else "does not exist"
            raise GruExpError(f"trial={keys['trial']}: that trial of study {study.study_name!r} {state}; the complete "
                              f"ones are {', '.join(str(t.number) for t in complete) or 'none'}.")
    elif not complete:
        states = ", ".join(f"{t.number}: {t.state.name}" for t in trials) or "no trials"
        raise GruExpError(f"Study {study.study_name!r} has no complete trial yet ({states}); nothing to use. Let a "
                          "trial finish, or give a run folder.")
    elif len(study.directions) > 1:
        front = sorted(t.number for t in study.best_trials)
        raise GruExpError(f"Study {study.study_name!r} has {len(study.directions)} objectives, so no single best "
                          f"trial; name one of its Pareto front with trial=<number>: {', '.join(map(str, front))}.")
    else:
        chosen = study.best_trial
    home = folder or Path(paths.sweeps_dir) / study.study_name
    recorded = Path(chosen.user_attrs["run_dir"]) if chosen.user_attrs.get("run_dir") else None
    for candidate in (home / (recorded.name if recorded else f"trial_{chosen.number}"), recorded):
        if candidate is not None and candidate.is_dir():
            log.info("Study %s, trial %d (%s): %s", study.study_name, chosen.number,
                     ", ".join(f"{k}={v}" for k, v in chosen.params.items()), candidate)
            return candidate
    raise GruExpError(f"Trial {chosen.number} of study {study.study_name!r} has no run folder under {home}"
                      f"{f' or at {recorded}' if recorded else ''} (run on another machine? copy its folder in).")


def find_run(targets: Sequence[str]) -> tuple[UsableRun, list[str]]:
    """The run the command line names (a run folder, a study folder, or study options) and the
    positional arguments left after it."""
    keys, rest = split_targets(targets)
    first = Path(rest[0]) if rest else None
    if first is not None and first.is_dir() and (first / "study.json").is_file() and not (first / RECORD_FILE).is_file():
        return usable_run(trial_run_dir(keys, first)), rest[1:]
    if keys:
        return usable_run(trial_run_dir(keys)), rest
    if first is None:
        raise GruExpError(f"No model named; {WHAT}.")
    return usable_run(first), rest[1:]


MODEL_HELP = "a run folder, a study folder or study_name=... [storage=...] [trial=N]"


def doc_parser(doc: Optional[str], prog: str, command: str) -> argparse.ArgumentParser:
    """A command's parser from its module docstring: the first paragraph (after "...: ") as the
    description, the rest as the epilog with ``command`` spelled as ``prog``."""
    summary, _, details = (doc or "").partition("\n\n")
    return argparse.ArgumentParser(prog=prog, description=summary.split(": ", 1)[-1],
                                   epilog=details.replace(command, prog),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def refuse_inside_study(out: Path, what: str) -> None:
    """GruExpError when ``--out`` ``out`` (a ``what``: folder or file) is inside a study's folder,
    where the sweep makes its next trial_<n> folder (which would then fail)."""
    study = study_folder_around(out.resolve())
    if study is not None:
        raise GruExpError(f"--out {out} is inside the study folder {study}, where the sweep makes its trial_<n> "
                          f"folders; give a {what} of your own outside it. Nothing was written.")


def stopped(prog: str, stop: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM (raised by :func:`gru_exp.files.sigterm_raises`): one line on stderr, and
    the shell's exit status for that signal (130 or 143)."""
    term = isinstance(stop, Terminated)
    print(f"{prog}: stopped by {'SIGTERM' if term else 'Ctrl-C'} before it finished; its temporary files are removed "
          "(an export into an existing empty folder keeps the files it had moved there).", file=sys.stderr)
    return 143 if term else 130
