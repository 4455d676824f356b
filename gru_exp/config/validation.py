"""Validation of a composed training config: each knob's declared range (from the register), then
the rules that tie knobs together. Raises one :class:`ConfigError` naming every problem."""

from __future__ import annotations

import math
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from gru_exp.config.knobs import BIGRAM_HASH, DataSource, Knob, Pooling, RunConfig, ValSplit, defaults, knobs
from gru_exp.config.names import name_problem
from gru_exp.errors import ConfigError


def _show(value: Any) -> str:
    return repr(str(value)) if isinstance(value, str) else str(value)


def _cross_rules(cfg: DictConfig) -> list[str]:
    """Rules between knobs; each names the knobs involved and how to fix them."""
    d, m, t = cfg.data, cfg.model, cfg.trainer
    problems = []
    if str(t.keep_checkpoints) == "last" and str(t.test_epoch) == "best":
        problems.append("trainer.keep_checkpoints=last removes best.pdparams, the weights trainer.test_epoch=best scores "
                        "(and that predict, export and a resume need); keep all, or best (only the scored weights), "
                        "or score the last epoch (trainer.test_epoch=last)")
    if m.layer_dropout is not None and m.num_layers == 1:
        problems.append(f"model.layer_dropout={m.layer_dropout} has no effect with model.num_layers=1 (it acts "
                        "between GRU layers); set it to null or use more layers")
    if not m.gru and m.pooling != Pooling.last:
        problems.append(f"model.pooling={m.pooling} has no effect with model.gru=false (it pools the GRU's outputs; "
                        "without the GRU the token embeddings are averaged); leave model.pooling at last")
    if m.attention_size is not None and (m.pooling != Pooling.attention or not m.gru):
        problems.append(f"model.attention_size={m.attention_size} has no effect without attention pooling over the GRU "
                        "(model.pooling=attention, model.gru=true); set it to null")
    if d.bucket_size > 0 and not m.use_lengths:
        problems.append(f"data.bucket_size={d.bucket_size} needs model.use_lengths=true: without lengths the GRU "
                        "reads the padding, so trimming batches would change the model; set data.bucket_size=0")
    if d.seq_len is None and not m.use_lengths:
        problems.append("data.seq_len=null needs model.use_lengths=true (without lengths every batch would be "
                        "padded to its longest review and the GRU would read the padding)")
    if m.bigram_buckets > 0 and not m.use_lengths:
        problems.append(f"model.bigram_buckets={m.bigram_buckets} needs model.use_lengths=true (the bag averages a "
                        "review's real pairs only; without lengths it would count the padding pairs)")
    if m.bigram_buckets > 0 and m.bigram_buckets % BIGRAM_HASH == 0:
        problems.append(f"model.bigram_buckets={m.bigram_buckets} is a multiple of the bigram hash's multiplier "
                        f"{BIGRAM_HASH}, so every bigram would hash by its second word only; use another number")
    if m.bigram_buckets == 0 and m.bigram_size != defaults()["model.bigram_size"]:
        problems.append(f"model.bigram_size={m.bigram_size} has no effect with model.bigram_buckets=0 (no bigram "
                        "bag); set model.bigram_buckets > 0 or leave model.bigram_size at its default (in a sweep file: "
                        "give model.bigram_size `when: {model.bigram_buckets: [...]}`)")
    if m.bigram_buckets == 0 and m.ngram_order != defaults()["model.ngram_order"]:
        problems.append(f"model.ngram_order={m.ngram_order} has no effect with model.bigram_buckets=0 (no n-gram bag); "
                        "set model.bigram_buckets > 0 or leave model.ngram_order at its default")
    problems += _ngram_model_rules(m)
    if t.bag_update == "rows" and (m.bigram_buckets == 0 or t.grad_clip > 0 or t.amp):
        why = ("there is no n-gram bag (model.bigram_buckets=0)" if m.bigram_buckets == 0 else
               f"trainer.grad_clip={t.grad_clip} clips by the global norm of the gradients the dense optimizer sees, "
               "and the bag's rows are not among them" if t.grad_clip > 0 else
               "trainer.amp=true scales the loss for the dense optimizer only")
        problems.append(f"trainer.bag_update=rows cannot be used here: {why}; use trainer.bag_update=dense")
    if d.val_size == 0 and (t.patience or t.test_epoch != "last"):
        chosen = [f"trainer.patience={t.patience} would stop on the test accuracy"] if t.patience else []
        if t.test_epoch != "last":
            chosen.append(f"trainer.test_epoch={t.test_epoch} would score the epoch with the best test accuracy")
        problems.append("data.val_size=0 evaluates on the test set, so " + " and ".join(chosen) + " (the test set "
                        "would choose the result); without a validation split use trainer.test_epoch=last and "
                        "trainer.patience=0 (a refit), or hold out a validation split (data.val_size > 0)")
    problems += _data_rules(d)
    problem = name_problem("name", cfg.name)
    if problem:
        problems.append(problem)
    if t.amp and t.device == "cpu":
        problems.append("trainer.amp=true needs trainer.device=gpu or auto with a GPU (it is float16 on CUDA)")
    return problems



