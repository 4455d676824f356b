"""Every job of a ``train`` command checked before Hydra writes anything: composed and validated
(one paragraph, exit 2, for a single run and each job of a multirun alike), and each job's folder
claimed as Hydra will name it. A run writes only into a new or empty folder (or the run it
continues: then its resume, checkpoints included, is checked here, so a refused resume leaves that
run byte for byte); a multirun only into a new or empty ``hydra.sweep.dir``, each job into a
folder of its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from gru_exp.commands import REFUSED_FLAGS, check_no_searchpath, flag_value, flags
from gru_exp.config.compose import check_overrides, compose_config, job_overrides, job_runs
from gru_exp.config.paths import run_dir_problem
from gru_exp.config.sources import CONF_DIR, user_config_dirs
from gru_exp.config.values import to_container
from gru_exp.errors import ConfigError
from gru_exp.train import device
from gru_exp.data.imdb import resolve_archive
from gru_exp.train.preflight import check_resume
from gru_exp.train.rundir import in_use_problem, made_before, other_run_problem

CONFIG_DIR_FLAGS = ("-cd", "--config-dir")


def precheck(argv: Sequence[str]) -> tuple[dict[Path, frozenset[str]], Optional[Path]]:
    """Check every job of ``argv``; ConfigError when one cannot run. Returns what each job's folder
    already had (a folder given as hydra.run.dir: a rejected job leaves it) and the multirun folder
    when it existed, empty, before this command (never removed)."""
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
    overrides = [a for i, a in enumerate(argv) if not a.startswith("-") and not (i and argv[i - 1] in CONFIG_DIR_FLAGS)]
    dirs = None
    if extra:
        if not Path(extra).is_dir():
            raise ConfigError(f"--config-dir {extra!r} is not a folder.")
        dirs = [CONF_DIR, *map(str, user_config_dirs([extra]))]
    multirun = bool({"-m", "--multirun"} & set(argv)) or _multirun_by_config(overrides, dirs)
    check_overrides(overrides, multirun=multirun, config_dirs=dirs)
    kept = _multirun_dir(overrides, dirs) if multirun else None
    existed: dict[Path, frozenset[str]] = {}
    for run_dir, cfg in job_runs(overrides, multirun, config_dirs=dirs):  # before Hydra writes into them
        if run_dir in existed:
            raise ConfigError(f"Two jobs of this multirun would write into one folder, {run_dir} (hydra.sweep.subdir "
                              "without ${hydra.job.num}); each job needs a folder of its own.")
        resume = Path(cfg.trainer.resume).expanduser() if cfg.trainer.resume else None
        taken = run_dir_problem(run_dir, cfg) or other_run_problem(run_dir, resume, new=True) or in_use_problem(run_dir)
        if taken:
            raise ConfigError(taken)
        if resume is not None:  # refused now, not after Hydra rewrote .hydra/ and run.log of the run it continues
            _check_resume(cfg, resume)
        existed[run_dir] = made_before(run_dir)
    return existed, kept


def _check_resume(cfg: DictConfig, resume: Path) -> None:
    """The resume a job asks for, as the run will check it: record, configuration, archive, and its
    checkpoints (read with paddle, after holding its threads as the run will)."""
    _, done = check_resume(to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])), resume)
    if cfg.data.path:
        resolve_archive(cfg.data.path)
    device.limit_threads(cfg.trainer.num_threads)  # before paddle is imported: it sizes its pools once
    from gru_exp.train.resume import check_continuable

    check_continuable(resume, done)


def _multirun_by_config(overrides: Sequence[str], dirs: Optional[Sequence[str]]) -> bool:
    """Whether hydra.mode=MULTIRUN (on the command line or in an experiment file) makes this a multirun."""
    try:
        return str(compose_config(job_overrides(overrides, False, with_hydra=True)[0], config_dirs=dirs,
                                  with_hydra=True).hydra.mode) == "RunMode.MULTIRUN"
    except Exception:  # noqa: BLE001 - composition errors are reported by check_overrides
        return False


def _multirun_dir(overrides: Sequence[str], dirs: Optional[Sequence[str]]) -> Optional[Path]:
    """The multirun folder (hydra.sweep.dir) when it exists already and is empty (None when it does
    not exist yet); ConfigError when it holds anything: Hydra would overwrite its multirun.yaml."""
    job = job_overrides(overrides, True, with_hydra=True)[0]
    try:
        folder = Path(os.path.abspath(compose_config([*job, "hydra.job.num=0"], config_dirs=dirs,
                                                     with_hydra=True).hydra.sweep.dir))
    except Exception:  # noqa: BLE001 - a folder named by what only the launcher knows: left to Hydra
        return None
    if not folder.is_dir():
        return None
    found = sorted(p.name for p in folder.iterdir())
    if found:
        raise ConfigError(f"hydra.sweep.dir={str(folder)!r} already holds {len(found)} entr"
                          f"{'y' if len(found) == 1 else 'ies'} (e.g. {found[0]!r}); a multirun writes only into a new "
                          "or empty folder (Hydra would overwrite its multirun.yaml). Give it another hydra.sweep.dir.")
    return folder
