"""Composing configs with Hydra: the schemas in the ConfigStore, gru_exp's resolvers, where the
config tree lives, and composition outside ``@hydra.main`` (sweeps, reports, tests)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from gru_exp.config.knobs import RunConfig, knobs, name_excluded_keys
from gru_exp.config.names import folder_name
from gru_exp.config.sweep import SweepConfig
from gru_exp.config.validation import validate
from gru_exp.errors import ConfigError

_CHECKOUT = Path(__file__).resolve().parent.parent.parent
CONF_DIR = str(_CHECKOUT / "conf")
SWEEPS_DIR = str(_CHECKOUT / "sweeps")


def project_root() -> str:
    """Where outputs live: $GRU_EXP_HOME, else the source checkout this package sits in."""
    env = os.environ.get("GRU_EXP_HOME")
    if env:
        return str(Path(env).expanduser().resolve())
    if (_CHECKOUT / "pyproject.toml").is_file():
        return str(_CHECKOUT)
    return str(Path.home() / "gru_exp")


def register_configs() -> None:
    """Store the schemas and the resolvers Hydra needs. Idempotent; call before composing."""
    resolvers = {
        "gru_exp.root": project_root,
        "gru_exp.suffix": lambda text="": f"_{folder_name(text)}" if text else "",  # run folder names
        "gru_exp.folder": folder_name,  # a multirun job's folder name
        "gru_exp.name_excluded": name_excluded_keys,  # Hydra's exclude_keys, from the register
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    store = ConfigStore.instance()
    store.store(name="gru_exp_schema", node=RunConfig)
    store.store(name="sweep_schema", node=SweepConfig)
    # The `sweep` group lives in sweeps/ (plus any folders in $GRU_EXP_SWEEPS_PATH, colon-separated).
    folders = [SWEEPS_DIR, *filter(None, os.environ.get("GRU_EXP_SWEEPS_PATH", "").split(os.pathsep))]
    for folder in folders:
        for path in sorted(Path(folder).glob("*.yaml")):
            store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_")


def compose_config(overrides: Sequence[str], config_name: str = "config",
                   config_dir: Optional[str] = None) -> DictConfig:
    """The config ``python -m gru_exp.train <overrides>`` would run (without Hydra's run dir),
    composed from ``config_dir`` (default: the package's conf/)."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir or CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


@contextlib.contextmanager
def conf_snapshot() -> Iterator[str]:
    """A private copy of conf/ for a process that composes configs for hours (a sweep worker):
    editing conf/ meanwhile (a new key, a changed experiment) can neither break nor silently
    change its later trials. The schema it validates against was loaded at start, as was this copy."""
    with tempfile.TemporaryDirectory(prefix="gru_exp_conf_") as tmp:
        target = Path(tmp) / "conf"
        shutil.copytree(CONF_DIR, target)
        yield str(target)


def _problem(key: Optional[str], problem: str) -> ConfigError:
    error = ConfigError(f"Invalid configuration: {problem}.", [problem])
    error.key = key  # the override to drop before composing the rest again
    return error


def composition_error(exc: BaseException) -> ConfigError:
    """Hydra's or OmegaConf's composition error as one paragraph naming the key, the value and
    what is allowed (a wrong choice, a typo'd key, a wrong type, a grammar error)."""
    cause: Optional[BaseException] = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        key, text = cause.full_key, str(cause.msg if hasattr(cause, "msg") else cause).splitlines()[0]
        choices = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", text)
        if choices:
            return _problem(key, f"{key}={choices.group(1)!r} must be one of {choices.group(2)}")
        if isinstance(cause, ConfigKeyError) or re.match(r"Key '.*' not in", text):
            parent = key.rpartition(".")[0]
            known = [k for k, _, _ in knobs() if k.rpartition(".")[0] == parent]
            hint = f"; {parent or 'the top level'} has: {', '.join(k.rpartition('.')[2] for k in known)}" if known else ""
            return _problem(key, f"{key} is not a knob{hint}")
        return _problem(key, f"{key}: {text}")
    text = " ".join(str(exc).split())
    error = ConfigError(f"Invalid command line: {text}")
    error.key = None
    return error


def job_overrides(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """Every job's overrides: one list, or with ``-m`` the cartesian product of the sweeps
    (``a=1,2 b=x,y``: 4 lists). Hydra's own ``hydra.*`` keys are left out."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    axes = []
    for o in parsed:
        if o.get_key_element().lstrip("+~").startswith("hydra"):
            continue
        if multirun and o.is_sweep_override():
            axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            axes.append([o.input_line])
    return [list(combo) for combo in itertools.product(*axes)]


def _job_problems(job: list[str]) -> list[str]:
    """Every problem of one job: composition errors one by one (each bad override is dropped and
    the rest composed again), then validation of what composes."""
    problems: list[str] = []
    while True:
        try:
            cfg = compose_config(job)
        except Exception as exc:
            error = composition_error(exc)
            problems += error.problems
            rest = [o for o in job if o.lstrip("+~").split("=", 1)[0] != error.key]
            if len(rest) == len(job):
                return problems
            job = rest
            continue
        try:
            validate(cfg)
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
        return problems


def check_overrides(overrides: Sequence[str], multirun: bool = False) -> int:
    """Compose and validate every job a command line asks for, before any folder is made; raise one
    ConfigError naming each bad value. Returns the number of jobs."""
    try:
        jobs = job_overrides(overrides, multirun)
    except Exception as exc:  # Hydra's grammar
        raise composition_error(exc) from None
    problems: list[str] = []
    for job in jobs:
        for found in _job_problems(job):
            if found not in problems:
                problems.append(found)
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems) + ".", problems)
    return len(jobs)
