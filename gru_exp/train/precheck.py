"""Every job of a ``train`` command checked before anything is written: each job composed once
(with Hydra's own node, which names its folder) and validated (one paragraph, exit 2, for a single
run and each job of a multirun alike), and each job's folder claimed as Hydra will name it. A run
writes only into a new or empty folder (or the run it continues: then its resume, checkpoints
included, is checked here, so a refused resume leaves that run byte for byte); a multirun only into
a new or empty ``hydra.sweep.dir``, each job into a folder of its own."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gru_exp.commands import REFUSED_FLAGS, check_no_searchpath, flag_value, flags
from gru_exp.config.compose import Job, check_jobs, compose_job, job_overrides
from gru_exp.config.paths import run_dir_problem
from gru_exp.config.sources import CONF_DIR, user_config_dirs
from gru_exp.config.choices import TestEpoch
from gru_exp.config.knobs import keys as knob_keys
from gru_exp.config.knobs import name_excluded_keys, with_defaults
from gru_exp.config.values import flatten, override, to_container
from gru_exp.data import sources
from gru_exp.errors import ConfigError
from gru_exp.train import device
from gru_exp.train.preflight import check_resume
from gru_exp.train.record import RecordError, RunRecord, Status
from gru_exp.train.rundir import in_use_problem, other_run_problem

log = logging.getLogger(__name__)
CONFIG_DIR_FLAGS = ("-cd", "--config-dir")


@dataclasses.dataclass
class Plan:
    """What the checks found: the command line Hydra is to run (a resume completed from the run's
    record), the jobs (composed), the folders on the way to each job's folder (and the multirun
    folder) that existed before this command (a refused job never removes them), and whether the
    multirun folder did."""

    argv: list[str]
    jobs: list[Job]
    existing: set[Path]
    multirun_dir_existed: bool


def precheck(argv: Sequence[str]) -> Plan:
    """Check every job of ``argv``; ConfigError when one cannot run."""
    check_no_searchpath(argv)
    refused = flags(argv) & REFUSED_FLAGS
    if refused:
        raise ConfigError(f"{', '.join(sorted(refused))}: gru-exp train composes its own config tree; add your "
                          "configs with GRU_EXP_CONFIG_PATH=<folder> (experiment/<name>.yaml ...) or --config-dir "
                          "<folder>, and select them with experiment=<name>.")
    if sum(a.split("=", 1)[0] in CONFIG_DIR_FLAGS for a in argv) > 1:
        raise ConfigError("--config-dir is given more than once; Hydra would use only the last one. Give one folder "
                          "there, and more through GRU_EXP_CONFIG_PATH (':'-separated).")
    extra = flag_value(argv, *CONFIG_DIR_FLAGS)
    is_flag = [a.startswith("-") or bool(i and argv[i - 1] in CONFIG_DIR_FLAGS) for i, a in enumerate(argv)]
    overrides = [a for a, flag in zip(argv, is_flag) if not flag]
    dirs = None
    if extra:
        if not Path(extra).is_dir():
            raise ConfigError(f"--config-dir {extra!r} is not a folder.")
        dirs = [CONF_DIR, *map(str, user_config_dirs([extra]))]
    multirun = bool({"-m", "--multirun"} & set(argv))
    overrides = continued(overrides, multirun)
    argv = [*(a for a, flag in zip(argv, is_flag) if flag), *overrides]
    first = compose_job(job_overrides(overrides, multirun)[0], 0 if multirun else None, dirs)
    if not multirun and first.cfg is not None and str(first.cfg.hydra.mode) == "RunMode.MULTIRUN":
        multirun = True  # hydra.mode=MULTIRUN (on the command line or in an experiment file): a grid after all
        first = compose_job(job_overrides(overrides, multirun)[0], 0, dirs)
    jobs = [first, *(compose_job(job, num, dirs) for num, job in enumerate(job_overrides(overrides, multirun)) if num)]
    check_jobs(jobs)
    _check_hydra(first.cfg)
    existed = _multirun_dir(first.cfg) if multirun else False
    plan = Plan(list(argv), jobs, set(), existed)
    if multirun:
        with contextlib.suppress(OmegaConfBaseException):  # its date folder may be there already
            plan.existing.update(_existing(Path(os.path.abspath(first.cfg.hydra.sweep.dir))))
    seen: set[Path] = set()
    for job in jobs:  # before Hydra writes into their folders
        cfg, run_dir = job.task, _folder(job.cfg, multirun)
        resume = Path(cfg.trainer.resume).expanduser() if cfg.trainer.resume else None
        if run_dir is not None:
            not_folder = _not_a_folder(run_dir, "hydra.sweep.dir" if multirun else "hydra.run.dir")
            if not_folder:
                raise ConfigError(not_folder)
            if run_dir in seen:
                raise ConfigError(f"Two jobs of this multirun would write into one folder, {run_dir} (hydra.sweep."
                                  "subdir without ${hydra.job.num}); each job needs a folder of its own.")
            seen.add(run_dir)
            taken = (run_dir_problem(run_dir, cfg) or other_run_problem(run_dir, resume, new=True)
                     or in_use_problem(run_dir))
            if taken:
                raise ConfigError(taken)
            plan.existing.update(_existing(run_dir))
        if resume is not None:  # refused now, not after the run it continues was touched
            _check_resume(cfg, resume)
        sources.check_files(cfg.data)  # missing or unreadable data files: refused before any folder is made
    return plan


# Knobs a bare trainer.resume=<folder> does not take from the run's record: where this machine keeps
# its outputs (the paths) and the resume itself.
_NOT_CARRIED = ("paths.", "data.cache_dir", "trainer.resume")


def continued(overrides: Sequence[str], multirun: bool = False) -> list[str]:
    """``trainer.resume=<folder>`` continues that run with its recorded configuration: every recorded
    knob first (a knob added since at its default; the archive paddle downloaded when data.path was
    null), then the command line's overrides (knobs that may change on resume, such as
    trainer.epochs; a fixed knob given another value is refused by the resume check). Without
    ``hydra.run.dir`` a run that did not finish (interrupted, failed) continues in its own folder;
    a finished one continues into a new folder, so its scored result and checkpoints stay as they
    are until the longer run has its own. Any other command line is returned as it is."""
    parsed = {o.lstrip("+~").split("=", 1)[0]: o.split("=", 1)[1] if "=" in o else None for o in overrides}
    resume = parsed.get("trainer.resume")
    if not resume or resume == "null" or (multirun and "," in resume.strip("'\"")):
        return list(overrides)  # no resume, or a grid over several runs: each job's own check says what is wrong
    folder = Path(resume.strip("'\"")).expanduser()
    try:
        record = RunRecord.read(folder)
    except RecordError:
        return list(overrides)  # not a run: the resume check says so in one paragraph
    if "experiment" in parsed:
        raise ConfigError(f"experiment={parsed['experiment']} beside trainer.resume: a resumed run continues with its "
                          "recorded configuration, so an experiment file could not change it. Drop experiment= (or "
                          "start a new run with it).")
    recorded = with_defaults(flatten(record.config))
    base = [override(k, recorded[k]) for k in knob_keys() if k in recorded and k not in parsed
            and not k.startswith(_NOT_CARRIED)]
    if "data.path" not in parsed and recorded.get("data.path") is None and Path(record.archive).is_file():
        base.append(override("data.path", record.archive))  # the archive paddle's download gave
    # a new folder is named by the command line's own overrides, not by the carried ones
    named = override("hydra.job.config.override_dirname.exclude_keys",
                     [*name_excluded_keys(), *(o.split("=", 1)[0] for o in base)])
    if "hydra.run.dir" in parsed:
        return [*base, *overrides]
    if multirun:  # a grid: each job into a folder of its own
        return [*base, *overrides, named]
    if record.status not in (Status.interrupted, Status.failed, Status.running):
        log.info("%s is a %s run: it is continued into a new folder, so its result stays as it is (hydra.run.dir=<that "
                 "folder> continues it in place)", folder, record.status)
        return [*base, *overrides, named]
    return [*base, *overrides, override("hydra.run.dir", str(folder.resolve()))]


def _check_hydra(cfg: DictConfig) -> None:
    """Hydra settings a run cannot keep: Hydra writing its own .hydra/ into the run folder before the
    run's checks (the run writes it itself), or changing into the run folder (relative paths would
    then point into it)."""
    if cfg.hydra.output_subdir is not None:
        raise ConfigError(f"hydra.output_subdir={cfg.hydra.output_subdir!r}: a run writes its config records "
                          "(.hydra/) itself, once its checks passed; leave hydra.output_subdir unset (null).")
    if cfg.hydra.job.chdir:
        raise ConfigError("hydra.job.chdir=true: a run reads and writes by the paths it was given, never from inside "
                          "its own folder; leave hydra.job.chdir unset (false).")
    with contextlib.suppress(OmegaConfBaseException):  # unresolvable here: the run's own claim checks the folder
        empty = [k for k in ("hydra.run.dir", "hydra.sweep.dir") if not str(OmegaConf.select(cfg, k) or "").strip()]
        if empty:  # Path("") is the working folder: the run (or multirun) would be written into it
            raise ConfigError(f"{' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty: the run would be "
                              "written into the working folder. Give a folder, or leave the key out for its default "
                              "(under the outputs).")


def _existing(folder: Path) -> set[Path]:
    """``folder`` and its parents, those that exist now."""
    return {p for p in (folder, *folder.parents) if p.is_dir()}


def _folder(cfg: DictConfig, multirun: bool) -> Optional[Path]:
    """The folder Hydra will make for the job (``hydra.run.dir``, or with ``-m``
    ``hydra.sweep.dir``/``hydra.sweep.subdir``; absolute, ``..`` removed, as Hydra makes them), or
    None when it cannot exist yet (a new multirun folder with a folder per job number) or depends
    on what only Hydra's launcher knows (``${hydra.job.id}``): then the run's own claim checks it."""
    try:
        if multirun:
            own = "hydra.job.num" in str(OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"])
            if own and not Path(cfg.hydra.sweep.dir).is_dir():
                return None
            return Path(os.path.abspath(Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)))
        return Path(os.path.abspath(cfg.hydra.run.dir))
    except OmegaConfBaseException:
        return None


def _check_resume(cfg: DictConfig, resume: Path) -> None:
    """The resume a job asks for, as the run will check it: record, configuration, archive, and its
    checkpoints (read with paddle, after holding its threads as the run will)."""
    _, done = check_resume(to_container(cfg), resume)
    device.limit_threads(cfg.trainer.num_threads)  # before paddle is imported: it sizes its pools once
    from gru_exp.train.resume import check_continuable

    check_continuable(resume, done, best_needed=cfg.trainer.test_epoch == TestEpoch.best)


def _not_a_folder(path: Path, key: str, what: str = "run folder") -> Optional[str]:
    """Why ``path`` cannot become a run's folder: it, or a folder above it, is a file or a symlink to
    nothing (Hydra would fail with a traceback making it)."""
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            return f"{key} makes the {what} {str(path)!r}, but {p} is a symlink to nothing; give a new or empty folder."
        if p.exists() and not p.is_dir():
            return f"{key} makes the {what} {str(path)!r}, but {p} is a file; give a new or empty folder."
    return None


def _multirun_dir(cfg: DictConfig) -> bool:
    """Whether the multirun folder (hydra.sweep.dir) exists already, empty; ConfigError when it
    holds anything: Hydra would overwrite its multirun.yaml."""
    try:
        folder = Path(os.path.abspath(cfg.hydra.sweep.dir))
    except OmegaConfBaseException:  # a folder named by what only the launcher knows: left to Hydra
        return False
    not_folder = _not_a_folder(folder, "hydra.sweep.dir", "multirun folder")
    if not_folder:
        raise ConfigError(not_folder)
    if not folder.is_dir():
        return False
    found = sorted(p.name for p in folder.iterdir())
    if found:
        raise ConfigError(f"hydra.sweep.dir={str(folder)!r} already holds {len(found)} entr"
                          f"{'y' if len(found) == 1 else 'ies'} (e.g. {found[0]!r}); a multirun writes only into a new "
                          "or empty folder (Hydra would overwrite its multirun.yaml). Give it another hydra.sweep.dir.")
    return True
