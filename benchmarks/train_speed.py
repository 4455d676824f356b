"""Training speed: the notebook's own approach (A) against gru_exp's trainer (B), same model.

    python benchmarks/train_speed.py                 # real IMDB from $GRU_EXP_IMDB, else generated data
    python benchmarks/train_speed.py --steps 5 --rounds 2 --configs notebook,cpu_quick --seq-lens 200,400

A is the notebook's code path: reviews padded/truncated at the end to seq_len, a
paddle.io.DataLoader (batch 64, shuffle, drop_last), paddle.Model.prepare/fit with Adam(1e-3),
CrossEntropyLoss and Accuracy, and the full test set (24,960 reviews) evaluated every epoch.
B is ``gru_exp.train.run.run_training`` with the project's defaults (true lengths, length
bucketing, flush-to-zero, one thread, validation split of 2,500 evaluated every epoch).

Each measurement runs in a fresh process: ``--warmup`` steps, then ``--steps`` timed training
steps, then an evaluation timed on ``--eval-samples`` reviews; measurements are interleaved
A B A B so machine drift cancels. It prints training samples/s, the epoch wall time these give
(train steps of a full epoch + that epoch's evaluation), peak RSS, and the B/A ratios.
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {  # the notebook's model, and experiment=cpu_quick's
    "notebook": dict(embedding_size=256, hidden_size=256, num_layers=2, direction="bidirectional"),
    "cpu_quick": dict(embedding_size=128, hidden_size=128, num_layers=1, direction="bidirectional"),
}
BATCH = 64
NOTEBOOK_TRAIN, NOTEBOOK_EVAL = 25000, 24960  # the notebook trains on all 25,000, evaluates 24,960
GRU_EXP_TRAIN, GRU_EXP_EVAL = 22500, 2500  # gru_exp: 2,500 held out for validation


def _archive(tmp: Path) -> Path:
    real = os.environ.get("GRU_EXP_IMDB")
    if real and Path(real).is_file():
        return Path(real)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' archive maker
    from synthetic_imdb import make_imdb_archive

    return make_imdb_archive(tmp / "aclImdb_v1.tar.gz", n_per_class=2000, mean_len=230)


def child_notebook(model: str, seq_len: int, warmup: int, steps: int, eval_samples: int, archive: Path,
                   cache: Path) -> dict:
    """The notebook's approach: padded arrays, DataLoader, paddle.Model.fit / evaluate."""
    from gru_exp.train import device as runtime

    runtime.limit_threads(1)
    paddle = runtime.import_paddle()
    import numpy as np

    from gru_exp.data.splits import padded
    from gru_exp.data.imdb import load_imdb
    from gru_exp.config.knobs import ModelConfig
    from gru_exp.train.model import GRUClassifier

    arrays = load_imdb(archive, 150, cache)
    train, test = padded(arrays, "train", seq_len), padded(arrays, "test", seq_len)
    rng = np.random.default_rng(0)

    class Reviews(paddle.io.Dataset):
        def __init__(self, split, n):
            self.index = rng.permutation(len(split))[:n]
            self.split = split

        def __getitem__(self, i):
            j = self.index[i]
            return self.split.ids[j], self.split.labels[j : j + 1]

        def __len__(self):
            return len(self.index)

    class NotebookNet(paddle.nn.Layer):  # the notebook's network (GRU reads the padding)
        def __init__(self):
            super().__init__()
            self.net = GRUClassifier(arrays.vocab_size, ModelConfig(dropout=0.5, **MODELS[model]))

        def forward(self, ids):
            return self.net(ids)

    paddle.seed(0)
    net = paddle.Model(NotebookNet())
    net.prepare(paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters()),
                paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy())
    times: list[float] = []

    class Timer(paddle.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            times.append(time.perf_counter())

    start = time.perf_counter()
    net.fit(Reviews(train, (warmup + steps) * BATCH), epochs=1, batch_size=BATCH, shuffle=True, drop_last=True,
            verbose=0, callbacks=[Timer()])
    step_s = (times[-1] - times[warmup - 1]) / steps if warmup else (times[-1] - start) / steps
    t = time.perf_counter()
    net.evaluate(Reviews(test, eval_samples), batch_size=BATCH, verbose=0)
    eval_per_sample = (time.perf_counter() - t) / eval_samples
    return {"step_s": step_s, "eval_s": eval_per_sample * NOTEBOOK_EVAL, "steps_per_epoch": NOTEBOOK_TRAIN // BATCH}


def child_gru_exp(model: str, seq_len: int, warmup: int, steps: int, eval_samples: int, archive: Path,
                  cache: Path) -> dict:
    """gru_exp's trainer with its defaults; evaluation on the full 2,500-review validation split."""
    from gru_exp.train import device as runtime

    runtime.limit_threads(1)
    runtime.import_paddle()
    from gru_exp.config.compose import compose_config
    from gru_exp.train.loop import Callback
    from gru_exp.train.run import run_training

    times: list[float] = []

    class Timer(Callback):
        def on_step_end(self, state, loss):
            times.append(time.perf_counter())

    m = MODELS[model]
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config([
            f"data.path={archive}", f"data.cache_dir={cache}", f"paths.root_dir={out}", f"data.seq_len={seq_len}",
            *(f"model.{k}={v}" for k, v in m.items()), f"data.train_limit={(warmup + steps) * BATCH}",
            "data.test_limit=64", "trainer.epochs=1", "logger.visualdl=false", "logger.baseline=false",
            "trainer.progress_every_s=0",
        ])
        result = run_training(cfg, Path(out) / "run", callbacks=[Timer()])
    step_s = (times[-1] - times[warmup - 1]) / steps
    n_eval = result.n_eval
    eval_s = result.series["eval_time_s"][0] * GRU_EXP_EVAL / n_eval
    return {"step_s": step_s, "eval_s": eval_s, "steps_per_epoch": GRU_EXP_TRAIN // BATCH}


def run_child(args: argparse.Namespace, which: str, model: str, seq_len: int, archive: Path, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", which, model, str(seq_len), str(archive), str(cache),
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--eval-samples", str(args.eval_samples)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{which} {model} {seq_len} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="A B pairs per configuration")
    parser.add_argument("--eval-samples", type=int, default=640)
    parser.add_argument("--configs", default="notebook,cpu_quick")
    parser.add_argument("--seq-lens", default="200,400")
    parser.add_argument("--child", nargs=5, metavar=("WHICH", "MODEL", "SEQ_LEN", "ARCHIVE", "CACHE"))
    args = parser.parse_args()
    if args.child:
        which, model, seq_len, archive, cache = args.child
        fn = child_notebook if which == "A" else child_gru_exp
        result = fn(model, int(seq_len), args.warmup, args.steps, args.eval_samples, Path(archive), Path(cache))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = _archive(Path(tmp))
        cache = Path(tmp) / "cache"
        print(f"data: {archive}; {args.warmup} warm-up + {args.steps} timed steps of batch {BATCH}; "
              f"{args.rounds} A/B rounds, interleaved")
        header = (f"{'config':10s} {'seq':>4s} {'impl':4s} {'s/step':>7s} {'samples/s':>9s} {'train/epoch':>11s} "
                  f"{'eval/epoch':>10s} {'epoch':>8s} {'RSS MB':>7s}")
        print(header)
        for model in args.configs.split(","):
            for seq_len in map(int, args.seq_lens.split(",")):
                runs = {"A": [], "B": []}
                for _ in range(args.rounds):
                    for which in ("A", "B"):
                        runs[which].append(run_child(args, which, model, seq_len, archive, cache))
                summary = {}
                for which, label in (("A", "nb"), ("B", "gru")):
                    step = statistics.median(r["step_s"] for r in runs[which])
                    ev = statistics.median(r["eval_s"] for r in runs[which])
                    train_epoch = step * runs[which][0]["steps_per_epoch"]
                    rss = max(r["peak_rss_mb"] for r in runs[which])
                    summary[which] = (BATCH / step, train_epoch + ev)
                    print(f"{model:10s} {seq_len:4d} {label:4s} {step:7.3f} {BATCH / step:9.1f} {train_epoch:10.0f}s "
                          f"{ev:9.0f}s {train_epoch + ev:7.0f}s {rss:7.0f}")
                print(f"{model:10s} {seq_len:4d} B/A: samples/s x{summary['B'][0] / summary['A'][0]:.2f}, "
                      f"epoch wall time x{summary['A'][1] / summary['B'][1]:.2f} faster")


if __name__ == "__main__":
    main()
