"""The command line shared by gru-exp's commands: ``gru-exp <command>`` dispatch, ``--version``,
the help texts (derived from the register of knobs and the shipped configs), and running a task
under ``@hydra.main`` with the user's config folders on Hydra's search path."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

import hydra
from omegaconf import OmegaConf

from gru_exp.config.compose import register_configs
from gru_exp.config.sources import (
    CONF_DIR,
    CONFIG_PATH_ENV,
    SWEEPS_DIR,
    project_root,
    searchpath_override,
    sweep_files,
    user_config_dirs,
)
from gru_exp.config.knobs import RunConfig, knobs
from gru_exp.config.sweep import SweepConfig
from gru_exp.errors import GruExpError
from gru_exp.redact import redacted_output

# gru-exp <command> -> (module with main(argv) -> exit status, one line of what it does)
COMMANDS = {
    "train": ("gru_exp.train.__main__", "train the GRU on IMDB once, or a grid with -m (Hydra)"),
    "sweep": ("gru_exp.sweep.__main__", "run or resume an Optuna study over training configs"),
    "report": ("gru_exp.report.__main__", "what won, by how much, which knobs mattered (report.md + PNGs)"),
    "baseline": ("gru_exp.baseline", "write the notebook's reference curves as a VisualDL run"),
    "dashboard": ("gru_exp.dashboard", "VisualDL over every run, trial and the baseline (readable names)"),
    "predict": ("gru_exp.use.predict", "class probabilities for new texts from a finished run or a study's best trial"),
    "export": ("gru_exp.use.export", "a self-contained Paddle inference folder (paddle.jit.save) of a finished run"),
}
# Hydra flags that only print (config, help, completion): they skip gru-exp's up-front checks.
INFO_FLAGS = frozenset({"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc",
                        "--resolve", "--package", "-p"})
# Hydra flags that would swap gru-exp's own config tree: user configs go through GRU_EXP_CONFIG_PATH.
REFUSED_FLAGS = frozenset({"--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun"})
ENVIRONMENT = f"""Environment:
  GRU_EXP_IMDB         the IMDB archive aclImdb_v1.tar.gz (or data.path=...); unset: paddle downloads it
  GRU_EXP_HOME         outputs go to $GRU_EXP_HOME/outputs; unset: ./outputs of the folder you run in
                       (a source checkout: its own outputs/)
  {CONFIG_PATH_ENV}  your config folders ('{os.pathsep}'-separated), laid out like the shipped conf/:
                       experiment/<name>.yaml (select with experiment=<name>), sweeps/<name>.yaml (sweep=<name>)
  GRU_EXP_STORAGE      a sweep's storage URL (keeps a password off the command line and out of ps)"""


def print_quietly(text: str) -> None:
    """Print to stdout; a reader that closed the pipe (``| head``) ends the command with status 141."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _closed_stdout()


def _closed_stdout() -> NoReturn:
    """The reader of stdout is gone: exit quietly with a pipe writer's status (141), and point stdout
    at /dev/null so Python's own flush at exit raises no second error."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(141) from None


def version_text() -> str:
    """gru-exp's version and those of the libraries it runs on."""
    def version(dist: str) -> Optional[str]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    paddle = version("paddlepaddle") or version("paddlepaddle-gpu") or "not installed"
    parts = [f"{d} {version(d) or 'not installed'}" for d in ("hydra-core", "optuna", "visualdl")]
    return f"gru-exp {version('gru-exp') or 'unknown (not installed)'} (paddle {paddle}, {', '.join(parts)})"


def flags(argv: Sequence[str]) -> set[str]:
    """The ``-x``/``--xx`` flags in a command line (``--flag=value`` counts as ``--flag``)."""
    return {a.split("=", 1)[0] for a in argv if a.startswith("-")}


def flag_value(argv: Sequence[str], *names: str) -> Optional[str]:
    """The value of ``--name value`` or ``--name=value``, else None."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in names:
            return value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return None


def _knob_lines(schema: type, skip: tuple[str, ...] = ()) -> str:
    """One line per knob: key = default, what it does (from the register)."""
    lines = []
    for key, field, info in knobs(schema):
        if key.startswith(skip):
            continue
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        default = getattr(default, "value", default)
        lines.append(f"  {key} = {OmegaConf.to_yaml({'v': default}).strip()[3:]}".ljust(44) + f" {info.help}")
    return "\n".join(lines)


def _names(folder: Path) -> str:
    return ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "(none)"


def help_text(command: str) -> str:
    """The ``--help`` of ``train`` or ``sweep`` (Hydra substitutes $FLAGS_HELP)."""
    user = user_config_dirs()
    if command == "train":
        experiments = _names(Path(CONF_DIR) / "experiment")
        mine = ", ".join(_names(d / "experiment") for d in user if (d / "experiment").is_dir())
        return f"""gru-exp train: train the GRU on IMDB once, or a grid of runs with -m. Every knob below is set
with key=value on the command line; experiment=<name> applies a pinned set of values.
Also: python -m gru_exp.train ...

Examples:
  gru-exp train experiment=cpu_quick                      # a 1-layer GRU, 2 epochs, ~2 min on one CPU core
  gru-exp train -m model.hidden_size=64,128 trainer.seed=1,2     # a grid: 4 runs
  gru-exp train trainer.resume=<run folder>               # continue an interrupted run

Experiments: {experiments}{f'; yours: {mine}' if mine else ''}
Outputs: {project_root()}/outputs (runs/<date>/<time>_<name>_<overrides>/: metrics.json, checkpoints, vdl/)

