"""The one place that chooses the device, the CPU thread count and the global seeds."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import random
import sys
from typing import TYPE_CHECKING

import numpy as np

from gru_exp.config.choices import Device
from gru_exp.errors import ConfigError

if TYPE_CHECKING:
    from gru_exp.config.knobs import TrainerConfig

log = logging.getLogger(__name__)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(num_threads: int) -> None:
    """Hold this process to ``num_threads`` CPU threads. Must run before paddle is imported to
    reach every thread pool; later calls still set paddle's own pool."""
    for var in _THREAD_VARS:
        os.environ[var] = str(num_threads)
    if "paddle" in sys.modules:
        sys.modules["paddle"].base.core.set_num_threads(num_threads)


def flush_denormals() -> bool:
    """Set flush-to-zero and denormals-are-zero (x86 MXCSR) for this thread and the threads it
    starts later. Paddle's CPU GRU backward runs up to 10x slower when gradients decay into
    denormal floats (measured: 2.5 s vs 0.23 s per step, benchmarks/denormals.py); flushing them
    to zero changes values below 1.2e-38 only. Returns False where unsupported (non-x86, no glibc)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    name = ctypes.util.find_library("m")
    if not name:
        return False
    libm = ctypes.CDLL(name)
    env = (ctypes.c_uint32 * 8)()  # glibc x86_64 fenv_t: 28 bytes of x87 state, then MXCSR
    if libm.fegetenv(env) != 0:
        return False
    env[7] |= 0x8040  # MXCSR bit 15 = flush to zero, bit 6 = denormals are zero
    return libm.fesetenv(env) == 0


def import_paddle():
    """Import paddle; a missing paddle is a one-paragraph error naming the two builds (its
    'No ccache found' import warning is filtered in gru_exp/__init__.py)."""
    try:
        import paddle
    except ImportError as exc:
        raise ConfigError(
            f"PaddlePaddle is not installed in this Python ({sys.executable}): {exc}. gru-exp runs on "
            "either build; install one: `pip install 'gru-exp[cpu]'` (or `pip install paddlepaddle`) for the "
            "CPU build, or paddlepaddle-gpu from Paddle's package index for a CUDA GPU "
            "(https://www.paddlepaddle.org.cn/install).") from None
    return paddle


def select_device(requested: Device) -> str:
    """Resolve auto | cpu | gpu to a paddle device string and make it current."""
    paddle = import_paddle()
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if requested == Device.gpu and not has_gpu:
        raise ConfigError(
            "trainer.device='gpu' but this paddle build has no usable CUDA GPU "
            f"(compiled with CUDA: {paddle.is_compiled_with_cuda()}); use trainer.device=cpu or auto."
        )
    device = "gpu:0" if requested == Device.gpu or (requested == Device.auto and has_gpu) else "cpu"
    paddle.set_device(device)
    return device


def prepare(trainer: TrainerConfig) -> str:
    """Threads, device and CPU float mode for a run, as ``trainer`` (the config's trainer) says;
    returns the paddle device string. The one place a run's device is chosen."""
    limit_threads(trainer.num_threads)
    device = select_device(Device(trainer.device))
    if device == "cpu" and trainer.flush_denormals and not flush_denormals():
        log.warning("trainer.flush_denormals=true is not supported on this CPU/libc; training may be slower")
    if trainer.amp and not device.startswith("gpu"):
        raise ConfigError(f"trainer.amp=true needs a GPU, but trainer.device={trainer.device!r} resolved to {device}.")
    return device


def seed_everything(seed: int) -> None:
    """Seed paddle (init, dropout), numpy and random."""
    paddle = import_paddle()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable from /proc/meminfo (Linux), else the
    physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
