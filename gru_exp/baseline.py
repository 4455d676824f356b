"""``python -m gru_exp.baseline [LOGDIR]``: write the notebook's reference run for VisualDL
(default ``paths.baseline_dir``); every training writes it too when it is missing."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gru_exp.config.compose import compose_config
from gru_exp.logs import setup_cli_logging
from gru_exp.notebook import NOTEBOOK_BEST_ACC, NOTEBOOK_FINAL_ACC
from gru_exp.train.visualdl import write_baseline

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None, prog: str = "python -m gru_exp.baseline") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                                     epilog=f"examples:\n  {prog}\n  {prog} outputs/baseline/notebook",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", nargs="?", help="where to write (default: paths.baseline_dir)")
    args = parser.parse_args(argv)
    setup_cli_logging()
    target = Path(args.logdir) if args.logdir else Path(compose_config([]).paths.baseline_dir)
    write_baseline(target)
    log.info("Wrote the notebook baseline (final %.2f%%, best %.2f%%) to %s", 100 * NOTEBOOK_FINAL_ACC,
             100 * NOTEBOOK_BEST_ACC, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
