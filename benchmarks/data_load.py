"""Time IMDB loading: the first load (parse + cache write) and a cached load, in a fresh cache.

    python benchmarks/data_load.py [ARCHIVE]     # default: $GRU_EXP_IMDB

Measured here (2 cores, 2026-11-27, the 28 MB archive, cutoff 150):
    first load (parse + write cache) 4.71 s; cached loads 0.17 s and 0.07 s.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from gru_exp.data.imdb import load_imdb


def main() -> None:
    archive = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["GRU_EXP_IMDB"])
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as cache:
        for label in ("first load (parse + write cache)", "cached load", "cached load"):
            start = time.perf_counter()
            arrays = load_imdb(archive, 150, Path(cache))
            print(f"{label:34s} {time.perf_counter() - start:6.2f} s  ({len(arrays.words)} words)")


if __name__ == "__main__":
    main()
