"""Composing configs with Hydra: the schemas in the ConfigStore, gru_exp's resolvers, where the
config tree lives, and composition outside ``@hydra.main`` (sweeps, reports, tests)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from pathlib import Path
from typing import Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from gru_exp.config.knobs import RunConfig, name_excluded_keys
from gru_exp.config.names import folder_name, run_leaf
from gru_exp.config.paths import path_problems
from gru_exp.config.sources import (CONF_DIR, missing_option, project_root, searchpath_override, sweep_files,
                                    user_config_dirs)
from gru_exp.config.sweep import SweepConfig
from gru_exp.config.validation import validate
from gru_exp.config.values import without_hydra
from gru_exp.errors import ConfigError
from gru_exp.redact import redact

log = logging.getLogger(__name__)


def register_configs(sweeps: bool = False) -> None:
    """Store the schemas and the resolvers Hydra needs (and with ``sweeps`` the search spaces as
    the ``sweep`` group). Idempotent; call before composing."""
    resolvers = {
        "gru_exp.root": project_root,
        "gru_exp.run_leaf": run_leaf,  # a run folder's name after its time
        "gru_exp.folder": folder_name,  # a multirun job's folder name
        "gru_exp.name_excluded": name_excluded_keys,  # Hydra's exclude_keys, from the register
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    store = ConfigStore.instance()
    store.store(name="gru_exp_schema", node=RunConfig)
    store.store(name="sweep_schema", node=SweepConfig)
    if not sweeps:
        return
    for path in sweep_files():
        try:
            node = OmegaConf.load(path)
        except Exception as exc:  # one broken file must not break the others: it is reported, not stored
            log.warning("Skipping the search space %s: not valid YAML (%s)", path, " ".join(str(exc).split()))
            continue
        store.store(group="sweep", name=path.stem, node=node, package="_global_")


def compose_config(overrides: Sequence[str], config_name: str = "config",
                   config_dirs: Optional[Sequence[str]] = None, with_hydra: bool = False) -> DictConfig:
    """The config ``python -m gru_exp.train <overrides>`` would run (with Hydra's own ``hydra``
    node when ``with_hydra``), composed from ``config_dirs`` (default: the shipped conf/, then the
    user's config folders)."""
    register_configs(sweeps=config_name == "sweep")
    primary, *extra = config_dirs or [CONF_DIR, *map(str, user_config_dirs())]
    GlobalHydra.instance().clear()
    # job_name: the hydra.job.name Hydra gives the entry points (python -m gru_exp.<command>: __main__)
    with initialize_config_dir(config_dir=primary, version_base="1.3", job_name="__main__"):
        return compose(config_name=config_name, overrides=[*searchpath_override([Path(d) for d in extra]), *overrides],
                       return_hydra_config=with_hydra)


def _problem(key: Optional[str], problem: str) -> ConfigError:
    problem = redact(problem)  # a storage URL's password never reaches the terminal
    error = ConfigError(f"Invalid configuration: {problem}.", [problem])
    error.key = key  # the override to drop before composing the rest again
    return error


def _keys_under(schema: type, parent: str) -> list[str]:
    """The keys a config of ``schema`` has under the dotted ``parent`` ("" = the top level)."""
    for part in filter(None, parent.split(".")):
        field = next((f for f in dataclasses.fields(schema) if f.name == part), None)
        if field is None or not dataclasses.is_dataclass(field.default_factory):
            return []
        schema = field.default_factory  # type: ignore[assignment]
    return [f.name for f in dataclasses.fields(schema)]


def composition_error(exc: BaseException, schema: type = RunConfig) -> ConfigError:
    """Hydra's or OmegaConf's composition error as one paragraph naming the key, the value and
    what is allowed (a wrong choice, a typo'd key, a wrong type, a grammar error); ``schema`` is
    the config's (training or sweep), for the keys a typo'd key's parent has."""
    if isinstance(exc, ConfigError):  # gru-exp's own paragraph (e.g. the user's config folders), as it is
        return exc
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
            known = _keys_under(schema, parent)
            hint = f"; {parent or 'the top level'} has: {', '.join(known)}" if known else ""
            return _problem(key, f"{key} is not a knob{hint}")
        return _problem(key, f"{key}: {text}")
    text = redact(" ".join(str(exc).split()))
    missing = missing_option(text)
    if missing:
        return _problem(*missing)
    hint = ("; a value with spaces or characters such as # @ , [ ] must be quoted ('key=\"a b#c\"'), and a storage "
            "URL can come from $GRU_EXP_STORAGE instead") if "Lexer" in text or "mismatched input" in text else ""
    error = ConfigError(f"Invalid command line: {text}{hint}")
    error.key = None
    return error


def job_overrides(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """Every job's overrides as Hydra will run them: one list, or with ``-m`` the jobs of Hydra's
    basic sweeper (``a=1,2 b=x,y``: 4 lists; a key given twice counts once, the last time; values in
    Hydra's spelling, e.g. ``lr=1e-3`` as ``lr=0.001``, which names the job's folder), each with
    Hydra's own ``hydra.*`` overrides last. ConfigError for the command line's grammar."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:  # Hydra's grammar
        raise composition_error(exc) from None
    own = [o.input_line for o in parsed if o.get_key_element().lstrip("+~").startswith("hydra")]
    task = [o for o in parsed if o.input_line not in own]
    jobs = _grid(task) if multirun else [[o.input_line for o in task]]
    return [[*job, *own] for job in jobs]


def _grid(overrides: Sequence[Override]) -> list[list[str]]:
    """The jobs of a ``-m`` command line as Hydra's basic sweeper makes them: each key's values (a
    sweep ``a=1,2`` gives one per value, a key given twice keeps its place and its last values),
    every combination in order, the first key varying slowest."""
    values: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if not o.is_sweep_override():
            values[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:  # interval(...): what the basic sweeper cannot expand
            raise ConfigError(f"{o.input_line}: -m expands only lists of values (key=1,2,3, choice(...), range(...)) "
                              "into jobs, not an interval; give the values as a list, or search it with gru-exp sweep.")
    return [list(job) for job in itertools.product(*values.values())]


@dataclasses.dataclass
class Job:
    """One job of a command line, composed once with Hydra's own node (what its folder will be),
    and every problem found: composition errors one by one (each bad override dropped and the rest
    composed again), then the knobs' validation and the output folders'."""

    overrides: list[str]
    cfg: Optional[DictConfig] = None  # None when some override does not compose
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def task(self) -> DictConfig:
        """The config the job trains with (Hydra's node removed)."""
        assert self.cfg is not None
        return without_hydra(self.cfg)


def compose_job(overrides: Sequence[str], num: Optional[int] = None,
                config_dirs: Optional[Sequence[str]] = None) -> Job:
    """The job of ``overrides`` (``num``: its number in a multirun, which names its folder)."""
    job = Job(list(overrides))
    tried = [*overrides, *([f"hydra.job.num={num}"] if num is not None else [])]
    while True:
        try:
            job.cfg = compose_config(tried, config_dirs=config_dirs, with_hydra=True)
            break
        except ConfigError:
            raise  # gru-exp's own paragraph (the user's config folders): nothing to compose around
        except Exception as exc:
            error = composition_error(exc)
            job.problems += [p for p in error.problems if p not in job.problems]
            rest = [o for o in tried if o.lstrip("+~").split("=", 1)[0] != error.key]
            if len(rest) == len(tried):
                return job
            tried = rest
    if job.problems:
        job.cfg = None  # composed without the bad overrides: not what the command line asked for
        return job
    task = job.task
    try:
        validate(task)
    except ConfigError as exc:
        job.problems += exc.problems
    except OmegaConfBaseException as exc:  # a value that cannot resolve, e.g. ${oc.env:UNSET}
        job.problems.append(unresolved(exc))
        return job
    job.problems += [p for p in path_problems(task) if p not in job.problems]
    return job


def unresolved(exc: OmegaConfBaseException) -> str:
    """One line for a value OmegaConf cannot resolve (an unset ${oc.env:...}, a ${key} that does not exist)."""
    key = getattr(exc, "full_key", None) or "a value"
    return f"{key}: {str(exc).splitlines()[0]}; set it, or give a plain value"


def check_jobs(jobs: Sequence[Job]) -> None:
    """One ConfigError naming every problem of every job (each once), or nothing."""
    problems: list[str] = []
    for job in jobs:
        problems += [p for p in job.problems if p not in problems]
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems) + ".", problems)


def check_overrides(overrides: Sequence[str], multirun: bool = False,
                    config_dirs: Optional[Sequence[str]] = None) -> int:
    """Compose and validate every job a command line asks for, before any folder is made; raise one
    ConfigError naming each bad value. Returns the number of jobs."""
    jobs = [compose_job(job, num if multirun else None, config_dirs)
            for num, job in enumerate(job_overrides(overrides, multirun))]
    check_jobs(jobs)
    return len(jobs)
