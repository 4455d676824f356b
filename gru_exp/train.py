"""``python -m gru_exp.train [overrides]``: one training (or a grid with ``-m``) from Hydra configs.

A thin shell over :func:`gru_exp.pipeline.run_training`. User errors print one paragraph and
exit with status 2; the run folder of a rejected job is removed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gru_exp.config import CONF_DIR, register_configs

log = logging.getLogger(__name__)
_failures: list[str] = []


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _task(cfg: DictConfig) -> Optional[float]:
    from gru_exp import runtime
    from gru_exp.cli import discard_unstarted_run
    from gru_exp.errors import GruExpError

    runtime.limit_threads(cfg.trainer.num_threads)  # before paddle is imported
    from gru_exp.pipeline import run_training
    from gru_exp.training import NonFiniteLossError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = run_training(cfg, run_dir)
    except (GruExpError, NonFiniteLossError) as exc:
        log.error("%s", exc)
        print(f"gru_exp.train: error: {exc}", file=sys.stderr)
        discard_unstarted_run(run_dir, stop_at=Path(cfg.paths.output_dir))
        _failures.append(str(exc))
        return None
    log.info("Run folder: %s (status %s, best eval acc %.4f)", run_dir, result.status, result.best_eval_acc)
    return result.best_eval_acc  # Hydra's objective: the best eval accuracy


def main() -> None:
    register_configs()
    _task()
    if _failures:
        sys.exit(2)


if __name__ == "__main__":
    main()
