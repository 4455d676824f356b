"""Config values as the other tools want them: flat keys, Hydra override text, VisualDL hparams,
plain JSON-able data, and the typed dataclasses the training code reads."""

from __future__ import annotations

import copy
import re
from enum import Enum
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from gru_exp.config.knobs import Direction, ModelConfig, Pooling, RunConfig


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
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def hparam_value(value: Any) -> Any:
    """A value as VisualDL's add_hparams accepts it: int, float or str (protobuf 7 rejects bools)."""
    if value is None or isinstance(value, (bool, Enum)):
        return override_value(value)
    return value


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config as plain Python data (for metrics.json and hparams)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]


_PLAIN = re.compile(r"[A-Za-z0-9_\-+./:~@%*?|]*")  # Hydra's unquoted value characters (no $: interpolation)


def override(key: str, value: Any) -> str:
    """``key=value`` that Hydra's override grammar reads back as exactly ``value``: plain when it
    can be, else single-quoted with escapes (paths with spaces, commas, brackets, non-ASCII)."""
    text = override_value(value)
    if isinstance(value, str) and not _PLAIN.fullmatch(text):
        text = "'" + re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text) + "'"  # Hydra: \ only before a quote
    return f"{key}={text}"


def without_hydra(cfg: DictConfig) -> DictConfig:
    """A config composed with Hydra's own node, without it (typed as before); others as they are."""
    if "hydra" not in cfg:
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_config(cfg: DictConfig) -> RunConfig:
    """The composed config as the register's typed dataclasses (Enums as Enums, every value
    resolved): what the model, the loop and the optimizer read."""
    return OmegaConf.to_object(without_hydra(cfg))  # type: ignore[return-value]


def split_seed(rc: RunConfig) -> int:
    """The seed of a run's validation split and subsets: ``data.split_seed``, or ``trainer.seed``
    when it is null (one seed for split, init and order, as before the knob)."""
    return rc.trainer.seed if rc.data.split_seed is None else rc.data.split_seed


def attention_units(m: ModelConfig) -> int:
    """The hidden units of attention pooling's score layer (0: a linear score, or no attention
    pooling over a GRU): ``model.attention_size``, null meaning the GRU outputs' width."""
    if not m.gru or m.pooling != Pooling.attention:
        return 0
    width = m.hidden_size * (2 if m.direction == Direction.bidirectional else 1)
    return width if m.attention_size is None else m.attention_size