Knobs (key = default, what it does):
{_knob_lines(RunConfig, skip=('paths.',))}
  paths.root_dir, paths.output_dir ...       where outputs go (see GRU_EXP_HOME)

{ENVIRONMENT}
""".replace("$", "$$") + "\n$FLAGS_HELP"  # Hydra fills the template with string.Template
    spaces = "\n".join(f"  {p.stem}{'' if p.parent == Path(SWEEPS_DIR) else f' ({p})'}: "
                       f"{', '.join(_space_keys(p)) or '(no params)'}" for p in sweep_files())
    return f"""gru-exp sweep: run (or resume: the same command again) an Optuna study whose trials are
trainings. A search space is a YAML file (sweep=<name>); any of its keys can be overridden.
Without sweep=, sweeps/default.yaml: about half an hour on 2 cores (at most an hour). The cost
(trials x epochs x seconds per epoch, and the finish time) is logged before the first trial and
after each one; the result is one line on stdout: study folder, best trial, its value(s),
tab-separated.
Also: python -m gru_exp.sweep ...

Examples:
  gru-exp sweep sweep=cpu_quick n_trials=8 n_workers=2     # 8 trials, 2 worker processes
  GRU_EXP_STORAGE=postgresql://user@host/db gru-exp sweep sweep=imdb launcher.name=slurm

Search spaces (name: searched knobs):
{spaces}

Sweep keys (key = default, what it does):
  study_name                                 the study's name (required; a search space sets it)
  storage = null                             an Optuna storage URL (or $GRU_EXP_STORAGE); null = SQLite in outputs/sweeps
  base = []                                  overrides every trial gets, e.g. [experiment=imdb_best]
  params = {{}}                                the searched knobs, each {{type, low, high, step, log, choices, when}}
  objectives = []                            several metrics [{{metric, direction}}, ...]: the study keeps the Pareto front
{_knob_lines(SweepConfig)}

{ENVIRONMENT}
""".replace("$", "$$") + "\n$FLAGS_HELP"


def _space_keys(path: Path) -> list[str]:
    try:
        return list(OmegaConf.load(path).get("params", {}) or {})
    except Exception:  # a broken file is reported when it is selected
        return ["(not valid YAML)"]


# Hydra flags followed by a value (a command-line override never follows one of them).
VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-path", "-cp",
                         "--config-name", "-cn", "--experimental-rerun", "--info", "-i"})


def with_overrides(argv: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``argv`` with ``extra`` overrides placed beside the user's own (Hydra takes overrides as one
    run of words: appended after ``--cfg job`` they would be an unrecognised argument)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-") and not (i and argv[i - 1] in VALUE_FLAGS):
            return [*argv[:i], *extra, *argv[i:]]
    return [*extra, *argv]


def check_no_searchpath(argv: Sequence[str], config_name: str = "config") -> None:
    """GruExpError for a ``hydra.searchpath`` the user gives: it would replace the user's config
    folders and escape the check that no config shadows another."""
    given = [a for a in argv if a.lstrip("+~").startswith("hydra.searchpath")]
    if given:
        raise GruExpError(f"{given[0]}: gru-exp puts your config folders on Hydra's search path itself, and checks "
                          "that none shadows another; name them in GRU_EXP_CONFIG_PATH (':'-separated)"
                          f"{' or --config-dir' if config_name == 'config' else ''} instead.")


def run_hydra(task: Callable[[Any], Any], config_name: str, argv: Sequence[str], prog: str) -> None:
    """Run ``task`` as ``@hydra.main`` would, on ``argv``, with the shipped conf/ as the primary
    config folder and the user's config folders ($GRU_EXP_CONFIG_PATH) on Hydra's search path.
    A problem with those folders is one paragraph and exit status 2; a closed stdout (``--help |
    head``) ends the command quietly with status 141, as a pipe's writer ends."""
    try:
        modes = [f for f in ("--run", "-r", "--multirun", "-m", "--cfg", "-c", "--info", "-i", "--shell-completion",
                             "-sc") if f in flags(argv)]
        if len(modes) > 1:
            raise GruExpError(f"{' and '.join(modes)}: Hydra runs one of --run, --multirun, --cfg, --info and "
                              "--shell-completion at a time; give one of them.")
        check_no_searchpath(argv, config_name)
        register_configs(sweeps=config_name == "sweep")
        extra = searchpath_override(user_config_dirs())
    except GruExpError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not OmegaConf.has_resolver("gru_exp.help"):
        OmegaConf.register_new_resolver("gru_exp.help", help_text)
    saved = sys.argv
    sys.argv = [prog, *with_overrides(argv, extra)]
    try:
        with redacted_output():  # Hydra's own printing (--cfg, argparse errors) can hold a storage URL
            hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(task)()
        sys.stdout.flush()
    except BrokenPipeError:
        _closed_stdout()
    finally:
        sys.argv = saved


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``gru-exp <command> [args]``: the one console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(version_text())
        return 0
    if not argv or argv[0] in ("-h", "--help", "help"):
        rows = "\n".join(f"  {name:<9} {what}" for name, (_, what) in COMMANDS.items())
        print_quietly(f"usage: gru-exp <command> [args]   (gru-exp <command> --help for each)\n\nCommands:\n{rows}\n\n"
              "Examples:\n  gru-exp train experiment=cpu_quick\n  gru-exp sweep sweep=cpu_quick n_trials=4\n  gru-exp dashboard\n"
              f"  gru-exp report outputs/sweeps/cpu_quick\n\n{ENVIRONMENT}\n\n{version_text()}")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"gru-exp: error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)} "
              "(gru-exp --help).", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:], prog=f"gru-exp {argv[0]}") or 0
