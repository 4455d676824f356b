"""Submitting a sweep's workers as one Slurm job array through submitit (the executor from the
``launcher`` config, sbatch's refusals as one clear error), then following it to its end."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from gru_exp.errors import ConfigError
from gru_exp.redact import redact, url_password
from gru_exp.sweep.slurm.checks import check_study_folder, refuse_file_storage, refuse_slurm_patterns
from gru_exp.sweep.slurm.follow import follow
from gru_exp.sweep.slurm.task import STORAGE_ENV, SweepTask

log = logging.getLogger(__name__)


def _submission_folder(logs: Path) -> Path:
    """A new folder for this submission's files under the study's slurm/ folder (submitit's pickles,
    script and each task's folder ``<job>_<task>/``): made here, never one that exists, so neither
    another launcher's files nor an old job's folder (job ids restart on a reinstalled cluster) is
    ever written into or removed."""
    for _ in range(20):
        folder = logs / f"{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}"
        try:
            folder.mkdir(mode=0o700)
            return folder
        except FileExistsError:
            continue
    raise ConfigError(f"Cannot make a new submission folder under {logs}: 20 random names were taken.")


@contextlib.contextmanager
def _storage_for_the_job(url: str) -> Iterator[None]:
    """The storage URL in this process's environment while sbatch runs: sbatch hands its
    environment to the job (--export=ALL), so the tasks read it there (SweepTask), and no argv,
    script, pickle or log holds it."""
    old = os.environ.get(STORAGE_ENV)
    os.environ[STORAGE_ENV] = url
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(STORAGE_ENV, None)
        else:
            os.environ[STORAGE_ENV] = old


def _check_export(option: Any) -> None:
    """The tasks read the storage URL from the job's environment: refuse an sbatch --export
    (launcher.additional_parameters.export or $SBATCH_EXPORT) that would not pass it on."""
    for where, value in (("launcher.additional_parameters.export", option),
                         ("SBATCH_EXPORT", os.environ.get("SBATCH_EXPORT"))):
        if value is not None and not str(value).strip().upper().startswith("ALL"):
            raise ConfigError(
                f"launcher.name=slurm: {where}={value!r} would keep this environment from the tasks, but they read "
                f"the study's storage URL from it ({STORAGE_ENV}, set by the launcher for sbatch, so no command line "
                f"or file holds the password). Use ALL or ALL,<more variables>, or leave --export unset.")


def _executor(sc: DictConfig, logs: Path) -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError("launcher.name=slurm needs submitit: pip install -e .[slurm]") from None
    missing = [cmd for cmd in ("sbatch", "srun", "squeue") if shutil.which(cmd) is None]
    if missing:
        raise ConfigError(f"launcher.name=slurm needs Slurm's commands, but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not on PATH: run this on the cluster's login node.")
    lc = sc.launcher
    params: dict[str, Any] = {
        "name": f"gru_sweep_{sc.study_name}", "timeout_min": int(lc.timeout_min),
        "cpus_per_task": int(lc.cpus_per_task),
        "slurm_array_parallelism": int(lc.array_parallelism or sc.n_workers),
        "slurm_stderr_to_stdout": True,  # one log per task
    }
    optional = {"slurm_partition": lc.partition, "slurm_account": lc.account, "slurm_qos": lc.qos,
                "mem_gb": lc.mem_gb, "slurm_gpus_per_task": lc.gpus_per_task or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    extra = OmegaConf.to_container(lc.additional_parameters, resolve=True)
    if extra:
        params["slurm_additional_parameters"] = extra
    ex = submitit.AutoExecutor(folder=str(logs / "%j"), cluster="slurm", slurm_max_num_timeout=int(lc.max_num_timeout))
    try:
        ex.update_parameters(**params)
    except ValueError as exc:
        raise ConfigError(f"launcher: submitit refuses these parameters: {' '.join(str(exc).split())[:400]}") from None
    return ex


def _submit(ex: Any, task: SweepTask, n: int, folder: Path) -> list[Any]:
    """Submit the array; sbatch's refusal (bad partition, account, QOS, limits) is one ConfigError,
    and removes ``folder``, the new folder :func:`_submission_folder` made for this submission."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr; it is in the error
            return ex.map_array(task, list(range(n)))
    except (FailedJobError, FailedSubmissionError) as exc:
        shutil.rmtree(folder, ignore_errors=True)  # made by this command: only this submission's pickles, script
        hint = ("check launcher.partition, account, qos, timeout_min, mem_gb, cpus_per_task, gpus_per_task and "
                   "additional_parameters against `sinfo -s` and `sacctmgr show assoc user=$USER`")
        lines = [line.strip().removeprefix("sbatch: error: ") for line in str(exc).splitlines() if line.strip()]
        message = "; ".join(dict.fromkeys(lines)) or type(exc).__name__
        raise ConfigError(f"Slurm refused the job array (sbatch: {message}). Nothing was submitted and no trial "
                          f"started; {hint}, then run the same command again.") from None


def launch(sc: DictConfig, argv: Sequence[str]) -> int:
    """Submit the sweep's workers as a Slurm job array; with launcher.wait, follow it to its end."""
    from gru_exp.config.compose import compose_config
    from gru_exp.sweep.cost import log_cost, space_estimate
    from gru_exp.sweep.storage import claim_study_dir, open_study, storage_url, study_dir

    url = storage_url(sc)
    refuse_file_storage(url)
    refuse_slurm_patterns(study_dir(sc), str(sc.study_name))
    _check_export(sc.launcher.additional_parameters.get("export"))
    if any(a.lstrip("+").startswith("storage=") and url_password(a.split("=", 1)[1]) for a in argv):
        log.warning("storage= on this command line shows its password to every user of this machine (ps) while this "
                    "command runs (the tasks get it from the job's environment, never on their command line): prefer "
                    "%s with the password in PGPASSWORD or ~/.pgpass", STORAGE_ENV)
    study, _ = open_study(sc)  # schema and study created once, before the tasks race to do it
    out = claim_study_dir(sc, study)
    estimate = space_estimate(sc, compose_config(list(sc.base)))
    log_cost(sc, study, estimate)  # before anything is queued
    logs = _submission_folder(check_study_folder(out))
    try:
        ex = _executor(sc, logs)
    except ConfigError:
        logs.rmdir()  # the empty folder made just above
        raise
    submitted = time.monotonic()
    with _storage_for_the_job(url):
        jobs = _submit(ex, SweepTask(argv, int(sc.n_workers)), int(sc.n_workers), logs)
    array_id = jobs[0].job_id.split("_")[0]
    lc = sc.launcher
    where = jobs[0].paths.stdout if len(jobs) == 1 else f"{logs}/{array_id}_<task>/{array_id}_<task>_0_log.out"
    print(f"Submitted Slurm job {array_id}: {len(jobs)} task(s) of study {sc.study_name!r} (partition "
          f"{lc.partition or 'default'}, {lc.cpus_per_task} CPU{'s' if lc.cpus_per_task > 1 else ''}"
          f"{f', {lc.gpus_per_task} GPU(s)' if lc.gpus_per_task else ''} and {lc.timeout_min} min each). "
          f"Logs: {where}", file=sys.stderr if lc.wait else sys.stdout, flush=True)  # stdout: the result, one line
    log.info("Follow: squeue -j %s; stop: scancel %s (the study stays consistent; the same command resumes it)",
             array_id, array_id)
    log.info("Study %r in %s; run folders in %s (submitted in %.1f s)", sc.study_name, redact(storage_url(sc)), out,
             time.monotonic() - submitted)
    if not lc.wait:
        return 0
    try:
        return follow(sc, study, jobs, array_id, estimate)
    except KeyboardInterrupt:
        print(f"gru_exp.sweep: stopped following; Slurm job {array_id} keeps running (squeue -j {array_id}; "
              f"scancel {array_id} stops it, and the same command resumes the study)", file=sys.stderr)
        return 130
