"""``python -m gru_exp.train [overrides]``: one training (or a grid with ``-m``) from Hydra configs.

A thin shell over :func:`gru_exp.train.run.run_training`. User errors print one paragraph and
exit with status 2; the run folder of a rejected job is removed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gru_exp.commands import INFO_FLAGS, flags, run_hydra, version_text
from gru_exp.config.values import override
from gru_exp.errors import GruExpError
from gru_exp.train import device
from gru_exp.train.precheck import precheck
from gru_exp.train.rundir import LAST_CKPT, discard_unstarted_run

log = logging.getLogger(__name__)


class _Outcome:
    """What this command's jobs came to (Hydra's launcher runs them in this process and keeps
    their return values to itself): failures, and the multirun folder to tidy if all failed."""

    def __init__(self, existed: Optional[dict[Path, frozenset[str]]] = None, kept: Optional[Path] = None) -> None:
        self.existed = existed or {}  # per run folder: Hydra's files it had before this command
        self.kept = kept  # a multirun folder that existed (empty) before this command: never removed
        self.failures: list[str] = []
        self.sweep_dir: Optional[Path] = None
        self.output_dir = Path("/")
        self.pid = os.getpid()

    def task(self, cfg: DictConfig) -> Optional[float]:
        """One job: the library's training on the composed config."""
        device.limit_threads(cfg.trainer.num_threads)  # before paddle is imported: it sizes its pools once
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if hydra_cfg.mode.name == "MULTIRUN":
            self.sweep_dir, self.output_dir = Path(hydra_cfg.sweep.dir), Path(cfg.paths.output_dir)
        signal.signal(signal.SIGTERM, _terminate)  # also while paddle loads (seconds)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started with & by a script
        try:
            log.info("Outputs go to %s; this run's folder: %s", cfg.paths.output_dir, run_dir)
            device.import_paddle()
            signal.signal(signal.SIGTERM, _terminate)  # again: paddle's import installs its own handler
            from gru_exp.train.run import run_training

            record = run_training(cfg, run_dir)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the record says "interrupted", the checkpoint stays
            if (run_dir / LAST_CKPT).is_file():
                print(f"gru_exp.train: interrupted; the run folder keeps its last finished epoch. Continue it "
                      f"with:\n  python -m gru_exp.train {' '.join(_resume_args(run_dir))}", file=sys.stderr)
            else:
                print("gru_exp.train: interrupted before the first epoch ended; nothing to continue, start it "
                      "again.", file=sys.stderr)
            self.discard(run_dir, cfg)
            raise
        except GruExpError as exc:  # a user error, or a NaN loss (NonFiniteLossError)
            log.error("%s", exc)
            print(f"gru_exp.train: error: {exc}", file=sys.stderr)
            self.discard(run_dir, cfg)
            if os.getpid() != self.pid:  # a launcher running jobs in other processes: fail the job visibly
                raise
            self.failures.append(str(exc))
            return None
        log.info("Run folder: %s (status %s, best eval acc %.4f)", run_dir, record.status,
                 record.best_eval_acc or 0.0)
        print(os.path.abspath(run_dir), flush=True)  # stdout carries the result, one line per run; logs go to stderr
        return record.best_eval_acc  # Hydra's objective: the best eval accuracy

    def discard(self, run_dir: Path, cfg: DictConfig) -> None:
        """A rejected job's folder: what this command made there removed, what it had kept."""
        discard_unstarted_run(run_dir, stop_at=Path(cfg.paths.output_dir),
                              existed=self.existed.get(Path(os.path.abspath(run_dir)), frozenset()))

    def tidy(self) -> None:
        """A multirun whose every job was rejected leaves no folder holding only multirun.yaml."""
        if self.sweep_dir and self.sweep_dir.is_dir() and {p.name for p in self.sweep_dir.iterdir()} <= {"multirun.yaml"}:
            (self.sweep_dir / "multirun.yaml").unlink(missing_ok=True)  # Hydra wrote it for this command
            if self.kept is not None and self.kept == Path(os.path.abspath(self.sweep_dir)):
                return
            self.sweep_dir.rmdir()
            for parent in self.sweep_dir.parents:  # the date folder, when it is now empty
                if parent == self.output_dir or not parent.is_relative_to(self.output_dir) or any(parent.iterdir()):
                    break
                parent.rmdir()


def _resume_args(run_dir: Path) -> list[str]:
    """The command line that continues ``run_dir``: its overrides plus trainer.resume=<folder>."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("trainer.resume=")]
    return [*overrides, override("trainer.resume", str(run_dir))]


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.train") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        print(version_text())
        return 0
    try:
        existed, kept = ({}, None) if flags(argv) & INFO_FLAGS else precheck(argv)
    except GruExpError as exc:
        print(f"gru_exp.train: error: {exc}", file=sys.stderr)
        return 2
    outcome = _Outcome(existed, kept)
    try:
        run_hydra(outcome.task, "config", argv, prog)
    except KeyboardInterrupt:
        return 130
    finally:
        outcome.tidy()
    return 2 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
