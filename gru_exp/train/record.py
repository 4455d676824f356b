"""The run record: one typed, versioned ``metrics.json`` per run folder, written and read only
through :class:`RunRecord` (the loop writes it every epoch; sweeps and reports read it)."""

from __future__ import annotations

import dataclasses
import json
import platform
import typing
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from gru_exp.config.knobs import Choice
from gru_exp.errors import GruExpError
from gru_exp.files import write_json
from gru_exp.train.rundir import RECORD_FILE

RECORD_VERSION = 2  # 1: the untyped records before this class (same keys, no "version")
SERIES_KEYS = ("epoch", "train_loss", "train_acc", "eval_loss", "eval_acc", "train_time_s", "eval_time_s",
               "train_samples_per_s", "eval_macro_f1")


class Status(Choice):
    running = "running"  # training now (or killed without a word: SIGKILL, power loss)
    completed = "completed"  # done as configured, or early-stopped: its best epoch was scored on test
    pruned = "pruned"  # stopped by a sweep's pruner
    interrupted = "interrupted"  # SIGINT / SIGTERM: resumable from its last checkpoint
    failed = "failed"  # raised (NaN loss, out of memory, ...); the error says why

    @property
    def trial_state(self) -> str:
        """The Optuna trial state name reports use for a run with this status."""
        return {"completed": "COMPLETE", "pruned": "PRUNED", "running": "RUNNING"}.get(self.value, "FAIL")


class RecordError(GruExpError):
    """A metrics.json that is not a gru-exp run record (damaged, foreign, or from a newer version)."""


@dataclass
class RunRecord:
    config: dict[str, Any]  # the resolved config (plain data)
    run_dir: Path
    status: Status = Status.running
    eval_split: str = "val"  # "val" or "test" (the notebook's protocol)
    epochs_done: int = 0
    best_epoch: Optional[int] = None
    best_eval_acc: Optional[float] = None
    series: dict[str, list[float]] = field(default_factory=dict)  # per epoch, SERIES_KEYS
    test: dict[str, float] = field(default_factory=dict)  # acc, loss, macro_f1, auc (ROC, binary) of test_epoch
    test_classes: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> precision, recall, f1, support
    test_confusion: list[list[int]] = field(default_factory=list)  # [true class][predicted class] counts
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # majority: class, acc, macro_f1 on test
    test_epoch: Optional[int] = None  # the epoch whose weights were scored: the best one, or the last (trainer.test_epoch)
    resumed_from: Optional[str] = None
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    host: str = ""
    pid: int = 0
    command: list[str] = field(default_factory=list)
    n_params: int = 0
    data_load_s: float = 0.0
    archive: str = ""
    archive_sha256: Optional[str] = None  # the data's identity: a resume on other data is refused
    n_train: int = 0
    n_eval: int = 0
    n_test: int = 0
    classes: list[str] = field(default_factory=list)  # class number -> name (the labels' order)
    test_from: str = ""  # where the test texts come from when held out of the training texts
    wall_time_s: Optional[float] = None  # every session of the run (a resume adds the run it continues)
    stop_reason: Optional[str] = None
    error: Optional[str] = None
    version: int = RECORD_VERSION

    @property
    def test_acc(self) -> Optional[float]:
        return self.test.get("acc")

    @property
    def test_macro_f1(self) -> Optional[float]:
        """Macro-F1 of the scored epoch's test predictions (records before it: None)."""
        return self.test.get("macro_f1")

    @property
    def data_source(self) -> str:
        """The run's data.source ("imdb" in records written before the knob)."""
        return str((self.config.get("data") or {}).get("source") or "imdb")

    @property
    def test_auc(self) -> Optional[float]:
        """ROC AUC of the scored epoch's test predictions (records before it: None)."""
        return self.test.get("auc")

    def write(self) -> None:
        data = dataclasses.asdict(self)
        data["status"], data["run_dir"] = str(self.status), str(self.run_dir)
        write_json(Path(self.run_dir) / RECORD_FILE, data)

    @classmethod
    def read(cls, path: Path) -> "RunRecord":
        """The record in ``path`` (a metrics.json or its run folder); RecordError if it is not one."""
        path = Path(path)
        path = path / RECORD_FILE if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordError(f"{path} is not a readable run record ({type(exc).__name__}: {exc}).") from None
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or "series" not in data:
            raise RecordError(f"{path} is not a gru-exp run record (no config and series): written by another tool?")
        if data.get("version", 1) > RECORD_VERSION:
            raise RecordError(f"{path} has record version {data['version']}; this gru-exp reads up to "
                              f"{RECORD_VERSION}: upgrade gru-exp.")
        hints = typing.get_type_hints(cls)
        known = {k: v for k, v in data.items() if k in hints}
        wrong = [f"{k}={_short(v)} is not of type {_type_name(hints[k])}" for k, v in known.items()
                 if k not in ("status", "run_dir", "version") and not _fits(v, hints[k])]
        if wrong:
            raise RecordError(f"{path} is a damaged run record: {'; '.join(wrong[:4])}.")
        try:
            known["status"] = Status(known.get("status", "running"))
            known["run_dir"] = Path(known.get("run_dir") or path.parent)
            known["version"] = RECORD_VERSION
            return cls(**known)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{path} is a damaged run record ({exc}).") from None


def _fits(value: Any, hint: Any) -> bool:
    """Whether JSON ``value`` has the field type ``hint`` (int, float, str, Optional, list, dict)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Union:
        return any(_fits(value, a) for a in args)
    if origin in (list, dict):
        items = value if isinstance(value, list) else value.values() if isinstance(value, dict) else None
        return isinstance(value, origin) and all(_fits(v, args[-1]) for v in items)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    """``Optional[int]`` -> 'integer or null', ``dict[str, list[float]]`` -> 'mapping to list of number'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, dict):
        return f"{'list of' if origin is list else 'mapping to'} {_type_name(args[-1])}"
    return {int: "integer", float: "number", str: "string", type(None): "null"}.get(hint, str(hint))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def package_versions() -> dict[str, str]:
    """Python's and the main packages' versions, for the record (``versions``)."""
    out = {"python": platform.python_version()}
    for dist in ("paddlepaddle", "paddlepaddle-gpu", "numpy", "hydra-core", "omegaconf", "visualdl", "optuna"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
