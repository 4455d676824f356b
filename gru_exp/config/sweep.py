"""The schema of a search space file (sweeps/*.yaml): what to search, how to sample and prune,
what to optimise, and how the study runs. Training knobs themselves live in :mod:`.knobs`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from gru_exp.config.knobs import PathsConfig


@dataclass
class ParamSpec:
    """One searched knob: int / float (low, high, optional step or log) or categorical (choices)."""

    type: str = "???"  # int | float | categorical
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    log: bool = False
    choices: Optional[list[Any]] = None
    when: Optional[dict[str, list[Any]]] = None  # sample only if these keys take one of these values


@dataclass
class SamplerConfig:
    name: str = "tpe"  # tpe | random | grid | cmaes | qmc
    seed: Optional[int] = 0
    n_startup_trials: int = 5  # tpe, cmaes: random trials before the model kicks in


@dataclass
class PrunerConfig:
    name: str = "median"  # median | percentile | hyperband | successive_halving | none
    n_startup_trials: int = 3  # median/percentile: complete trials before pruning starts
    n_warmup_steps: int = 2  # median/percentile: first epoch (step) at which a trial may be pruned
    percentile: float = 25.0  # percentile pruner: keep trials above this percentile
    min_resource: int = 1  # hyperband / successive halving, in epochs
    reduction_factor: int = 3  # hyperband / successive halving


@dataclass
class ObjectiveConfig:
    metric: str = "eval_acc"  # eval_acc | eval_loss (per epoch, on the validation split)
    reduce: str = "best"  # best | last epoch of each run
    direction: str = "maximize"  # maximize | minimize


@dataclass
class SweepConfig:
    """``python -m gru_exp.sweep``: a search space from sweeps/ plus how to run the study."""

    study_name: str = "???"
    storage: Optional[str] = None  # null = sqlite under paths.sweeps_dir; any SQLAlchemy URL; journal:<file>
    n_trials: int = 20  # the study's total of COMPLETE + PRUNED trials
    timeout: Optional[float] = None  # seconds; no new trial starts after it
    n_workers: int = 1  # worker processes on this machine, one CPU thread each
    repeats: int = 1  # seeds per configuration; the objective is their mean
    enqueue_baseline: bool = False  # the notebook's configuration as the study's first trial
    base: list[str] = field(default_factory=list)  # training overrides every trial starts from
    params: dict[str, ParamSpec] = field(default_factory=dict)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    heartbeat_interval: int = 30  # seconds; a trial silent for grace_period is failed and retried
    grace_period: int = 120
    max_retry: int = 1  # retries of a trial whose worker died
    max_failures: Optional[int] = None  # stop after this many failed trials; null = n_trials
    storage_retry_s: float = 300.0  # how long a worker retries an unreachable storage before it stops
    paths: PathsConfig = field(default_factory=PathsConfig)
