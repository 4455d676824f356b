"""Max pooling over time on paddle's CPU: reduce-max backward against max_pool1d (same values).

    python benchmarks/max_pooling.py

Measured here (paddle 3.3.1 CPU, one thread, [64, 400, 128] float32, forward + backward, mean of 3,
the other core busy with a sweep): x.max(axis=1) 20.9 s, paddle.amax 22.4 s,
F.adaptive_max_pool1d 0.109 s, topk(1) 0.116 s. gru_exp's `model.pooling=max` uses max_pool1d.
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    import paddle
    import paddle.nn.functional as F

    paddle.set_device("cpu")
    paddle.set_num_threads(1) if hasattr(paddle, "set_num_threads") else None
    x0 = np.random.default_rng(0).standard_normal((64, 400, 128)).astype("float32")
    ways = {
        "x.max(axis=1)": lambda x: x.max(axis=1),
        "paddle.amax": lambda x: paddle.amax(x, axis=1),
        "F.adaptive_max_pool1d": lambda x: F.adaptive_max_pool1d(x.transpose([0, 2, 1]), 1).squeeze(-1),
        "topk(1)": lambda x: paddle.topk(x, 1, axis=1)[0].squeeze(1),
    }
    reference = None
    for name, pool in ways.items():
        x = paddle.to_tensor(x0, stop_gradient=False)
        start = time.perf_counter()
        for _ in range(3):
            pool(x).sum().backward()
        seconds = (time.perf_counter() - start) / 3
        values = pool(paddle.to_tensor(x0)).numpy()
        reference = values if reference is None else reference
        print(f"{name:24s} {seconds:8.3f} s per forward+backward; same values: {np.array_equal(values, reference)}")


if __name__ == "__main__":
    main()
