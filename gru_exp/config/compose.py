"""Composing configs with Hydra: the schemas in the ConfigStore, gru_exp's resolvers, where the
config tree lives, and composition outside ``@hydra.main`` (sweeps, reports, tests)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import (
    BasicSweeper,  # how -m makes its jobs
)
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from gru_exp.config.knobs import RunConfig, name_excluded_keys
from gru_exp.config.names import folder_name, run_leaf
from gru_exp.config.paths import path_problems
from gru_exp.config.sweep import SweepConfig
from gru_exp.config.validation import validate
from gru_exp.config.values import override
from gru_exp.errors import ConfigError
from gru_exp.redact import redact

_PACKAGE = Path(__file__).resolve().parent.parent  # gru_exp/
_CHECKOUT = _PACKAGE.parent
# The shipped config tree and search spaces: package data in a wheel (gru_exp/conf, gru_exp/sweeps,
# mapped there at build time by pyproject.toml), the top-level folders in a source checkout.
_INSTALLED = (_PACKAGE / "conf").is_dir()
CONF_DIR = str(_PACKAGE / "conf" if _INSTALLED else _CHECKOUT / "conf")
SWEEPS_DIR = str(_PACKAGE / "sweeps" if _INSTALLED else _CHECKOUT / "sweeps")
CONFIG_PATH_ENV = "GRU_EXP_CONFIG_PATH"  # the user's config folders, os.pathsep-separated
log = logging.getLogger(__name__)


def project_root() -> str:
    """Where outputs live: $GRU_EXP_HOME; else the source checkout when running from one; else
    the folder the command runs in (an installed gru-exp writes ./outputs, as Hydra apps do)."""
    env = os.environ.get("GRU_EXP_HOME")
    if env:
        return str(Path(env).expanduser().absolute())
    if not _INSTALLED and (_CHECKOUT / "pyproject.toml").is_file():
        return str(_CHECKOUT)
    return str(Path.cwd())


def user_config_dirs(extra: Sequence[str] = ()) -> list[Path]:
    """The user's own config folders from $GRU_EXP_CONFIG_PATH (then ``extra``, e.g. train's
    ``--config-dir``), each laid out like the shipped conf/ (``experiment/*.yaml`` ...) plus an
    optional ``sweeps/`` of search spaces. They extend the shipped configs through Hydra's search
    path. Which file runs is never ambiguous: a file that would shadow a shipped one, or one of the
    same name in another of the user's folders, is refused (Hydra would silently take the first)."""
    folders = [Path(p).expanduser().absolute() for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if p]
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{CONFIG_PATH_ENV} names {str(folder)!r}, which is not a folder. Set it to folders "
                              f"(separated by {os.pathsep!r}) laid out like gru-exp's conf/: experiment/<name>.yaml "
                              "for your experiments, sweeps/<name>.yaml for your search spaces.")
    folders += [Path(p).expanduser().absolute() for p in extra]
    folders = _once(folders)
    seen: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/**/*.yaml")):  # experiment/x.yaml, experiment/sub/x.yaml, sweeps/...
            name = path.relative_to(folder).as_posix()
            shipped = (Path(SWEEPS_DIR).parent if name.startswith("sweeps/") else Path(CONF_DIR)) / name
            if shipped.is_file():
                raise ConfigError(f"{path} has the name of a shipped config ({name}); rename yours (e.g. "
                                  f"my_{path.name}) and select it by that name.")
            if name in seen:
                raise ConfigError(f"{path} and {seen[name]} are both {name} (in {CONFIG_PATH_ENV} or --config-dir); "
                                  "only one would run and nothing would say which: rename one of them.")
            seen[name] = path
    return folders


def _once(folders: Sequence[Path]) -> list[Path]:
    """Each folder once, however it is spelled (``..``, a symlink to it), in the order given."""
    unique: dict[Path, Path] = {}
    for folder in folders:
        unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


def searchpath_override(folders: Sequence[Path]) -> list[str]:
    """Hydra's ``hydra.searchpath=[...]`` override for the user's config folders (none: [])."""
    if not folders:
        return []
    entries = [override("x", f"file://{folder}").split("=", 1)[1] for folder in folders]
    return [f"hydra.searchpath=[{','.join(entries)}]"]


def sweep_files() -> list[Path]:
    """Every search space: the shipped ones, then the user's (config folders' sweeps/ and the
    older $GRU_EXP_SWEEPS_PATH folders). A name given twice is refused (ConfigError): the later
    file would silently replace the earlier one."""
    older = [Path(p).expanduser().absolute() for p in os.environ.get("GRU_EXP_SWEEPS_PATH", "").split(os.pathsep) if p]
    for folder in older:
        if not folder.is_dir():
            raise ConfigError(f"GRU_EXP_SWEEPS_PATH names {str(folder)!r}, which is not a folder of search spaces "
                              f"(<name>.yaml files; several folders separated by {os.pathsep!r}).")
    folders = [Path(SWEEPS_DIR), *(d / "sweeps" for d in user_config_dirs()), *older]
    files: dict[str, Path] = {}
    for path in (p for folder in _once(folders) for p in sorted(folder.glob("*.yaml"))):
        if path.stem in files:
            shipped = " (a shipped search space)" if files[path.stem].parent == Path(SWEEPS_DIR) else ""
            raise ConfigError(f"The search space {path} has the name {path.stem!r} of {files[path.stem]}{shipped}; "
                              f"sweep={path.stem} would run only one of them and nothing would say which: rename "
                              f"yours (e.g. my_{path.name}).")
        files[path.stem] = path
    return list(files.values())


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


def conf_snapshot(cache_dir: str) -> list[str]:
    """A frozen copy of the config folders (shipped conf/, then the user's) for a process that
    composes configs for hours (a sweep worker): editing them meanwhile (a new key, a changed
    experiment) can neither break nor silently change its later trials. Stored under
    ``cache_dir``/conf by a hash of the contents, so workers share it and a killed worker leaves
    nothing behind outside the outputs folder."""
    sources = [Path(CONF_DIR), *user_config_dirs()]
    digest = hashlib.sha256()
    for source in sources:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            digest.update(f"{source}:{path.relative_to(source)}\0".encode() + path.read_bytes() + b"\0")
    target = Path(cache_dir) / "conf" / digest.hexdigest()[:16]
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        for i, source in enumerate(sources):
            shutil.copytree(source, staging / str(i))
        try:
            staging.rename(target)
        except OSError:  # another worker made the same copy first
            shutil.rmtree(staging, ignore_errors=True)
    return [str(target / str(i)) for i in range(len(sources))]


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
    hint = ("; a value with spaces or characters such as # @ , [ ] must be quoted ('key=\"a b#c\"'), and a storage "
            "URL can come from $GRU_EXP_STORAGE instead") if "Lexer" in text or "mismatched input" in text else ""
    error = ConfigError(f"Invalid command line: {text}{hint}")
    error.key = None
    return error


def job_overrides(overrides: Sequence[str], multirun: bool, with_hydra: bool = False) -> list[list[str]]:
    """Every job's overrides as Hydra will run them: one list, or with ``-m`` the jobs of Hydra's
    own basic sweeper (``a=1,2 b=x,y``: 4 lists; a key given twice counts once, the last time;
    values in Hydra's spelling, e.g. ``lr=1e-3`` as ``lr=0.001``, which names the job's folder).
    Hydra's own ``hydra.*`` overrides are left out, or with ``with_hydra`` added to every job."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    own = [o for o in parsed if o.get_key_element().lstrip("+~").startswith("hydra")]
    task = [o for o in parsed if o not in own]
    if multirun:
        (jobs,) = BasicSweeper.split_arguments(task, None) or [[[]]]
    else:
        jobs = [[o.input_line for o in task]]
    return [[*job, *(o.input_line for o in own)] if with_hydra else list(job) for job in jobs]


def _job_problems(job: list[str], config_dirs: Optional[Sequence[str]] = None) -> list[str]:
    """Every problem of one job: composition errors one by one (each bad override is dropped and
    the rest composed again), then validation of what composes."""
    problems: list[str] = []
    while True:
        try:
            cfg = compose_config(job, config_dirs=config_dirs)
        except ConfigError:
            raise  # gru-exp's own paragraph (the user's config folders): nothing to compose around
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
        return problems + [p for p in path_problems(cfg) if p not in problems]


def job_runs(overrides: Sequence[str], multirun: bool,
             config_dirs: Optional[Sequence[str]] = None) -> list[tuple[Path, DictConfig]]:
    """The run folders Hydra will make for the command line's jobs (``hydra.run.dir``, or with
    ``-m`` ``hydra.sweep.dir``/``hydra.sweep.subdir``, from the command line, an experiment file or
    an interpolation alike; absolute, ``..`` removed, as Hydra makes them), each with its composed
    config, for the folders that may exist
    already: a multirun whose sweep folder does not exist yet (the default, named by the time) has
    none. A folder that depends on what only Hydra's launcher knows (``${hydra.job.id}``,
    ``${hydra:runtime...}``) is left to the run's own claim. Call after :func:`check_overrides`."""
    runs = []
    for num, job in enumerate(job_overrides(overrides, multirun, with_hydra=True)):
        try:
            cfg = compose_config([*job, f"hydra.job.num={num}"] if multirun else job, config_dirs=config_dirs,
                                 with_hydra=True)
        except Exception as exc:  # a bad hydra.* override (check_overrides leaves those to this)
            raise composition_error(exc) from None
        try:
            own = "hydra.job.num" in str(OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"])
            if multirun and own and not Path(cfg.hydra.sweep.dir).is_dir():
                return runs  # a new multirun folder, a folder per job number: nothing there can be taken
            folder = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir) if multirun else Path(cfg.hydra.run.dir)
        except OmegaConfBaseException:
            continue
        runs.append((Path(os.path.abspath(folder)), cfg))  # as Hydra makes runtime.output_dir
    return runs


def check_overrides(overrides: Sequence[str], multirun: bool = False,
                    config_dirs: Optional[Sequence[str]] = None) -> int:
    """Compose and validate every job a command line asks for, before any folder is made; raise one
    ConfigError naming each bad value. Returns the number of jobs."""
    try:
        jobs = job_overrides(overrides, multirun)
    except Exception as exc:  # Hydra's grammar
        raise composition_error(exc) from None
    problems: list[str] = []
    for job in jobs:
        for found in _job_problems(job, config_dirs):
            if found not in problems:
                problems.append(found)
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems) + ".", problems)
    return len(jobs)
