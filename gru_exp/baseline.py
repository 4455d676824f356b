"""``python -m gru_exp.baseline [LOGDIR]``: write the notebook's reference run for VisualDL
(default ``paths.baseline_dir``); every training writes it too when it is missing."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from gru_exp.config.compose import compose_config
from gru_exp.config.paths import path_problems
from gru_exp.errors import ConfigError, GruExpError
from gru_exp.logs import setup_cli_logging
from gru_exp.notebook import NOTEBOOK_BEST_ACC, NOTEBOOK_FINAL_ACC
from gru_exp.train.vdl_view import write_baseline

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None, prog: str = "python -m gru_exp.baseline") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                                     epilog=f"examples:\n  {prog}\n  {prog} outputs/baseline/notebook",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", nargs="?", help="where to write (default: paths.baseline_dir)")
    args = parser.parse_args(argv)
    setup_cli_logging()
    try:
        if args.logdir:
            target = Path(args.logdir)
            problems = path_problems(OmegaConf.create({"paths": {"baseline_dir": args.logdir}}))
        else:
            cfg = compose_config([])
            target, problems = Path(cfg.paths.baseline_dir), path_problems(cfg)
        if problems:
            raise ConfigError("; ".join(problems) + ".")
        write_baseline(target)
    except GruExpError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: cannot write the baseline to {exc.filename or target}: {exc.strerror or exc}.",
              file=sys.stderr)
        return 2
    log.info("Wrote the notebook baseline (final %.2f%%, best %.2f%%) to %s", 100 * NOTEBOOK_FINAL_ACC,
             100 * NOTEBOOK_BEST_ACC, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
