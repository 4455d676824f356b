"""Search spaces from sweeps/*.yaml: validation before any trial, sampling into Hydra overrides,
and the samplers and pruners a sweep file names."""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any, Callable, Sequence

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf

from gru_exp.config.compose import composition_error
from gru_exp.config.knobs import keys
from gru_exp.config.names import name_problem
from gru_exp.config.sweep import EPOCH_METRICS, SweepConfig, objective_list
from gru_exp.config.validation import range_problems, validate
from gru_exp.config.values import override
from gru_exp.data import sources
from gru_exp.errors import ConfigError, DataError, GruExpError
from gru_exp.sweep.identity import DATA_FILE_KEYS
from gru_exp.sweep.study_file import study_dir
from gru_exp.sweep.corners import corner_problem, edge_values, choice_by_test_problems

log = logging.getLogger(__name__)

PARAM_TYPES = ("int", "float", "categorical")
_MISSING = object()


def _check_spec(key: str, spec: DictConfig) -> list[str]:
    where = f"params.{key}"
    if spec.type not in PARAM_TYPES:
        return [f"{where}.type={spec.type!r} must be one of {', '.join(PARAM_TYPES)}"]
    if spec.type == "categorical":
        return [] if spec.choices else [f"{where} is categorical but has no choices"]
    problems = []
    if spec.low is None or spec.high is None:
        return [f"{where} ({spec.type}) needs low and high"]
    if spec.low > spec.high:
        problems.append(f"{where}: low={spec.low} > high={spec.high}")
    if spec.log and spec.low <= 0:
        problems.append(f"{where}: log=true needs low > 0, got low={spec.low}")
    if spec.log and spec.step is not None:
        problems.append(f"{where}: step and log=true cannot be combined")
    if spec.step is not None and spec.step <= 0:
        problems.append(f"{where}: step={spec.step} must be > 0")
    if spec.type == "int" and any(v is not None and float(v) != int(v) for v in (spec.low, spec.high, spec.step)):
        problems.append(f"{where} is int but low/high/step are not whole numbers")
    return problems


def _data_problems(sc: DictConfig, base: DictConfig) -> list[str]:
    """The base's data files, checked as a training checks them before its folder is made (missing,
    unreadable): otherwise every trial fails on them and the study stops at max_failures. Not when
    a searched key names the data, nor on a Slurm submission (the data may be on the compute nodes
    only; each task checks it there)."""
    if any(k in DATA_FILE_KEYS for k in sc.params) or sc.launcher.name == "slurm":
        return []
    try:
        sources.check_files(base.data)
    except DataError as exc:
        return [f"base: {exc}".rstrip(".")]
    return []


