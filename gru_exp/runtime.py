"""The one place that chooses the device, the CPU thread count and the global seeds."""

from __future__ import annotations

import logging
import os
import random
import warnings

import numpy as np

from gru_exp.errors import ConfigError

log = logging.getLogger(__name__)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(num_threads: int) -> None:
    """Hold this process to ``num_threads`` CPU threads. Must run before paddle is imported to
    reach every thread pool; later calls still set paddle's own pool."""
    for var in _THREAD_VARS:
        os.environ[var] = str(num_threads)
    import sys

    if "paddle" in sys.modules:
        sys.modules["paddle"].base.core.set_num_threads(num_threads)


def import_paddle():
    """Import paddle without its harmless 'No ccache found' warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
    return paddle


def select_device(requested: str) -> str:
    """Resolve auto | cpu | gpu to a paddle device string and make it current."""
    paddle = import_paddle()
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if requested == "gpu" and not has_gpu:
        raise ConfigError(
            "trainer.device='gpu' but this paddle build has no usable CUDA GPU "
            f"(compiled with CUDA: {paddle.is_compiled_with_cuda()}); use trainer.device=cpu or auto."
        )
    device = "gpu:0" if requested == "gpu" or (requested == "auto" and has_gpu) else "cpu"
    paddle.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    """Seed paddle (init, dropout), numpy and random."""
    paddle = import_paddle()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)
