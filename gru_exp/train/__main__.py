"""``python -m gru_exp.train [overrides]``: one training (or a grid with ``-m``) from Hydra configs.

A thin shell over :func:`gru_exp.train.run.run_training`: every job is checked before anything is
written (:mod:`gru_exp.train.precheck`), then Hydra runs them (its launchers, ``--cfg``,
``--info``, folder names). Hydra writes nothing into a run folder (``hydra.output_subdir`` is
null, and logging is gru-exp's): the run writes its log, its ``.hydra/`` config records and its
results only once its own last checks passed, so a job refused then leaves at most the empty
folder Hydra made for it, which goes. User errors print one paragraph and exit with status 2.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gru_exp.commands import INFO_FLAGS, flags, run_hydra, version_text
from gru_exp.config.values import override
from gru_exp.errors import GruExpError
from gru_exp.logs import setup_cli_logging
from gru_exp.train import device
from gru_exp.train.precheck import Plan, precheck
from gru_exp.train.rundir import LAST_CKPT, remove_new_empty

log = logging.getLogger(__name__)


class _Jobs:
    """The task Hydra runs for each job, and what the jobs came to (Hydra's launcher runs them in
    this process and keeps their return values to itself): failures, and the multirun folder."""

    def __init__(self, plan: Optional[Plan] = None) -> None:
        self.plan = plan
        self.failures: list[str] = []
        self.sweep_dir: Optional[Path] = None
        self.pid = os.getpid()

    def task(self, cfg: DictConfig) -> Optional[float]:
        """One job: the library's training on the composed config."""
        if os.getpid() != self.pid:  # a launcher's own process (joblib, submitit)
            _ready(cfg.trainer.num_threads)
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if hydra_cfg.mode.name == "MULTIRUN":
            self.sweep_dir = Path(hydra_cfg.sweep.dir)
        from gru_exp.train.callbacks import ConfigRecords  # paddle: imported by _ready
        from gru_exp.train.run import run_training

        try:
            log.info("Outputs go to %s; this run's folder: %s", cfg.paths.output_dir, run_dir)
            record = run_training(cfg, run_dir, callbacks=[ConfigRecords(cfg, hydra_cfg)])
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the record says "interrupted", the checkpoint stays
            if (run_dir / LAST_CKPT).is_file():
                print(f"gru_exp.train: interrupted; the run folder keeps its last finished epoch. Continue it "
                      f"with:\n  python -m gru_exp.train {' '.join(_resume_args(run_dir))}", file=sys.stderr)
            else:
                print("gru_exp.train: interrupted before the first epoch ended; nothing to continue, start it "
                      "again.", file=sys.stderr)
            self._drop_if_new(run_dir)
            raise
        except GruExpError as exc:  # a user error, or a NaN loss (NonFiniteLossError)
            log.error("%s", exc)
            print(f"gru_exp.train: error: {exc}", file=sys.stderr)
            self._drop_if_new(run_dir)
            if os.getpid() != self.pid:  # a launcher running jobs in other processes: fail the job visibly
                raise
            self.failures.append(str(exc))
            return None
        log.info("Run folder: %s (status %s, best eval acc %.4f)", run_dir, record.status,
                 record.best_eval_acc or 0.0)
        print(os.path.abspath(run_dir), flush=True)  # stdout carries the result, one line per run; logs go to stderr
        return record.best_eval_acc  # Hydra's objective: the best eval accuracy

    def _drop_if_new(self, run_dir: Path) -> None:
        """A job that wrote nothing leaves no folder: the empty one Hydra made for it goes, unless it
        was there before this command."""
        if self.plan is not None:  # what existed before this command is known: the folders it made go
            remove_new_empty(run_dir, frozenset(self.plan.existing))

    def tidy(self) -> None:
        """A multirun whose every job was refused leaves no folder holding only multirun.yaml."""
        folder = self.sweep_dir
        if folder is None or not folder.is_dir() or {p.name for p in folder.iterdir()} != {"multirun.yaml"}:
            return
        (folder / "multirun.yaml").unlink()  # Hydra wrote it for this command (the folder was new or empty)
        if self.plan is not None and self.plan.multirun_dir_existed:
            return
        if self.plan is not None:
            remove_new_empty(folder, frozenset(self.plan.existing))


def _resume_args(run_dir: Path) -> list[str]:
    """The command line that continues ``run_dir`` in place, with its recorded configuration."""
    return [shlex.quote(override("trainer.resume", str(run_dir)))]  # pastes into a shell as it is


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _ready(num_threads: int) -> None:
    """A process about to train: logging to stderr, paddle's threads held to ``num_threads`` (before
    paddle is imported: it sizes its pools once), paddle imported, then SIGTERM and Ctrl-C (even when
    started with & by a script) stop the run as KeyboardInterrupt (after paddle's import, which
    installs a handler of its own)."""
    if not logging.getLogger().handlers:
        setup_cli_logging()
    device.limit_threads(num_threads)
    device.import_paddle()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.train") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        print(version_text())
        return 0
    if flags(argv) & INFO_FLAGS:  # --help, --cfg, --info, completion: Hydra prints, nothing runs
        run_hydra(_Jobs().task, "config", argv, prog)
        return 0
    setup_cli_logging()
    try:
        plan = precheck(argv)
        _ready(plan.jobs[0].task.trainer.num_threads)
    except GruExpError as exc:
        print(f"gru_exp.train: error: {exc}", file=sys.stderr)
        return 2
    jobs = _Jobs(plan)
    try:
        run_hydra(jobs.task, "config", plan.argv, prog)
    except KeyboardInterrupt:
        return 130
    finally:
        jobs.tidy()
    return 2 if jobs.failures else 0


if __name__ == "__main__":
    sys.exit(main())