def check_sweep(sc: DictConfig, compose: Callable[[Sequence[str]], DictConfig]) -> None:
    """Reject a malformed sweep before any trial: unknown keys, bad ranges, unknown sampler or
    pruner, and parameter values the training schema would refuse (each range's ends composed
    and validated like a trial)."""
    problems = range_problems(sc, SweepConfig)
    name = name_problem("study_name", sc.study_name)
    if name:
        problems.append(name)
    elif os.path.lexists(study_dir(sc)) and not study_dir(sc).is_dir():  # checked before the study is made
        problems.append(f"study_name={sc.study_name!r}: its study folder {study_dir(sc)} is a file, not a folder (the "
                        "study database itself?); choose another study_name")
    needs = {"cmaes": "cmaes", "qmc": "scipy"}.get(str(sc.sampler.name))
    if needs and importlib.util.find_spec(needs) is None:
        problems.append(f"sampler.name={sc.sampler.name!r} needs the {needs} package: pip install {needs}")
    if sc.grace_period <= sc.heartbeat_interval:
        problems.append(f"grace_period={sc.grace_period} must exceed heartbeat_interval={sc.heartbeat_interval}")
    metrics = [str(o.metric) for o in objective_list(sc)]
    twice = sorted({m for m in metrics if metrics.count(m) > 1})
    if twice:
        problems.append(f"objectives lists {', '.join(twice)} more than once ({metrics}); each metric may be an "
                        "objective once (one direction each): remove the repeated one")
    if len(objective_list(sc)) > 1 and sc.sampler.name in ("cmaes", "qmc"):
        problems.append(f"sampler.name={sc.sampler.name} cannot optimise several objectives; use tpe, nsga2 or random")
    if not sc.params:
        problems.append("params is empty: name at least one training key to search")
    fixed = set(keys(in_name=False))
    for key in sc.params:
        if key in fixed:
            problems.append(f"params.{key} is not searchable: it says where a run reads or writes, not what it trains")
    try:
        base = compose(list(sc.base))
    except Exception as exc:
        raise ConfigError(f"Invalid sweep: base={list(sc.base)} does not compose as training overrides: "
                          f"{composition_error(exc)}") from None
    try:
        validate(base)
    except ConfigError as exc:  # a searched key may repair the base; anything else fails every trial
        problems += [f"base: {p}" for p in exc.problems if p.split("=", 1)[0] not in sc.params]
    problems.extend(choice_by_test_problems(sc, base))
    problems.extend(_data_problems(sc, base))
    for key, spec in sc.params.items():
        if OmegaConf.select(base, key, default=_MISSING) is _MISSING:
            problems.append(f"params.{key}: no such training key (e.g. model.hidden_size, trainer.lr)")
            continue
        problems.extend(_check_spec(key, spec))
        problems.extend(_check_when(key, spec, sc.params, base))
    if sc.sampler.name == "grid":
        for key, spec in sc.params.items():
            if spec.type == "float" and spec.step is None:
                problems.append(f"params.{key}: the grid sampler needs choices or a step, not a continuous range")
    if problems:
        raise ConfigError("Invalid sweep: " + "; ".join(problems) + ".")
    for key, spec in sc.params.items():  # each range end, as a trial would compose it
        for value in edge_values(spec):
            # Make the parameter's condition true, so the value is checked where it is used.
            when = [override(c, list(v)[-1]) for c, v in (spec.when or {}).items()]
            try:
                validate(compose(trial_overrides(sc.base, [*when, override(key, value)])))
            except ConfigError as exc:
                # Only the value's own range counts here; rules between knobs: the corners below.
                own = [p for p in exc.problems if p.startswith(f"{key}=") and "=" not in p.partition(" ")[2]]
                if own:
                    raise ConfigError(f"Invalid sweep: params.{key} allows {value!r}, which training rejects: "
                                      + "; ".join(own) + ".") from exc
            except GruExpError:
                pass
            except Exception as exc:
                raise ConfigError(f"Invalid sweep: params.{key}={value!r} does not compose: {exc}") from exc
    # Combinations a trial can draw that break a rule between knobs (e.g. model.bigram_size searched
    # without a `when:` on model.bigram_buckets): refused here, not failed trial by trial.
    problem = corner_problem(sc, base, compose, lambda sampled: trial_overrides(
        sc.base, [override(k, v) for k, v in sampled.items()]))
    if problem:
        raise ConfigError(problem)


def _check_when(key: str, spec: DictConfig, params: DictConfig, base: DictConfig) -> list[str]:
    """A ``when`` that can be true: on a parameter sampled before ``key`` (file order) with a value it
    can take, or on a base key whose fixed value is one of those listed (else the condition would
    silently never hold)."""
    problems, order = [], list(params)
    for cond, allowed in (spec.when or {}).items():
        allowed = list(allowed)
        if cond in params:
            if order.index(cond) > order.index(key):
                problems.append(f"params.{key}.when: {cond} must be listed before {key} (parameters are sampled in "
                                "file order)")
            elif not any(can_take(params[cond], v) for v in allowed):
                problems.append(f"params.{key}.when: {cond} in {allowed} can never be true ({cond} is searched "
                                f"over {_space_text(params[cond])})")
            continue
        fixed = OmegaConf.select(base, cond, default=_MISSING)
        if fixed is _MISSING:
            problems.append(f"params.{key}.when: no such key {cond!r}")
        elif fixed not in allowed:
            problems.append(f"params.{key}.when: {cond} in {allowed} is never true: {cond} is not searched and the "
                            f"base sets it to {fixed!r}")
    return problems


