"""Which GPU each local worker of a sweep trains on: workers are spread round robin over the GPUs
(``gpus=0,1,...``, or every GPU this process sees), one ``CUDA_VISIBLE_DEVICES`` per worker, so
each worker's ``trainer.device=auto`` (``gpu:0`` inside it) is a different card; more workers than
GPUs share them in turn. On Slurm the scheduler gives each task its GPU (``launcher.gpus_per_task``)."""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

from gru_exp.errors import ConfigError

log = logging.getLogger(__name__)


def visible_gpus(requested: Optional[Sequence[object]]) -> list[str]:
    """The GPU ids to spread workers over: ``requested`` (a list of ids), else the ones this process
    sees (its ``CUDA_VISIBLE_DEVICES``, or paddle's device count); none on a CPU machine."""
    import paddle  # imported already by the sweep before it starts workers

    if requested is not None:
        ids = [str(g).strip() for g in requested]
        if not ids or "" in ids or len(set(ids)) != len(ids):
            raise ConfigError(f"gpus={list(requested)!r} must name each GPU once (e.g. gpus=[0,1]), or be null to use "
                              "every GPU this machine shows.")
        if not paddle.is_compiled_with_cuda():
            log.warning("gpus=%s, but this paddle build has no CUDA: each worker is given its GPU id and trains on "
                        "the CPU", ids)
        return ids
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shown is not None:
        return [g.strip() for g in shown.split(",") if g.strip() and g.strip() != "-1"]
    count = paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0
    return [str(i) for i in range(count)]


def worker_env(worker: int, gpus: list[str]) -> dict[str, str]:
    """The environment a worker adds: its GPU, round robin (nothing on a CPU machine)."""
    return {"CUDA_VISIBLE_DEVICES": gpus[worker % len(gpus)]} if gpus else {}
