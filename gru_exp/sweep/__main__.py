"""``python -m gru_exp.sweep [sweep=<name>] [key=value ...]``: an Optuna study over training configs.

A thin shell: composes the sweep config (sweeps/<name>.yaml + overrides), rejects a malformed one
before any trial, then runs one worker here or ``n_workers`` worker processes that share the
study's storage. Re-running the same command resumes the study.
"""

from __future__ import annotations

import functools
import logging
import signal
import subprocess
import sys
from typing import Optional, Sequence

from gru_exp.config.compose import compose_config, composition_error, conf_snapshot
from gru_exp.errors import GruExpError
from gru_exp.logs import setup_cli_logging
from gru_exp.redact import redact, redact_all

log = logging.getLogger(__name__)
USAGE = "usage: python -m gru_exp.sweep [sweep=<name in sweeps/>] [n_trials=N] [n_workers=N] [storage=URL] [key=value ...]"


def _spawn_workers(argv: Sequence[str], n: int) -> int:
    """Start ``n`` copies of this command as single workers; forward SIGINT/SIGTERM; wait for all."""
    cmd = [sys.executable, "-m", "gru_exp.sweep", *(a for a in argv if not a.startswith("n_workers=")), "n_workers=1"]
    procs = [subprocess.Popen(cmd) for _ in range(n)]
    log.info("Started %d workers: %s", n, " ".join(redact_all(cmd)))

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [p.wait() for p in procs]
    for i, code in enumerate(codes):
        if code < 0:
            log.warning("Worker %d was killed by signal %d; its trial is retried when any worker runs again",
                        i, -code)
    return 0 if not any(codes) else 130 if 130 in codes else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE + "\n\n" + (__doc__ or ""))
        return 0
    setup_cli_logging()
    try:
        sc = compose_config(argv, config_name="sweep")
    except Exception as exc:  # a typo'd key, a wrong type or a bad choice: one paragraph
        print(f"gru_exp.sweep: error: {composition_error(exc)}\n{USAGE}", file=sys.stderr)
        return 2
    try:
        # Imported here, in this order: paddle sizes its thread pools once, when first imported.
        from gru_exp.sweep.space import check_sweep
        from gru_exp.train import device

        check_sweep(sc, compose_config)
        if sc.launcher.name == "slurm":  # the workers as a Slurm job array; each task runs this command locally
            from gru_exp.sweep.slurm import launch

            return launch(sc, argv)
        device.limit_threads(int(compose_config(list(sc.base)).trainer.num_threads))  # before paddle loads
        device.import_paddle()
        from gru_exp.sweep.storage import open_study, storage_url, study_dir
        from gru_exp.sweep.worker import run_worker

        if sc.n_workers > 1:
            open_study(sc)  # create the schema and study once, before workers race to do it
            return _spawn_workers(argv, sc.n_workers)

        log.info("Study %r in %s; run folders in %s", sc.study_name, redact(storage_url(sc)), study_dir(sc))
        with conf_snapshot() as conf_dir:  # trials compose from conf/ as it was when this worker started
            ran = run_worker(sc, functools.partial(compose_config, config_dir=conf_dir))
    except GruExpError as exc:
        print(f"gru_exp.sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gru_exp.sweep: interrupted; the study is consistent, run the same command to resume", file=sys.stderr)
        return 130
    log.info("Worker done: %d trials run here (%d failed). Summary: %s", ran["trials"], ran["failed"],
             study_dir(sc) / "summary.md")
    if ran["stopped"]:
        print(f"gru_exp.sweep: stopped early: {ran['stopped']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