def can_take(spec: DictConfig, value: Any) -> bool:
    """Whether the parameter ``spec`` can sample ``value`` (the exact value, of its type)."""
    if spec.type == "categorical":
        return value in list(spec.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return spec.low <= value <= spec.high and (spec.type == "float" or float(value).is_integer())


def _space_text(spec: DictConfig) -> str:
    if spec.type == "categorical":
        return str(list(spec.choices))
    cast = int if spec.type == "int" else float
    return f"[{cast(spec.low)}, {cast(spec.high)}] ({spec.type})"


def trial_overrides(base: Sequence[str], sampled: Sequence[str]) -> list[str]:
    """``base`` without the keys that are sampled, then the sampled values."""
    keys = {s.split("=", 1)[0] for s in sampled}
    return [b for b in base if b.split("=", 1)[0] not in keys] + list(sampled)


def suggest_overrides(trial: optuna.Trial, params: DictConfig) -> list[str]:
    """Sample the space in file order; a parameter whose ``when`` fails is not sampled at all. A
    condition on a base key holds (:func:`check_sweep` refused the sweep otherwise)."""
    chosen: dict[str, Any] = {}
    for key, spec in params.items():
        if spec.when and any(cond in params and chosen.get(cond) not in list(allowed)
                             for cond, allowed in spec.when.items()):
            continue
        if spec.type == "categorical":
            value = trial.suggest_categorical(key, list(spec.choices))
        elif spec.type == "int":
            value = trial.suggest_int(key, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
        else:
            value = trial.suggest_float(key, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
        chosen[key] = value
    return [override(k, v) for k, v in chosen.items()]


def distribution(spec: DictConfig) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution :func:`suggest_overrides` samples ``spec`` from."""
    if spec.type == "categorical":
        return optuna.distributions.CategoricalDistribution(list(spec.choices))
    if spec.type == "int":
        return optuna.distributions.IntDistribution(int(spec.low), int(spec.high), step=int(spec.step or 1),
                                                    log=bool(spec.log))
    return optuna.distributions.FloatDistribution(float(spec.low), float(spec.high), step=spec.step, log=bool(spec.log))


def space_problems(study: optuna.Study, params: DictConfig) -> list[str]:
    """Why the stored trials of ``study`` cannot be continued with the space ``params``: a searched
    key whose kind (float, int, categorical) or choices changed, which Optuna refuses at every
    trial's first suggestion (the trials then fail, one after another). A changed range of the same
    kind continues."""
    stored: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        for key, dist in trial.distributions.items():
            stored.setdefault(key, dist)
    problems = []
    for key, spec in params.items():
        if key in stored:
            try:
                optuna.distributions.check_distribution_compatibility(stored[key], distribution(spec))
            except ValueError as exc:
                problems.append(f"{key} was searched as {stored[key]!r}, this sweep asks {_space_text(spec)} ({exc})")
    return problems


def make_sampler(sc: DictConfig, stream: int = 0) -> optuna.samplers.BaseSampler:
    """The sweep's sampler, seeded from (``sampler.seed``, ``stream``).

    Samplers keep their history in the storage but their random state in memory, so a sampler
    made afresh for every trial with ``stream`` = the number of trials so far gives each trial
    its own deterministic draw: a resumed study does not replay its first samples, and workers
    asking under the same lock never draw the same values. QMC keeps one seed: its sequence
    position is stored in the study."""
    s = sc.sampler
    seed = None if s.seed is None else int(np.random.SeedSequence([s.seed, stream]).generate_state(1)[0])
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if s.name == "qmc":
        return optuna.samplers.QMCSampler(seed=s.seed)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=s.n_startup_trials)
    grid = {}
    for key, spec in sc.params.items():
        if spec.type == "categorical":
            grid[key] = list(spec.choices)
        else:
            step = spec.step or 1
            cast = int if spec.type == "int" else float
            n = int(round((spec.high - spec.low) / step)) + 1
            grid[key] = [cast(spec.low + i * step) for i in range(n)]
    return optuna.samplers.GridSampler(grid, seed=seed)


def make_pruner(sc: DictConfig) -> optuna.pruners.BasePruner:
    p = sc.pruner
    objectives = objective_list(sc)
    if len(objectives) > 1:  # Optuna cannot prune multi-objective trials (no trial.report)
        if p.name != "none":
            log.warning("pruner.name=%s is off: Optuna cannot prune a study with several objectives", p.name)
        return optuna.pruners.NopPruner()
    metric = str(objectives[0].get("metric", "eval_acc"))  # prune_replay passes an empty objective
    if metric not in EPOCH_METRICS:  # known only when a run ends: nothing to report per epoch
        if p.name != "none":
            log.warning("pruner.name=%s is off: objective.metric=%s has no per-epoch value to prune on", p.name, metric)
        return optuna.pruners.NopPruner()
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    if p.name == "percentile":
        return optuna.pruners.PercentilePruner(p.percentile, n_startup_trials=p.n_startup_trials,
                                               n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()
