"""Sweeps on a Slurm cluster: the workers as one job array, submitted through submitit.

``python -m gru_exp.sweep launcher.name=slurm launcher.partition=debug n_workers=4`` checks the
sweep here, creates the study once, checks the study folder, then submits an array of
``n_workers`` tasks. Each task runs ``python -m gru_exp.sweep <the same overrides>
launcher.name=local n_workers=1`` in a child process: exactly the command a local worker runs
(:func:`gru_exp.sweep.worker.run_worker`: heartbeats, the ask lock, SIGTERM handling, summaries).
The storage URL reaches the tasks in the job's environment (GRU_EXP_STORAGE, set for sbatch), as
it reaches local workers: no task's command line, submitted script, pickle or log holds it. Each
submission's files (submitit's script and pickles, the tasks' logs) go into a new folder
``<study>/slurm/<time>_<hex>/<job>_<task>/``.
With ``launcher.wait=true`` this process then prints the study's progress lines, as local workers
do, until the array ends; ``launcher.wait=false`` returns once the array is queued.

What happens when a task stops early:

- ``scancel <job>_<task>``, preemption, or the whole array cancelled: Slurm sends SIGTERM to the
  task's processes; the worker marks its trial FAIL ("interrupted (SIGTERM)") and queues its
  configuration again, which another task (or the next run of the same command) picks up.
- SIGKILL, a node failure, out of memory: the trial stops sending heartbeats; after
  ``grace_period`` another task fails it and retries it (``max_retry``).
- The wall-time limit: Slurm sends USR2 ``signal_delay_s`` (90 s) before it; submitit calls
  :meth:`SweepTask.checkpoint`, which stops the worker as SIGTERM does and has submitit requeue the
  task (at most ``launcher.max_num_timeout`` times); the requeued task runs a fresh worker.

The study lives in the RDB server, so the same command resumes a study whose array ended or was
cancelled. SQLite and journal files are refused: tasks run on other machines.
"""

from gru_exp.sweep.slurm.launch import launch
from gru_exp.sweep.slurm.task import (
    SweepTask,  # where tasks pickled before the split look for it
)

__all__ = ["SweepTask", "launch"]
