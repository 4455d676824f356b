"""What a run checks before its first step, so a refusal never leaves a half result: that a
resumed run continues one trained the same way, and that the configuration fits in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gru_exp.config.knobs import Direction, RunConfig, resume_fixed_keys, with_defaults
from gru_exp.config.values import attention_units, flatten
from gru_exp.errors import ConfigError
from gru_exp.data import sources
from gru_exp.data.splits import DataSplits
from gru_exp.train import device as devices
from gru_exp.train.record import RecordError, RunRecord, Status
from gru_exp.train.rundir import LAST_CKPT, RECORD_FILE


def check_resume(config: dict[str, Any], resume_dir: Path) -> tuple[Path, int]:
    """The checkpoint to continue from and the epochs its run's record has finished; ConfigError if
    missing or trained differently. A run that trained all its epochs but was stopped before it
    was scored (status not completed) may be resumed with the same trainer.epochs: it is then scored."""
    ckpt = resume_dir / LAST_CKPT
    if not ckpt.is_file() or not (resume_dir / RECORD_FILE).is_file():
        raise ConfigError(f"trainer.resume={str(resume_dir)!r} is not a run folder with a finished epoch "
                          f"(needs {LAST_CKPT} and {RECORD_FILE})"
                          + ("; it stopped before its first epoch finished, or was trained with "
                             "trainer.keep_checkpoints=best or none (a sweep trial's default), which keeps no "
                             "last.pdparams: train it again in a new folder instead." if (resume_dir / RECORD_FILE).is_file()
                             else "."))
    try:
        record = RunRecord.read(resume_dir)
    except RecordError as exc:
        raise ConfigError(f"trainer.resume={str(resume_dir)!r}: {exc}") from None
    epochs = config["trainer"]["epochs"]
    if record.epochs_done > epochs or (record.epochs_done == epochs and record.status == Status.completed):
        raise ConfigError(f"trainer.epochs={epochs} but trainer.resume={str(resume_dir)!r} already has "
                          f"{record.epochs_done} epochs; raise trainer.epochs to continue it.")
    found = sources.present(config["data"])
    if record.archive_sha256 and found is not None and found.sha256() != record.archive_sha256:
        key = "data.path" if len(found.files) == 1 and "archive" in found.files else "the data"
        raise ConfigError(f"{key}={found.what!r} is not the data trainer.resume={str(resume_dir)!r} was trained on "
                          f"({record.archive}, another SHA-256); a resumed run continues on the same data. Give "
                          "the data of that run (data.path, data.train_file ...), or start a new run.")
    old, new = with_defaults(flatten(record.config)), flatten(config)
    fixed = set(resume_fixed_keys())
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(fixed) if old.get(k) != new.get(k)]
    scheduled = new.get("trainer.lr_schedule") != "constant" or (new.get("trainer.warmup") or 0) > 0
    if scheduled and old.get("trainer.epochs") != epochs:
        changed.append(f"trainer.epochs: {old.get('trainer.epochs')!r} -> {epochs!r} (the learning-rate schedule "
                       "spans the run's epochs: only a constant schedule can be extended)")
    if changed:
        raise ConfigError(f"trainer.resume={str(resume_dir)!r} was trained with a different configuration ("
                          + "; ".join(changed) + "). Only epochs, device, threads, logging and paths may change "
                          "on resume.")
    return ckpt, record.epochs_done


def estimated_bytes(cfg: RunConfig, splits: DataSplits) -> int:
    """A generous estimate of a run's peak memory: parameters with their gradients and Adam moments,
    plus the activations of the largest training batch (kept for backward) or evaluation batch."""
    m, t = cfg.model, cfg.trainer
    dirs = 2 if m.direction == Direction.bidirectional else 1
    width = splits.longest
    if cfg.data.seq_len is not None and not m.use_lengths:
        width = cfg.data.seq_len  # batches are padded to seq_len
    bigrams = m.bigram_size if m.bigram_buckets > 0 else 0
    attention = attention_units(m)  # attention pooling's score layer: its hidden units per token, and its weights
    per_token = (m.embedding_size + 4 * m.hidden_size * dirs * m.num_layers + bigrams  # floats: input, gates, output
                 + attention)
    words = min(m.gru_words, splits.vocab_size - 2) + 2 if m.gru_words else splits.vocab_size  # the GRU's embedding rows
    ngrams = m.nb_features * (3 * len(splits.class_names) + 2)  # weights, ratios, a gradient; int64 vocabulary
    params = ngrams + words * m.embedding_size + 3 * m.num_layers * dirs * m.hidden_size * (
        m.embedding_size + m.hidden_size * (1 + dirs)) + m.bigram_buckets * bigrams + attention * (dirs * m.hidden_size + 2)
    train = min(t.batch_size, len(splits.train)) * width * per_token * 3  # forward values kept for backward
    evaluation = min(t.eval_batch_size, max(len(splits.eval), len(splits.test))) * width * per_token
    return 4 * (4 * params + max(train, evaluation))


def check_memory(cfg: RunConfig, splits: DataSplits) -> None:
    """ConfigError before any allocation when the configuration cannot fit in this machine's memory."""
    need, have = estimated_bytes(cfg, splits), devices.available_memory()
    m = cfg.model
    bigrams = f", model.bigram_buckets={m.bigram_buckets} x model.bigram_size={m.bigram_size}" if m.bigram_buckets else ""
    bigrams += f", model.attention_size={m.attention_size}" if m.attention_size else ""
    bigrams += f", model.nb_features={m.nb_features}" if m.nb_features else ""
    if need > have:
        raise ConfigError(
            f"This configuration needs about {need / 2**30:.1f} GiB (batches of up to trainer.batch_size="
            f"{cfg.trainer.batch_size} / trainer.eval_batch_size={cfg.trainer.eval_batch_size} reviews of up to "
            f"{cfg.data.seq_len or 'their full'} tokens, model.hidden_size={cfg.model.hidden_size}, "
            f"model.embedding_size={cfg.model.embedding_size}{bigrams}), but {have / 2**30:.1f} GiB are available. "
            "Use smaller batches, a shorter data.seq_len or a smaller model"
            + (" (model.nb_features: the data may hold far fewer n-grams; the log names how many)." if m.nb_features
               else "."))
