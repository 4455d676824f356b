"""``python -m gru_exp.train [overrides]``: one training (or a grid with ``-m``) from Hydra configs.

A thin shell over :func:`gru_exp.train.run.run_training`. User errors print one paragraph and
exit with status 2; the run folder of a rejected job is removed.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gru_exp.config.compose import CONF_DIR, check_overrides, register_configs
from gru_exp.config.values import override
from gru_exp.errors import GruExpError
from gru_exp.train import device
from gru_exp.train.record import discard_unstarted_run

log = logging.getLogger(__name__)
_failures: list[str] = []


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _task(cfg: DictConfig) -> Optional[float]:
    device.limit_threads(cfg.trainer.num_threads)  # before paddle is imported: it sizes its pools once
    from gru_exp.train.loop import NonFiniteLossError
    from gru_exp.train.run import run_training

    signal.signal(signal.SIGTERM, _terminate)  # after paddle's import, which installs its own handler

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        record = run_training(cfg, run_dir)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the record says "interrupted", the checkpoint stays
        print(f"gru_exp.train: interrupted; the run folder keeps its last finished epoch. Continue it with:\n"
              f"  python -m gru_exp.train {' '.join(_resume_args(run_dir))}", file=sys.stderr)
        discard_unstarted_run(run_dir, stop_at=Path(cfg.paths.output_dir))
        raise
    except (GruExpError, NonFiniteLossError) as exc:
        log.error("%s", exc)
        print(f"gru_exp.train: error: {exc}", file=sys.stderr)
        discard_unstarted_run(run_dir, stop_at=Path(cfg.paths.output_dir))
        _failures.append(str(exc))
        return None
    log.info("Run folder: %s (status %s, best eval acc %.4f)", run_dir, record.status, record.best_eval_acc or 0.0)
    return record.best_eval_acc  # Hydra's objective: the best eval accuracy


HYDRA_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc",
               "--resolve", "-p", "--package", "--version", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--experimental-rerun")


def _resume_args(run_dir: Path) -> list[str]:
    """The command line that continues ``run_dir``: its overrides plus trainer.resume=<folder>."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("trainer.resume=")]
    return [*overrides, override("trainer.resume", str(run_dir))]


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    register_configs()
    argv = sys.argv[1:]
    if not any(a.split("=", 1)[0] in HYDRA_FLAGS for a in argv):
        # Every job composed and validated before Hydra makes a folder: a bad value is one
        # paragraph and status 2, for a single run and for each job of a multirun alike.
        try:
            check_overrides([a for a in argv if not a.startswith("-")], multirun=bool({"-m", "--multirun"} & set(argv)))
        except GruExpError as exc:
            print(f"gru_exp.train: error: {exc}", file=sys.stderr)
            sys.exit(2)
    try:
        _task()
    except KeyboardInterrupt:
        sys.exit(130)
    if _failures:
        sys.exit(2)


if __name__ == "__main__":
    main()
