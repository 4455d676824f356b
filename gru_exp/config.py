"""The one schema of every knob, its registration in Hydra's ConfigStore, and its validation.

Types and key names are enforced by Hydra at composition (a typo'd key or a string where an
int belongs fails before any work); value ranges and cross-field rules are checked by
:func:`validate`, which raises one :class:`ConfigError` naming every bad key, its value and
what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from gru_exp.errors import ConfigError

DIRECTIONS = ("forward", "bidirectional")
DEVICES = ("auto", "cpu", "gpu")
POOLINGS = ("last", "mean", "max", "attention")
LR_SCHEDULES = ("constant", "cosine", "linear")
# IMDB's longest review has 2,470 tokens (paddle's tokenizer); a longer seq_len only pads. The
# bound keeps a typo (seq_len=100000) from padding batches to sizes that exhaust memory.
MAX_SEQ_LEN = 5000


@dataclass
class DataConfig:
    path: Optional[str] = None  # IMDB archive; null = $GRU_EXP_IMDB, else paddle's download
    cache_dir: str = "???"  # preprocessed arrays, keyed by archive hash + cutoff
    seq_len: Optional[int] = 200  # reviews are truncated / padded at the end to this many tokens; null = whole reviews
    cutoff: int = 150  # paddle's Imdb: keep words seen more than `cutoff` times
    val_size: int = 2500  # reviews held out of train (stratified); 0 = evaluate on test
    train_limit: Optional[int] = None  # stratified training subset; null = all
    test_limit: Optional[int] = None  # stratified test subset; null = all 25,000
    bucket_size: int = 50  # batches per length-sorted chunk; 0 = plain shuffle


@dataclass
class ModelConfig:
    embedding_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    direction: str = "bidirectional"
    dropout: float = 0.5  # after the embedding, between GRU layers and before the classifier
    layer_dropout: Optional[float] = None  # between GRU layers only; null = dropout (needs num_layers > 1)
    use_lengths: bool = True  # pass true lengths to the GRU (final state skips padding)
    pooling: str = "last"  # last | mean | max | attention over the GRU outputs (padding never pooled)
    word_dropout: float = 0.0  # probability of dropping a whole token's embedding (training only)


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0  # decoupled (AdamW); 0 = plain Adam
    lr_schedule: str = "constant"  # constant | cosine | linear (decay to 0 over the run's steps)
    warmup: float = 0.0  # share of the run's steps with a linear warm-up from 0 to lr
    seed: int = 42
    device: str = "auto"
    grad_clip: float = 0.0  # global-norm clip; 0 = off
    amp: bool = False  # float16 autocast + loss scaling; GPU only
    drop_last: bool = True  # drop the last incomplete training batch
    eval_drop_last: bool = False  # drop the last incomplete eval batch (the notebook did)
    num_threads: int = 1  # CPU threads per training process
    flush_denormals: bool = True  # CPU: flush denormal floats to zero (GRU backward is 10x faster)
    patience: int = 0  # stop after this many epochs without a better eval accuracy; 0 = off
    resume: Optional[str] = None  # run folder whose last checkpoint to continue
    progress_every_s: float = 15.0  # seconds between progress lines


@dataclass
class LoggerConfig:
    visualdl: bool = True
    batch_loss_every: int = 10  # steps between train/batch_loss points; 0 = off
    baseline: bool = True  # write the notebook's reference run when it is missing


@dataclass
class PathsConfig:
    root_dir: str = "???"
    output_dir: str = "???"
    cache_dir: str = "???"
    baseline_dir: str = "???"
    sweeps_dir: str = "???"


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    name: str = "run"  # experiment name, part of run folder names


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


def project_root() -> str:
    """Where outputs live: $GRU_EXP_HOME, else the source checkout this package sits in."""
    env = os.environ.get("GRU_EXP_HOME")
    if env:
        return str(Path(env).expanduser().resolve())
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return str(checkout)
    return str(Path.home() / "gru_exp")


CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
SWEEPS_DIR = str(Path(__file__).resolve().parent.parent / "sweeps")


MAX_FOLDER_CHARS = 200  # + the time and name prefix stays under the usual 255-byte limit


def folder_name(text: str) -> str:
    """``text`` as a folder name: as is when short, else cut and made unique by a hash of the whole
    (a sweep's best trial has a dozen overrides, more than a file system allows in one name)."""
    text = str(text).replace("/", "%")
    if len(text) <= MAX_FOLDER_CHARS:
        return text
    import hashlib

    return f"{text[:MAX_FOLDER_CHARS - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def register_configs() -> None:
    """Store the schema and the resolver Hydra needs. Idempotent; call before composing."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("gru_exp.root"):
        OmegaConf.register_new_resolver("gru_exp.root", project_root)
    if not OmegaConf.has_resolver("gru_exp.suffix"):  # "_<text>" or "" (run folder names)
        OmegaConf.register_new_resolver("gru_exp.suffix", lambda text="": f"_{folder_name(text)}" if text else "")
    if not OmegaConf.has_resolver("gru_exp.folder"):  # a multirun job's folder name
        OmegaConf.register_new_resolver("gru_exp.folder", folder_name)
    store = ConfigStore.instance()
    store.store(name="gru_exp_schema", node=RunConfig)
    store.store(name="sweep_schema", node=SweepConfig)
    # The `sweep` group lives in sweeps/ (plus any folders in $GRU_EXP_SWEEPS_PATH, colon-separated).
    folders = [SWEEPS_DIR, *filter(None, os.environ.get("GRU_EXP_SWEEPS_PATH", "").split(os.pathsep))]
    for folder in folders:
        for path in sorted(Path(folder).glob("*.yaml")):
            store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_")


def _positive(errors: list[str], key: str, value: Any) -> None:
    if value is None or value <= 0:
        errors.append(f"{key}={value} must be a positive integer")


def validate(cfg: DictConfig) -> None:
    """Check value ranges and cross-field rules; raise one ConfigError listing every problem."""
    errors: list[str] = []
    d, m, t = cfg.data, cfg.model, cfg.trainer
    for key in ("embedding_size", "hidden_size", "num_layers"):
        _positive(errors, f"model.{key}", m[key])
    for key in ("epochs", "batch_size", "eval_batch_size", "num_threads"):
        _positive(errors, f"trainer.{key}", t[key])
    if d.seq_len is not None and not 1 <= d.seq_len <= MAX_SEQ_LEN:
        errors.append(f"data.seq_len={d.seq_len} must be null (whole reviews) or in [1, {MAX_SEQ_LEN}] (IMDB's "
                      "longest review has 2,470 tokens; more only pads)")
    if d.seq_len is None and not m.use_lengths:
        errors.append("data.seq_len=null needs model.use_lengths=true (without lengths every batch would be "
                      "padded to its longest review and the GRU would read the padding)")
    if d.cutoff < 0:
        errors.append(f"data.cutoff={d.cutoff} must be >= 0 (keep words seen more than cutoff times)")
    if m.pooling not in POOLINGS:
        errors.append(f"model.pooling={m.pooling!r} must be one of {', '.join(POOLINGS)}")
    if not 0.0 <= m.word_dropout < 1.0:
        errors.append(f"model.word_dropout={m.word_dropout} must be in [0, 1)")
    if not 0.0 <= t.weight_decay < 1.0:
        errors.append(f"trainer.weight_decay={t.weight_decay} must be in [0, 1) (decoupled, AdamW; 0 = Adam)")
    if t.lr_schedule not in LR_SCHEDULES:
        errors.append(f"trainer.lr_schedule={t.lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= t.warmup < 1.0:
        errors.append(f"trainer.warmup={t.warmup} must be in [0, 1) (share of the run's steps)")
    if not 0.0 <= m.dropout < 1.0:
        errors.append(f"model.dropout={m.dropout} must be in [0, 1)")
    if m.layer_dropout is not None and not 0.0 <= m.layer_dropout < 1.0:
        errors.append(f"model.layer_dropout={m.layer_dropout} must be null (= model.dropout) or in [0, 1)")
    if m.layer_dropout is not None and m.num_layers == 1:
        errors.append(
            f"model.layer_dropout={m.layer_dropout} has no effect with model.num_layers=1 (it acts between GRU "
            "layers); set it to null or use more layers"
        )
    if m.direction not in DIRECTIONS:
        errors.append(f"model.direction={m.direction!r} must be one of {', '.join(DIRECTIONS)}")
    if t.device not in DEVICES:
        errors.append(f"trainer.device={t.device!r} must be one of {', '.join(DEVICES)}")
    if not t.lr > 0:
        errors.append(f"trainer.lr={t.lr} must be > 0")
    if t.grad_clip < 0:
        errors.append(f"trainer.grad_clip={t.grad_clip} must be >= 0 (0 turns clipping off)")
    if t.amp and t.device == "cpu":
        errors.append("trainer.amp=true needs trainer.device=gpu or auto with a GPU (it is float16 on CUDA)")
    if t.patience < 0:
        errors.append(f"trainer.patience={t.patience} must be >= 0 (epochs without a better eval accuracy "
                      "before stopping; 0 = never stop early)")
    if t.progress_every_s < 0:
        errors.append(f"trainer.progress_every_s={t.progress_every_s} must be >= 0")
    if d.val_size < 0:
        errors.append(f"data.val_size={d.val_size} must be >= 0 (0 = evaluate on the test set)")
    for key in ("train_limit", "test_limit"):
        if d[key] is not None and d[key] < 2:
            errors.append(f"data.{key}={d[key]} must be null (all) or at least 2 (one per class)")
    if d.bucket_size < 0:
        errors.append(f"data.bucket_size={d.bucket_size} must be >= 0 (0 = no length bucketing)")
    if d.bucket_size > 0 and not m.use_lengths:
        errors.append(
            f"data.bucket_size={d.bucket_size} needs model.use_lengths=true: without lengths the GRU "
            "reads the padding, so trimming batches would change the model; set data.bucket_size=0"
        )
    if cfg.logger.batch_loss_every < 0:
        errors.append(f"logger.batch_loss_every={cfg.logger.batch_loss_every} must be >= 0 (0 = off)")
    if errors:
        raise ConfigError("Invalid configuration: " + "; ".join(errors) + ".", errors)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"hidden_size": 8}} -> {"model.hidden_size": 8}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back (bools lower-case, None as null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def hparam_value(value: Any) -> Any:
    """A value as VisualDL's add_hparams accepts it: int, float or str (protobuf 7 rejects bools)."""
    return override_value(value) if value is None or isinstance(value, bool) else value


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config as plain Python data (for metrics.json and hparams)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
