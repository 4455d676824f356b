"""What the dashboard's extra records cost: one real-IMDB training run twice with the same seed,
with the extra VisualDL records off and on, and the size of each run's ``vdl/`` folder and its
seconds per epoch.

    export GRU_EXP_IMDB=/path/to/aclImdb_v1.tar.gz
    python benchmarks/vdl_records.py [--home DIR] [--cache DIR] [-- EXTRA TRAINING OVERRIDES]

"off" adds ``logger.roc_pr=false logger.text_samples=0 logger.embeddings=0 logger.histograms=false``
(only the curves, batch loss and hparams, as before issue 15); "on" keeps the defaults (ROC/PR
curves, 40 most confident mistakes as text, every word's embedding for the projector, weight and
gradient-norm histograms per epoch). Both run ``experiment=cpu_quick trainer.epochs=2`` plus any
extra overrides, one after the other (never at once), each in its own process, with the default
seed. Runs go to ``--home`` (``GRU_EXP_HOME`` of the two trainings; default: a new temporary
folder, kept and printed), never to the checkout's ``outputs/``. ``--cache`` points
``paths.cache_dir`` at an existing IMDB cache so the archive is not parsed again.

Per epoch: ``train_time_s + eval_time_s`` from the run's metrics.json series (the gradient norms
are sampled inside ``train_time_s``; the histograms are written after it, at the epoch's end). The
run's ``wall_time_s`` also holds what is written once, at the end (ROC/PR, text samples,
embeddings), and the test evaluation.

Measured here (2026-11-28; 2 x86 cores, paddle 3.3.1 CPU, one thread per training, VisualDL
2.5.3; ANOTHER TRAINING RAN ON THE OTHER CORE the whole time, so the times are noisy by a few
seconds per epoch), with 10,000 training reviews to keep each run under 5 minutes:

    GRU_EXP_IMDB=/work/shared/data/aclImdb_v1.tar.gz python benchmarks/vdl_records.py \
        --home /work/dashhome/bench2 --cache /work/dashhome/outputs/cache data.train_limit=10000

    records  vdl/ size                   files  epoch 1 s  epoch 2 s  mean s/epoch  wall s  best val  test acc
    off         2.6 KB (    2,699 B)         1       96.7       95.6          96.2   272.9    0.8572   0.84996
    on       2731.5 KB (2,797,007 B)         1       99.8       99.9          99.9   284.8    0.8572   0.84996
    on - off: +2728.8 KB, +3.7 s/epoch (+3.8%), +11.9 s wall

An earlier run of the same command (home /work/dashhome/bench) gave the same sizes and -2.6 s/epoch
(off 105.5 + 96.6 s, on 98.0 + 98.8 s; wall 283.7 vs 278.2 s), but a browser of mine ran during
its "off" first epoch, so the figures above are the ones to quote: the time cost is within the
noise of this machine, at most about 4 s per epoch. Same seed, same accuracies: the records
change nothing the model does. Of the 2.7 MB, about 2.63 MB is the projector's embedding matrix
(5,146 words x 128 float32; a trial with embedding 192 writes 1.32 MB more); see docs/dashboard.md,
"Records stay small".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BASE = ["experiment=cpu_quick", "trainer.epochs=2"]
OFF = ["logger.roc_pr=false", "logger.text_samples=0", "logger.embeddings=0", "logger.histograms=false"]
RUN_DIR = re.compile(r"this run's folder: (\S+)")


def folder_size(path: Path) -> tuple[int, int]:
    """Bytes and number of files under ``path`` (files only, symlinks not followed)."""
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def train(label: str, overrides: list[str], home: Path) -> dict:
    """One training in its own process; returns what its run folder holds."""
    command = [sys.executable, "-m", "gru_exp.train", *overrides]
    print(f"[{label}] GRU_EXP_HOME={home} {' '.join(command[1:])}", file=sys.stderr, flush=True)
    env = {**os.environ, "GRU_EXP_HOME": str(home)}
    proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (home / f"{label}.log").write_text(proc.stdout)
    match = RUN_DIR.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        sys.exit(f"[{label}] training failed (status {proc.returncode}); its log: {home / f'{label}.log'}")
    run_dir = Path(match.group(1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    size, files = folder_size(run_dir / "vdl")
    series = metrics["series"]
    epochs = [t + e for t, e in zip(series["train_time_s"], series["eval_time_s"])]
    return {"label": label, "run_dir": str(run_dir), "vdl_bytes": size, "vdl_files": files, "epoch_s": epochs,
            "wall_s": metrics["wall_time_s"], "best_val": metrics.get("best_eval_acc"),
            "test_acc": (metrics.get("test") or {}).get("acc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="GRU_EXP_HOME of the two trainings (default: a new temp folder)")
    parser.add_argument("--cache", type=Path, help="an existing IMDB cache folder (paths.cache_dir)")
    parser.add_argument("extra", nargs="*", help="more training overrides, e.g. data.train_limit=10000")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="vdl-records-"))
    home.mkdir(parents=True, exist_ok=True)
    common = BASE + ["logger.baseline=false"] + ([f"paths.cache_dir={args.cache}"] if args.cache else []) + args.extra
    runs = [train("off", common + OFF + ["name=records_off"], home),
            train("on", common + ["name=records_on"], home)]
    print(f"runs in {home}")
    print(f"{'records':8s} {'vdl/ size':>24s} {'files':>5s} " + " ".join(
        f"epoch {i + 1} s" for i in range(len(runs[0]["epoch_s"]))) + "  mean s/epoch  wall s  best val  test acc")
    for r in runs:
        mean = sum(r["epoch_s"]) / len(r["epoch_s"])
        print(f"{r['label']:8s} {r['vdl_bytes'] / 1024:9.1f} KB ({r['vdl_bytes']:>9,} B) {r['vdl_files']:5d} "
              + " ".join(f"{s:9.1f}" for s in r["epoch_s"])
              + f"  {mean:12.1f}  {r['wall_s']:6.1f}  {r['best_val']}  {r['test_acc']}")
    off, on = runs
    mean_off, mean_on = (sum(r["epoch_s"]) / len(r["epoch_s"]) for r in runs)
    print(f"on - off: {(on['vdl_bytes'] - off['vdl_bytes']) / 1024:+.1f} KB, {mean_on - mean_off:+.1f} s/epoch "
          f"({100 * (mean_on - mean_off) / mean_off:+.1f}%), {on['wall_s'] - off['wall_s']:+.1f} s wall")
    for r in runs:
        print(f"  {r['label']}: {r['run_dir']}")


if __name__ == "__main__":
    main()
