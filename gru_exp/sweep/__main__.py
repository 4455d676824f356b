"""``python -m gru_exp.sweep [sweep=<name>] [key=value ...]``: an Optuna study over training configs.

A thin shell: composes the sweep config (sweeps/<name>.yaml + overrides), rejects a malformed one
before any trial, then runs one worker here or ``n_workers`` worker processes that share the
study's storage. Re-running the same command resumes the study.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
from typing import Optional, Sequence

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from gru_exp.commands import INFO_FLAGS, flags, run_hydra, version_text
from gru_exp.config.compose import compose_config, composition_error, unresolved
from gru_exp.config.sources import conf_snapshot
from gru_exp.config.paths import path_problems
from gru_exp.config.sweep import SweepConfig, normalise_objectives
from gru_exp.errors import GruExpError
from gru_exp.logs import setup_cli_logging
from gru_exp.redact import redact

log = logging.getLogger(__name__)
USAGE = "usage: gru-exp sweep [sweep=<search space>] [n_trials=N] [n_workers=N] [storage=URL] [key=value ...] (--help)"


def _spawn_workers(argv: Sequence[str], n: int, storage: Optional[str], gpus: Sequence[str] = ()) -> int:
    """Start ``n`` copies of this command as single workers (spread over ``gpus``, round robin);
    forward SIGINT/SIGTERM; wait for all. The storage URL travels in the workers' environment, not
    their argv (which any local user can read in ``ps``)."""
    cmd = [sys.executable, "-m", "gru_exp.sweep",
           *(a for a in argv if not a.startswith(("n_workers=", "storage=", "gpus="))), "n_workers=1"]
    from gru_exp.sweep.cost import WORKERS_ENV
    from gru_exp.sweep.gpus import worker_env

    env = dict(os.environ)
    env[WORKERS_ENV] = str(n)  # they log the cost as it goes, for n workers; this process logged it first
    if storage:
        env["GRU_EXP_STORAGE"] = storage
        cmd.append("storage=${oc.env:GRU_EXP_STORAGE}")  # the same precedence as the parent's storage
    # The workers take SIGINT/SIGTERM from this process (forwarded), whatever the shell left them.
    procs: list[subprocess.Popen] = []
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    # Forwarding is in place before any worker starts (and before "Started" is logged): a signal
    # that arrives in between reaches the workers instead of killing this process alone.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    procs.extend(subprocess.Popen(cmd, env={**env, **worker_env(i, list(gpus))}, preexec_fn=_default_signals)
                 for i in range(n))
    log.info("Started %d workers: %s%s", n, " ".join(cmd), "".join(
        f"; worker {i} on GPU {worker_env(i, list(gpus))['CUDA_VISIBLE_DEVICES']}" for i in range(n) if gpus))
    if received:  # it came while the workers were being started: the later ones get it too
        forward(received[-1], None)
    codes = [p.wait() for p in procs]
    for i, code in enumerate(codes):
        if code < 0:
            log.warning("Worker %d was killed by signal %d; its trial is retried when any worker runs again",
                        i, -code)
    return combined_exit(codes)


def combined_exit(codes: Sequence[int]) -> int:
    """The sweep's exit status from its workers': 0 when all succeeded, 130 when one was
    interrupted, 2 when the others failed with a clear refusal (each printed why: the data
    changed, a full disk), else 1."""
    if not any(codes):
        return 0
    if any(code in (130, -signal.SIGINT, -signal.SIGTERM) for code in codes):
        return 130
    return 2 if all(code in (0, 2) for code in codes) else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _default_signals() -> None:
    """In a worker before it runs: default signal actions, and SIGTERM when this parent dies (even by
    SIGKILL), so no worker trains on unobserved (Linux; elsewhere the workers outlive it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_sweep(sc: DictConfig, argv: Sequence[str]) -> int:
    """The study this composed sweep config asks for: checked, then run here or by workers."""
    setup_cli_logging()
    signal.signal(signal.SIGTERM, _interrupt)  # while paddle loads too; the worker sets its own after
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when a script started it with &
    try:
        # Imported here, in this order: paddle sizes its thread pools once, when first imported.
        from gru_exp.sweep.space import check_sweep
        from gru_exp.sweep.urls import check_persistent, check_storage_url, storage_url
        from gru_exp.train import device

        normalise_objectives(sc)  # a one-item objectives: list is the single objective, everywhere after
        check_sweep(sc, compose_config)
        check_storage_url(storage_url(sc))  # before anything is written (the conf snapshot, the study)
        check_persistent(storage_url(sc))
        if sc.launcher.name == "slurm":  # the workers as a Slurm job array; each task runs this command locally
            import gru_exp.sweep.worker  # noqa: F401 (following reads progress through it: paddle loads now, not later)
            from gru_exp.sweep.slurm import launch

            signal.signal(signal.SIGTERM, _interrupt)  # again: paddle's import installs its own handler
            signal.signal(signal.SIGINT, signal.default_int_handler)
            return launch(sc, argv)
        base = compose_config(list(sc.base))
        device.limit_threads(int(base.trainer.num_threads))  # before paddle loads
        device.import_paddle()
        from gru_exp.sweep.cost import log_cost, space_estimate
        from gru_exp.sweep.gpus import visible_gpus
        from gru_exp.sweep.storage import open_study, study_dir
        from gru_exp.sweep.summary import print_result
        from gru_exp.sweep.worker import run_worker

        if sc.n_workers > 1:
            gpus = visible_gpus(sc.gpus)  # a bad gpus= is refused before the study is touched
            study, _ = open_study(sc)  # create the schema and study once, before workers race to do it
            log_cost(sc, study, space_estimate(sc, base))
            code = _spawn_workers(argv, sc.n_workers, sc.storage, gpus)
            if code != 130:
                print_result(study, study_dir(sc))
            return code

        log.info("Study %r in %s; run folders in %s", sc.study_name, redact(storage_url(sc)), study_dir(sc))
        outputs = [str(v) for k, v in sc.paths.items() if k != "root_dir"]  # never copied: runs, cache, studies
        conf_dirs = conf_snapshot(sc.paths.cache_dir, outputs)  # trials compose from the configs as they are now
        ran = run_worker(sc, functools.partial(compose_config, config_dirs=conf_dirs))
    except GruExpError as exc:
        print(f"gru_exp.sweep: error: {exc}", file=sys.stderr)
        return 2
    except OmegaConfBaseException as exc:  # a value that cannot resolve, e.g. storage=${oc.env:UNSET}
        print(f"gru_exp.sweep: error: {redact(unresolved(exc))}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gru_exp.sweep: interrupted; the study is consistent, run the same command to resume", file=sys.stderr)
        return 130
    log.info("Worker done: %d trials run here (%d failed). Summary: %s", ran["trials"], ran["failed"],
             study_dir(sc) / "summary.md")
    from gru_exp.sweep.cost import WORKERS_ENV
    from gru_exp.sweep.summary import print_result

    if not os.environ.get(WORKERS_ENV):  # one of several workers: the command that started them prints it, once
        print_result(ran["study"], study_dir(sc))
    if ran["stopped"]:
        print(f"gru_exp.sweep: stopped early: {ran['stopped']}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.sweep") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        print(version_text())
        return 0
    if {"-m", "--multirun"} & set(argv):
        print("gru_exp.sweep: error: -m/--multirun: a sweep is one study; Optuna chooses its trials (for a grid "
              f"of fixed values use sampler.name=grid, or gru-exp train -m).\n{USAGE}", file=sys.stderr)
        return 2
    if not flags(argv) & INFO_FLAGS:
        try:  # a typo'd key, a wrong type or a bad choice: one paragraph, before Hydra prints its own
            sc = compose_config(argv, config_name="sweep")
        except Exception as exc:
            print(f"{prog}: error: {composition_error(exc, SweepConfig)}\n{USAGE}", file=sys.stderr)
            return 2
        bad_paths = path_problems(sc)
        if bad_paths:
            print(f"{prog}: error: Invalid configuration: {'; '.join(bad_paths)}.", file=sys.stderr)
            return 2
    status: list[int] = []
    run_hydra(lambda sc: status.append(run_sweep(sc, argv)), "sweep", argv, prog)
    return status[0] if status else 0


if __name__ == "__main__":
    sys.exit(main())
