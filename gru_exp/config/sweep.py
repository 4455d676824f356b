"""The schema of a search space file (sweeps/*.yaml): what to search, how to sample and prune,
what to optimise, and how the study runs. Numbers carry their allowed ranges like the training
knobs (:mod:`.knobs`), so a negative timeout or a NaN fails before any trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from gru_exp.config.knobs import MAX_SEED, Choice, PathsConfig, knob


class SamplerName(Choice):
    tpe = "tpe"
    random = "random"
    grid = "grid"
    cmaes = "cmaes"
    qmc = "qmc"
    nsga2 = "nsga2"


class PrunerName(Choice):
    median = "median"
    percentile = "percentile"
    hyperband = "hyperband"
    successive_halving = "successive_halving"
    none = "none"


class Metric(Choice):
    eval_acc = "eval_acc"  # per epoch, on the validation split
    eval_loss = "eval_loss"  # per epoch
    eval_macro_f1 = "eval_macro_f1"  # per epoch: the mean F1 over the classes (several classes, imbalanced ones)
    train_minutes = "train_minutes"  # the trial's training wall time (all repeats), minutes
    n_params = "n_params"  # the model's parameter count


class Reduce(Choice):
    best = "best"
    last = "last"


class ObjectiveDirection(Choice):
    maximize = "maximize"
    minimize = "minimize"


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
    name: SamplerName = knob(SamplerName.tpe, "tpe | random | grid | qmc | cmaes | nsga2 (several objectives)")
    seed: Optional[int] = knob(0, "seeds every trial's draw", low=0, high=MAX_SEED, null="unseeded")
    n_startup_trials: int = knob(5, "tpe, cmaes: random trials before the model kicks in", low=0)


@dataclass
class PrunerConfig:
    name: PrunerName = knob(PrunerName.median, "stops trials that trail the others")
    n_startup_trials: int = knob(3, "median/percentile: complete trials before pruning starts", low=0)
    n_warmup_steps: int = knob(2, "median/percentile: first epoch (step) at which a trial may be pruned", low=0)
    percentile: float = knob(25.0, "percentile pruner: keep trials above this percentile", low=0.0, high=100.0,
                             open_low=True, open_high=True)
    min_resource: int = knob(1, "hyperband / successive halving, in epochs", low=1)
    reduction_factor: int = knob(3, "hyperband / successive halving", low=2)


@dataclass
class ObjectiveConfig:
    metric: Metric = knob(Metric.eval_acc, "what the study optimises")
    reduce: Reduce = knob(Reduce.best, "per-epoch metrics: the best or the last epoch of each run")
    direction: ObjectiveDirection = knob(ObjectiveDirection.maximize, "maximize | minimize")


class LauncherName(Choice):
    local = "local"  # n_workers processes on this machine
    slurm = "slurm"  # a Slurm job array of n_workers tasks (gru_exp/sweep/slurm/; pip install -e .[slurm])


@dataclass
class LauncherConfig:
    """Where the workers run. ``slurm``: one Slurm array task per worker, submitted through submitit."""

    name: LauncherName = knob(LauncherName.local, "local | slurm (a job array of n_workers tasks)")
    partition: Optional[str] = knob(None, "Slurm partition", null="the cluster's default partition")
    timeout_min: int = knob(240, "each task's wall-time limit, minutes; a task that reaches it is requeued", low=1)
    mem_gb: Optional[float] = knob(None, "memory per task, GB", low=0.0, open_low=True, null="the partition's default")
    cpus_per_task: int = knob(1, "CPUs per task (one worker each; trainer.num_threads sets its threads)", low=1)
    gpus_per_task: int = knob(0, "GPUs per task (trainer.device=auto then trains on it)", low=0)
    account: Optional[str] = knob(None, "Slurm account to charge", null="your default account")
    qos: Optional[str] = knob(None, "Slurm quality of service", null="the default QOS")
    array_parallelism: Optional[int] = knob(None, "tasks running at once", low=1, null="all n_workers")
    additional_parameters: dict[str, Any] = knob({}, "more sbatch options, e.g. {constraint: v100}")
    max_num_timeout: int = knob(3, "times a task that reaches timeout_min is requeued", low=0)
    wait: bool = knob(True, "follow the study until the array ends; false = submit and return")
    poll_s: float = knob(30.0, "seconds between progress checks while waiting", low=0.0, open_low=True)


@dataclass
class SweepConfig:
    """``python -m gru_exp.sweep``: a search space from sweeps/ plus how to run the study."""

    study_name: str = "???"
    storage: Optional[str] = None  # null = sqlite under paths.sweeps_dir; any SQLAlchemy URL; journal:<file>
    n_trials: int = knob(20, "the study's total of COMPLETE + PRUNED trials", low=1)
    timeout: Optional[float] = knob(None, "seconds; no new trial starts after it", low=0.0, open_low=True,
                                    null="no limit")
    n_workers: int = knob(1, "worker processes on this machine, one CPU thread each", low=1)
    gpus: Optional[list[str]] = knob(None, "GPU ids the local workers are spread over, round robin (e.g. [0,1])",
                                     null="every GPU this machine shows; none on a CPU machine")
    repeats: int = knob(1, "seeds per configuration; the objective is their mean", low=1)
    enqueue_baseline: bool = False  # the notebook's configuration as the study's first trial
    base: list[str] = field(default_factory=list)  # training overrides every trial starts from
    params: dict[str, ParamSpec] = field(default_factory=dict)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    # Several objectives (e.g. eval_acc up, train_minutes down): the study keeps the Pareto front.
    # Empty = the single `objective` above. Optuna cannot prune a multi-objective study.
    objectives: list[ObjectiveConfig] = field(default_factory=list)
    heartbeat_interval: int = knob(30, "seconds between a running trial's heartbeats", low=1)
    grace_period: int = knob(120, "seconds without a heartbeat before a trial is failed and retried", low=2)
    max_retry: int = knob(1, "retries of a trial whose worker died", low=0)
    max_failures: Optional[int] = knob(None, "stop after this many trials raised", low=1, null="n_trials")
    storage_retry_s: float = knob(300.0, "how long a worker retries an unreachable storage before it stops", low=0.0)
    paths: PathsConfig = field(default_factory=PathsConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)


EPOCH_METRICS = ("eval_acc", "eval_loss", "eval_macro_f1")  # reported per epoch: the ones a pruner can act on


def objective_list(sc: Any) -> list[Any]:
    """The study's objectives in order: ``objectives`` when given, else the single ``objective``.
    The one place that reads them (after :func:`normalise_objectives`, ``sc.objective`` agrees)."""
    return list(sc.objectives) or [sc.objective]


def normalise_objectives(sc: Any) -> None:
    """A one-item ``objectives:`` list IS the single objective: it becomes ``objective`` (and the
    list empty), so pruning, the progress line and summaries treat it as such."""
    if len(sc.objectives) == 1:
        sc.objective = sc.objectives[0]
        sc.objectives = []


def is_accuracy(metric: Any) -> bool:
    """Accuracies are shown as percentages; every other metric under its own name and unit."""
    return str(metric).endswith("_acc")


def show_metric(value: Any, metric: Any) -> str:
    """A metric's value as text: accuracies as "89.60%", losses "0.3412", minutes "3.21 min",
    parameter counts as whole numbers; "" for a missing value."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    metric = str(metric)
    if is_accuracy(metric):
        return f"{100 * value:.2f}%"
    if metric == "train_minutes":
        return f"{value:.2f} min"
    if metric == "n_params":
        return f"{value:,.0f}"
    return f"{value:.4f}"
