"""A study's identity: everything that gives its trials' values their meaning, stored with the
study when it is made (user attribute ``gru_exp_identity``) and compared on every resume.

It holds each objective's metric, reduce (per-epoch metrics only) and direction, ``repeats`` (a
value is the mean over that many seeds) and the training configuration every trial starts from:
the result knobs of the composed ``base`` (the register's ``result=True`` knobs other than the
seeds, e.g. ``trainer.epochs``, ``data.val_size``; and, when set, the replicate knobs declared
``pins_study``, e.g. ``data.split_seed``, which fixes which texts every value is measured on), leaving out the searched ones, the SHA-256 of
the data (``data.path`` may differ between machines, the data may not), and which keys are searched.
A resume that changes any of them is refused before anything is written. A study made before
identities were stored is compared with the ``base`` and ``params`` it stored when it was made,
then stores its identity."""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import optuna
from omegaconf import DictConfig, OmegaConf

from gru_exp.config.compose import compose_config
from gru_exp.config.knobs import keys, study_keys
from gru_exp.config.sweep import EPOCH_METRICS, objective_list
from gru_exp.config.values import flatten
from gru_exp.errors import ConfigError, DataChangedError, DataError
from gru_exp.redact import redact
from gru_exp.data import sources

log = logging.getLogger(__name__)
IDENTITY_ATTR = "gru_exp_identity"
DATA_KEY = "data (SHA-256 of data.path)"  # in an identity's "training": the data every trial trains on
DATA_FILE_KEYS = ("data.source", "data.path", "data.train_file", "data.test_file")  # searched: each trial's own data


def identity(sc: DictConfig, base: Any = None, params: Any = None) -> dict[str, Any]:
    """What this sweep's values mean (JSON-ready); ``base`` and ``params`` stand in for the sweep's
    own (an older study's stored ones)."""
    objectives = [{"metric": str(o.metric), "reduce": str(o.reduce) if str(o.metric) in EPOCH_METRICS else None,
                   "direction": str(o.direction)} for o in objective_list(sc)]
    base = list(sc.base if base is None else base)
    searched = sorted(sc.params if params is None else params)
    composed = OmegaConf.to_container(compose_config(base), resolve=True, enum_to_str=True)
    flat = flatten(composed)  # type: ignore[arg-type]
    pinning = set(keys(pins_study=True))  # e.g. data.split_seed: in the identity only when set
    training = {k: flat.get(k) for k in study_keys()
                if k not in searched and not (k in pinning and flat.get(k) is None)}
    digest = data_sha256(composed["data"])  # type: ignore[index]
    if digest is not None:  # the data itself, wherever it lies on this machine
        training[DATA_KEY] = digest
    return json.loads(json.dumps({"objectives": objectives, "repeats": int(sc.repeats), "training": training,
                                  "searched": searched}))


def _settings(ident: dict[str, Any]) -> dict[str, Any]:
    """An identity as the sweep file's own keys: objective.reduce, objectives[1].metric, repeats,
    base: trainer.epochs."""
    objectives = ident.get("objectives") or []
    out: dict[str, Any] = {}
    for i, o in enumerate(objectives):
        where = "objective" if len(objectives) == 1 else f"objectives[{i}]"
        out.update({f"{where}.{k}": v for k, v in o.items()})
    if "repeats" in ident:
        out["repeats"] = ident["repeats"]
    if "searched" in ident:
        out["params (the searched keys)"] = ", ".join(ident["searched"]) or "none"
    out.update({f"base: {k}": v for k, v in (ident.get("training") or {}).items()})
    return out


def differences(stored: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, stored value, new value) for each setting both record and that differs. A setting
    only one of them records (a knob added since) is taken as unchanged."""
    old, now = _settings(stored), _settings(new)
    return [(k, old[k], now[k]) for k in old if k in now and old[k] != now[k]]


def check_identity(study: optuna.Study, sc: DictConfig, url: str) -> dict[str, Any]:
    """ConfigError when the stored study was made with other settings that give its values their
    meaning; returns this sweep's identity (to store when the study has none yet)."""
    new = identity(sc)
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if not isinstance(stored, dict):
        if not isinstance(study.user_attrs.get("base"), list):
            return new
        # A study made before identities were stored: its own base and searched keys, as it stored them,
        # stand for what its trials trained (its objectives are checked against its metric names).
        stored = identity(sc, base=study.user_attrs["base"], params=study.user_attrs.get("params") or list(sc.params))
        stored.pop("repeats")  # not stored then: taken from this sweep
    changed = differences(stored, new)
    if changed:
        was = ", ".join(f"{k}={v!r}" for k, v, _ in changed)
        asks = ", ".join(f"{k}={v!r}" for k, _, v in changed)
        raise ConfigError(
            f"study_name={sc.study_name!r} in {redact(url)} was made with {was}; this sweep asks for {asks}. Its "
            "trials' values mean what the stored settings made them mean, so continuing would mix two meanings "
            "under one \"best\". Resume with the stored settings (the sweep file it was started with), or use "
            "another study_name for the new ones. Nothing was written.")
    return new


def data_sha256(data: dict[str, Any]) -> Optional[str]:
    """The SHA-256 of the data ``data`` (plain data knobs) names, None when it is not here to hash
    (paddle's download, a missing file)."""
    found = sources.present(data)
    try:
        return found.sha256() if found is not None else None
    except DataError:  # a file removed since it was found
        return None


def check_same_data(study_name: str, ident: dict[str, Any], cfg: DictConfig) -> None:
    """DataChangedError when a trial's data (``cfg``, composed) is not what the study ``ident``
    (its stored identity) was made with: a file edited, replaced or removed while the sweep ran
    would put trials of two datasets under one "best" (the resume check sees it only at the next
    run). Nothing to compare for paddle's download or a searched data key."""
    stored = (ident.get("training") or {}).get(DATA_KEY)
    if stored is None or set(ident.get("searched") or []) & set(DATA_FILE_KEYS) or sources.is_download(cfg.data):
        return
    now = data_sha256(OmegaConf.to_container(cfg.data, resolve=True))  # type: ignore[arg-type]
    if now != stored:
        what = f"its SHA-256 is now {now[:12]}" if now else "it is missing or unreadable now"
        raise DataChangedError(
            f"Study {study_name!r} was made on data of SHA-256 {stored[:12]}, and {what} (edited, replaced or "
            "removed while the sweep ran); no trial runs on other data than the study's. Put the study's data back "
            "and run the same command to continue (this trial is queued again), or start another study_name for the "
            "new data.")


def store_identity(study: optuna.Study, ident: dict[str, Any], first_resume: bool) -> None:
    """Store the identity with the study (a new study, or an older one on its first resume)."""
    if first_resume:
        log.info("Study %r had no stored identity (made before gru-exp stored one): storing this sweep's (%s); "
                 "later resumes must match it", study.study_name,
                 ", ".join(f"{k}={v}" for k, v in _settings(ident).items() if not k.startswith("base: ")))
    study.set_user_attr(IDENTITY_ATTR, ident)