def _ngram_model_rules(m: Any) -> list[str]:
    """What model.nb_* cannot be: the n-gram model needs lengths; its other knobs need it (and nb_weight the
    separate join)."""
    if m.nb_features > 0 and not m.use_lengths:
        return [f"model.nb_features={m.nb_features} needs model.use_lengths=true (the n-gram model reads a text's real "
                "n-grams only; without lengths it would count the padding)"]
    problems, default = [], defaults()
    for key in ("nb_order", "nb_join", "nb_weight", "nb_c"):
        if m.nb_features == 0 and getattr(m, key) != default[f"model.{key}"]:
            problems.append(f"model.{key}={getattr(m, key)} has no effect with model.nb_features=0 (no n-gram model); "
                            f"set model.nb_features > 0 or model.{key}={default[f'model.{key}']} (its default)")
    if m.nb_features > 0 and m.nb_join == "sum" and m.nb_weight != default["model.nb_weight"]:
        problems.append(f"model.nb_weight={m.nb_weight} has no effect with model.nb_join=sum (the logits are "
                        "summed); use model.nb_join=separate or prefit, or leave model.nb_weight at its default")
    if m.nb_features > 0 and m.nb_join != "prefit" and m.nb_c != default["model.nb_c"]:
        problems.append(f"model.nb_c={m.nb_c} has no effect with model.nb_join={m.nb_join} (the n-gram model trains "
                        "with the GRU's optimizer); use model.nb_join=prefit or leave model.nb_c at its default")
    return problems

def _data_rules(d: DictConfig) -> list[str]:
    """Which data knobs each source reads (docs/your-data.md)."""
    problems, source = [], d.source
    if source == DataSource.table and not d.train_file:
        problems.append("data.source=table needs data.train_file=<a .csv, .tsv or .jsonl file> (and optionally "
                        "data.test_file)")
    unused = [f"data.{k}={d[k]}" for k in ("train_file", "test_file", "group_column") if d[k] is not None]
    if source != DataSource.table and unused:
        problems.append(f"{', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect with data.source="
                        f"{source}: set data.source=table to read a CSV, TSV or JSONL file")
    if source == DataSource.folder and not d.path:
        problems.append("data.source=folder needs data.path=<root folder holding train/<label>/*.txt>")
    if d.val_split == ValSplit.groups and (source != DataSource.table or d.group_column is None):
        problems.append("data.val_split=groups needs data.source=table and data.group_column=<the column of group "
                        "ids>; without groups use data.val_split=random")
    if d.val_split == ValSplit.id_blocks and source != DataSource.imdb:
        problems.append(f"data.val_split=id_blocks needs IMDB's review ids (data.source=imdb), not data.source="
                        f"{source}; use data.val_split=random, or groups with data.group_column")
    return problems


def range_problems(cfg: DictConfig, schema: type = RunConfig, prefix: str = "") -> list[str]:
    """Each knob of ``schema`` in ``cfg`` whose value is outside its declared range."""
    problems = []
    for key, _, _ in knobs(schema):
        value = OmegaConf.select(cfg, key)
        why = allowed(key, value, schema)
        if why:
            problems.append(f"{prefix}{key}={_show(value)} {why}")
    return problems


def validate(cfg: DictConfig) -> None:
    """Check every knob against its declared range, then the cross-knob rules."""
    problems = range_problems(cfg) + _cross_rules(cfg)
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems) + ".", problems)


def allowed(key: str, value: Any, schema: type = RunConfig) -> Optional[str]:
    """None if ``value`` is allowed for ``key`` by its declared range, else what is allowed."""
    info = {k: i for k, _, i in knobs(schema)}[key]
    if value is None:
        return None if info.null else "must not be null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return _range_text(info) if info.low is not None or info.high is not None else "must be a finite number"
    lo_ok = info.low is None or (value > info.low if info.open_low else value >= info.low)
    hi_ok = info.high is None or (value < info.high if info.open_high else value <= info.high)
    return None if lo_ok and hi_ok else _range_text(info)


def _num(x: float) -> str:
    """A bound as people write it: 0.0001, 100, 4294967295 (not 4.29497e+09)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**63 else f"{x:g}"


def _range_text(info: Knob) -> str:
    if info.low is not None and info.high is not None:
        text = f"in {'(' if info.open_low else '['}{_num(info.low)}, {_num(info.high)}{')' if info.open_high else ']'}"
    elif info.low == 1 and not info.open_low:
        text = "a positive integer"
    elif info.low is not None:
        text = f"{'>' if info.open_low else '>='} {_num(info.low)}"
    else:
        return "must be a finite number"
    text = f"must be {text}"
    return f"{text} or null ({info.null})" if info.null else text
