"""One training run, start to finish: config -> data -> model -> loop -> callbacks -> run record.

:func:`run_training` is the library's single way to train; ``python -m gru_exp.train`` and every
sweep trial call it. All user errors (bad values, missing data, incompatible resume) are raised
before the first step, so a run folder never holds a half result that looks real.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig

from gru_exp import runtime
from gru_exp.config import flatten, to_container, validate
from gru_exp.errors import ConfigError
from gru_exp.redact import redact_all

log = logging.getLogger(__name__)

# Knobs that may differ between a run and its resumption (where and how, not what is trained).
RESUME_FREE_KEYS = {
    "trainer.epochs", "trainer.resume", "trainer.device", "trainer.num_threads", "trainer.progress_every_s",
    "trainer.flush_denormals", "trainer.patience",
    "data.path", "data.cache_dir", "name",
}


@dataclass
class RunResult:
    status: str  # completed | pruned (or another StopRun status)
    run_dir: Path
    best_eval_acc: float
    best_epoch: Optional[int]
    epochs_done: int
    test: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def check_resume(config: dict[str, Any], resume_dir: Path) -> Path:
    """The checkpoint to continue from; ConfigError if missing or trained differently."""
    ckpt = resume_dir / "checkpoints" / "last.pdparams"
    record_path = resume_dir / "metrics.json"
    if not ckpt.is_file() or not record_path.is_file():
        raise ConfigError(
            f"trainer.resume={str(resume_dir)!r} is not a run folder with a finished epoch "
            "(needs checkpoints/last.pdparams and metrics.json)."
        )
    record = json.loads(record_path.read_text())
    if record.get("epochs_done", 0) >= config["trainer"]["epochs"]:
        raise ConfigError(
            f"trainer.epochs={config['trainer']['epochs']} but trainer.resume={str(resume_dir)!r} already has "
            f"{record.get('epochs_done')} epochs; raise trainer.epochs to continue it."
        )
    old = flatten(record["config"])
    new = flatten(config)
    scheduled = new.get("trainer.lr_schedule", "constant") != "constant" or new.get("trainer.warmup", 0.0) > 0
    if scheduled and old.get("trainer.epochs") != new.get("trainer.epochs"):
        raise ConfigError(
            f"trainer.epochs={new.get('trainer.epochs')} differs from the {old.get('trainer.epochs')} that "
            f"trainer.resume={str(resume_dir)!r} was started with, and its learning-rate schedule "
            f"(trainer.lr_schedule={new.get('trainer.lr_schedule')}, trainer.warmup={new.get('trainer.warmup')}) "
            "spans the run's epochs: only a constant schedule can be extended on resume."
        )
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
               if k not in RESUME_FREE_KEYS and not k.startswith(("paths.", "logger.")) and old.get(k) != new.get(k)]
    if changed:
        raise ConfigError(
            f"trainer.resume={str(resume_dir)!r} was trained with a different configuration ("
            + "; ".join(changed) + "). Only epochs, device, threads and paths may change on resume."
        )
    return ckpt


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("paddlepaddle", "paddlepaddle-gpu", "numpy", "hydra-core", "omegaconf", "visualdl", "optuna"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_training(
    cfg: DictConfig, run_dir: Path, callbacks: Sequence[Any] = (), display_name: Optional[str] = None
) -> RunResult:
    """Train one model as ``cfg`` says, leaving a complete record in ``run_dir``.

    ``callbacks`` are added after the standard ones (progress, checkpoints, metrics.json,
    VisualDL); a callback may end the run early by raising ``training.StopRun``.
    """
    wall_start = time.perf_counter()
    validate(cfg)
    config = to_container(cfg)
    from gru_exp.data import load_imdb, make_splits, resolve_archive

    archive = resolve_archive(cfg.data.path)
    resume_ckpt = check_resume(config, Path(cfg.trainer.resume).expanduser()) if cfg.trainer.resume else None

    runtime.limit_threads(cfg.trainer.num_threads)
    device = runtime.select_device(cfg.trainer.device)
    if device == "cpu" and cfg.trainer.flush_denormals and not runtime.flush_denormals():
        log.warning("trainer.flush_denormals=true is not supported on this CPU/libc; training may be slower")
    if cfg.trainer.amp and not device.startswith("gpu"):
        raise ConfigError(f"trainer.amp=true needs a GPU, but trainer.device={cfg.trainer.device!r} resolved to {device}.")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    runtime.seed_everything(cfg.trainer.seed)

    import paddle

    from gru_exp.baseline import ensure_baseline
    from gru_exp.callbacks import (BEST_CKPT, Checkpointer, EarlyStopping, MetricsRecorder, ProgressLogger,
                                   restore_checkpoint)
    from gru_exp.model import GRUClassifier
    from gru_exp.tracking import VisualDLTracker, flat_hparams
    from gru_exp.training import LoopSettings, StopRun, TrainState, evaluate, fit

    data_start = time.perf_counter()
    arrays = load_imdb(archive, cfg.data.cutoff, Path(cfg.data.cache_dir))
    splits = make_splits(
        arrays, seq_len=cfg.data.seq_len, val_size=cfg.data.val_size, train_limit=cfg.data.train_limit,
        test_limit=cfg.data.test_limit, seed=cfg.trainer.seed,
    )
    data_time = time.perf_counter() - data_start
    for split, size, drop, key in ((splits.train, cfg.trainer.batch_size, cfg.trainer.drop_last, "batch_size"),
                                   (splits.eval, cfg.trainer.eval_batch_size, cfg.trainer.eval_drop_last,
                                    "eval_batch_size")):
        if drop and len(split) < size:
            raise ConfigError(f"trainer.{key}={size} with drop_last leaves no batch of the {len(split)} reviews "
                              f"in this split; use a smaller trainer.{key} or more data.")
    log.info("Data: %d train, %d %s, %d test reviews; vocabulary %d; %.2f s", len(splits.train),
             len(splits.eval), splits.eval_name, len(splits.test), splits.vocab_size, data_time)

    m = cfg.model
    model = GRUClassifier(splits.vocab_size, m.embedding_size, m.hidden_size, m.num_layers, m.direction, m.dropout,
                          m.layer_dropout, pooling=m.pooling, word_dropout=m.word_dropout)
    t = cfg.trainer
    clip = paddle.nn.ClipGradByGlobalNorm(t.grad_clip) if t.grad_clip > 0 else None
    if t.weight_decay > 0:  # decoupled weight decay; Adam otherwise, bit for bit as before the knob
        optimizer = paddle.optimizer.AdamW(learning_rate=t.lr, parameters=model.parameters(), grad_clip=clip,
                                           weight_decay=t.weight_decay)
    else:
        optimizer = paddle.optimizer.Adam(learning_rate=t.lr, parameters=model.parameters(), grad_clip=clip)
    n_train = len(splits.train)
    steps = n_train // t.batch_size if t.drop_last else -(-n_train // t.batch_size)
    settings = LoopSettings(
        epochs=t.epochs, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        seed=t.seed, drop_last=t.drop_last, eval_drop_last=t.eval_drop_last,
        bucket_size=cfg.data.bucket_size, use_lengths=m.use_lengths, amp=t.amp,
        lr=t.lr, lr_schedule=t.lr_schedule, warmup=t.warmup, steps_per_epoch=steps,
    )
    state = TrainState(
        run_dir=run_dir, hparams=flat_hparams(config), model=model, optimizer=optimizer, epochs=settings.epochs,
        steps_per_epoch=steps, eval_name=splits.eval_name,
    )
    if resume_ckpt is not None:
        restore_checkpoint(state, resume_ckpt)
        state.resumed_from = str(resume_ckpt.parent.parent)
        best = resume_ckpt.parent / "best.pdparams"
        if best.is_file():
            (run_dir / BEST_CKPT).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(best, run_dir / BEST_CKPT)
        log.info("Resuming %s after epoch %d", state.resumed_from, state.epoch)

    n_params = sum(int(p.numel()) for p in model.parameters())
    recorder = MetricsRecorder({
        "config": config, "device": device, "versions": _versions(), "host": socket.gethostname(),
        "pid": os.getpid(), "command": redact_all(sys.argv), "n_params": n_params, "data_load_s": data_time,
        "archive": str(archive), "n_train": n_train, "n_eval": len(splits.eval), "n_test": len(splits.test),
    })
    all_callbacks = [ProgressLogger(cfg.trainer.progress_every_s), Checkpointer(), recorder]
    if cfg.logger.visualdl:
        if display_name is None:  # e.g. runs/2026-11-27/04-11-11_cpu_quick
            output_dir = Path(cfg.paths.output_dir).resolve()
            resolved = run_dir.resolve()
            display_name = str(resolved.relative_to(output_dir)) if output_dir in resolved.parents else run_dir.name
        all_callbacks.append(VisualDLTracker(run_dir / "vdl", display_name, cfg.logger.batch_loss_every))
    all_callbacks.extend(callbacks)
    if cfg.trainer.patience:
        all_callbacks.append(EarlyStopping(cfg.trainer.patience))  # last: every other callback sees the epoch
    if cfg.logger.baseline:
        ensure_baseline(Path(cfg.paths.baseline_dir))
    log.info("Model: %s GRU, %d layer(s), embedding %d, hidden %d, dropout %.2f, lengths %s: %d parameters on %s",
             m.direction, m.num_layers, m.embedding_size, m.hidden_size, m.dropout, m.use_lengths, n_params, device)

    result: dict[str, Any] = {"status": "failed"}
    try:
        try:
            fit(state, splits, settings, all_callbacks)
            result["status"] = "completed"
        except StopRun as stop:
            result.update(status=stop.status, stop_reason=str(stop))
            log.info("Run stopped after epoch %d: %s", state.epoch, stop)
        if result["status"] == "completed" and state.best_epoch is not None:
            if splits.eval_name == "test":  # the notebook's protocol: the best epoch was scored on test
                best = state.history[state.best_epoch - 1]
                result["test"] = {"acc": best.eval_acc, "loss": best.eval_loss}
            else:
                model.set_state_dict(paddle.load(str(run_dir / BEST_CKPT))["model"])
                loss, acc = evaluate(model, splits.test, settings)
                result["test"] = {"acc": acc, "loss": loss}
            log.info("Test (best epoch %d): acc %.4f, loss %.4f", state.best_epoch, result["test"]["acc"],
                     result["test"]["loss"])
    except KeyboardInterrupt:
        result.update(status="interrupted", error="KeyboardInterrupt")
        raise
    except BaseException as exc:
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        result["wall_time_s"] = time.perf_counter() - wall_start
        for cb in all_callbacks:
            cb.on_train_end(state, result)
    return RunResult(
        status=result["status"], run_dir=run_dir, best_eval_acc=state.best_eval_acc, best_epoch=state.best_epoch,
        epochs_done=state.epoch, test=result.get("test", {}), record=recorder.last,
    )
