"""Checkpoints: everything needed to continue a run (weights, optimizer, counters, RNG), written
atomically, and read back with a clear error when the file is damaged or from another model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import paddle

from gru_exp.errors import ConfigError
from gru_exp.files import crash_point
from gru_exp.train.loop import EpochMetrics, TrainState
from gru_exp.train.rundir import BEST_CKPT, LAST_CKPT


def _portable_optimizer_state(model: paddle.nn.Layer, state: dict[str, Any]) -> dict[str, Any]:
    """Key optimizer accumulators by structural parameter name ('gru.weight_ih_l0') instead of
    paddle's process-global names ('gru_3.w_0'), which differ between processes and models."""
    by_name = {p.name: f"@{n}" for n, p in model.named_parameters()}
    out = {}
    for key, value in state.items():
        owner = max((name for name in by_name if key.startswith(name + "_")), key=len, default=None)
        out[by_name[owner] + key[len(owner):] if owner else key] = value
    return out


def _local_optimizer_state(model: paddle.nn.Layer, state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_portable_optimizer_state` for this process's parameter names."""
    by_structure = {f"@{n}": p.name for n, p in model.named_parameters()}
    out = {}
    for key, value in state.items():
        owner = max((s for s in by_structure if key.startswith(s + "_")), key=len, default=None)
        out[by_structure[owner] + key[len(owner):] if owner else key] = value
    return out


def save_checkpoint(state: TrainState, path: Path, optimizer: bool = True) -> None:
    """Everything needed to continue: weights, optimizer (``optimizer=False``: an empty one, for a
    file nothing resumes from), epoch, history and paddle's RNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        paddle.save(
            {
                "model": state.model.state_dict(),
                "optimizer": _portable_optimizer_state(state.model, state.optimizer.state_dict()) if optimizer else {},
                "epoch": state.epoch,
                "step": state.step,
                "history": state.history_dict(),
                "best_epoch": state.best_epoch,
                "best_eval_acc": state.best_eval_acc,
                "rng": paddle.get_rng_state(),
            },
            str(tmp),
        )
        crash_point(f"{path.name}:tmp")
        os.replace(tmp, path)  # never a half-written checkpoint under the real name
    except BaseException:
        tmp.unlink(missing_ok=True)  # disk full or a signal: no temporary file left behind
        raise
    crash_point(path.name)


def keep_only(run_dir: Path, keep: str, written: set[str], scored: str = BEST_CKPT) -> list[str]:
    """After a finished run: remove the checkpoints ``keep`` (trainer.keep_checkpoints) does not keep,
    of those this run wrote (``written``); ``best`` keeps the ``scored`` one (the file the test score
    was read from). Returns the removed names. Nothing else is touched."""
    other = LAST_CKPT if scored == BEST_CKPT else BEST_CKPT
    drop = {"all": (), "last": (BEST_CKPT,), "best": (other,), "none": (BEST_CKPT, LAST_CKPT)}[str(keep)]
    removed = []
    for name in drop:
        if name in written and (run_dir / name).is_file():
            (run_dir / name).unlink()
            removed.append(name)
    folder = run_dir / Path(LAST_CKPT).parent
    if removed and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # this run made it (it wrote into it) and nothing else is in it
    return removed


def restore_checkpoint(state: TrainState, path: Path) -> None:
    """Load a :func:`save_checkpoint` file into ``state`` (model, optimizer, counters, RNG);
    ConfigError (one paragraph) when its contents are not what :func:`save_checkpoint` writes."""
    ckpt = model_checkpoint(state.model, path)
    try:
        history = [EpochMetrics(**h) for h in ckpt["history"]]
        if len(history) != ckpt["epoch"] or not all(isinstance(h.eval_acc, (int, float)) for h in history):
            raise ValueError(f"a history of {len(history)} epochs for epoch {ckpt['epoch']!r}")
        state.model.set_state_dict(ckpt["model"])
        state.optimizer.set_state_dict(_local_optimizer_state(state.model, ckpt["optimizer"]))
        paddle.set_rng_state(ckpt["rng"])
    except Exception as exc:  # noqa: BLE001 - a checkpoint that loads but holds other contents
        raise ConfigError(f"The checkpoint {path} holds contents gru-exp did not write ({type(exc).__name__}: "
                          f"{str(exc)[:200]}): it is damaged. Resume from another run folder or start a new "
                          "run.") from None
    state.epoch, state.step, state.history = ckpt["epoch"], ckpt["step"], history
    state.committed_epoch = state.epoch
    state.best_epoch, state.best_eval_acc = ckpt["best_epoch"], ckpt["best_eval_acc"]


def model_checkpoint(model: paddle.nn.Layer, path: Path) -> dict[str, Any]:
    """A checkpoint file of ``model``'s shapes; ConfigError (one paragraph) if it is damaged, not
    ours or of another model."""
    ckpt = load_checkpoint(path)
    _check_shapes(model, ckpt["model"], path)
    return ckpt


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents; ConfigError (one paragraph) if it is damaged or not ours."""
    try:
        ckpt = paddle.load(str(path))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise (OSError,
        # UnpicklingError, BadZipFile, ... and MemoryError for a length field of 2**62 bytes) means "damaged"
        raise ConfigError(f"The checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc)[:200]}): it is "
                          "damaged or truncated. Resume from another run folder or start a new run.") from None
    needed = {"model", "optimizer", "epoch", "step", "history", "best_epoch", "best_eval_acc", "rng"}
    if not isinstance(ckpt, dict) or not needed <= set(ckpt):
        raise ConfigError(f"The checkpoint {path} is not a gru-exp checkpoint (missing "
                          f"{', '.join(sorted(needed - set(ckpt))) if isinstance(ckpt, dict) else 'everything'}).")
    wrong = [f"{key}={str(ckpt[key])[:40]!r}" for key, ok in _FIELD_CHECKS.items() if not ok(ckpt[key])]
    if wrong:
        raise ConfigError(f"The checkpoint {path} is not a gru-exp checkpoint ({', '.join(wrong)} is not what gru-exp "
                          "writes): it is damaged. Resume from another run folder or start a new run.")
    return ckpt


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


_FIELD_CHECKS = {  # what save_checkpoint writes under each key
    "model": lambda x: isinstance(x, dict), "optimizer": lambda x: isinstance(x, dict),
    "epoch": _count, "step": _count, "history": lambda x: isinstance(x, list) and all(isinstance(h, dict) for h in x),
    "best_epoch": lambda x: x is None or _count(x),
    "best_eval_acc": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    "rng": lambda x: isinstance(x, list),
}


def _check_shapes(model: paddle.nn.Layer, weights: dict[str, Any], path: Path) -> None:
    own = {name: list(p.shape) for name, p in model.state_dict().items()}
    theirs = {name: list(getattr(w, "shape", [])) for name, w in weights.items()}
    if own != theirs:
        diff = [f"{k}: {theirs.get(k)} vs {own.get(k)}" for k in sorted(set(own) | set(theirs))
                if own.get(k) != theirs.get(k)][:4]
        raise ConfigError(f"The checkpoint {path} holds another model than this configuration builds ("
                          + "; ".join(diff) + "). Resume with the configuration it was trained with.")
