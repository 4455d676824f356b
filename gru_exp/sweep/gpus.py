"""Which GPU each local worker of a sweep trains on: workers are spread round robin over the GPUs
(``gpus=0,1,...``, or every GPU this process sees), one ``CUDA_VISIBLE_DEVICES`` per worker, so
each worker's ``trainer.device=auto`` (``gpu:0`` inside it) is a different card; more workers than
GPUs share them in turn. On Slurm the scheduler gives each task its GPU (``launcher.gpus_per_task``)."""

from __future__ import annotations

import logging
import os
from typing import Optional

from gru_exp.errors import ConfigError

log = logging.getLogger(__name__)


def visible_gpus(requested: Optional[str]) -> list[str]:
    """The GPU ids to spread workers over: ``requested`` (comma-separated ids), else the ones this
    process sees (its ``CUDA_VISIBLE_DEVICES``, or paddle's device count); none on a CPU machine."""
    if requested is not None:
        ids = [g.strip() for g in str(requested).split(",") if g.strip()]
        if not ids or len(set(ids)) != len(ids):
            raise ConfigError(f"gpus={requested!r} must name each GPU once, comma-separated (e.g. gpus=0,1), or be "
                              "null to use every GPU this machine shows.")
        return ids
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shown is not None:
        return [g.strip() for g in shown.split(",") if g.strip() and g.strip() != "-1"]
    import paddle  # imported already by the sweep before it starts workers

    count = paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0
    return [str(i) for i in range(count)]


def worker_env(worker: int, gpus: list[str]) -> dict[str, str]:
    """The environment a worker adds: its GPU, round robin (nothing on a CPU machine)."""
    return {"CUDA_VISIBLE_DEVICES": gpus[worker % len(gpus)]} if gpus else {}
