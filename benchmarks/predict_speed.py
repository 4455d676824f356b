"""Prediction speed on one CPU thread: ``gru-exp predict``'s dynamic path against the exported static
model run by Paddle Inference (and by paddle.jit.load), for ``experiment=imdb_bigram``'s model.

    GRU_EXP_IMDB=/path/to/aclImdb_v1.tar.gz python benchmarks/predict_speed.py
    python benchmarks/predict_speed.py --single 200 --many 2000 --batch 256    # the defaults

The model has imdb_bigram's model knobs (bidirectional 1 x 32 GRU, embedding 128, attention
pooling, a 262,144 x 16 bigram bag, lengths) and the real vocabulary (cutoff 150), with freshly
initialised weights: the arithmetic, hence the speed, does not depend on the weights. The texts are
real IMDB test reviews (a seeded sample), as token ids cut to seq_len 600, so tokenizing is not
timed. Batch 1: each review alone, latency median and p95. Large batches: ``--many`` reviews in
batches of ``--batch`` sorted by length (as predict batches), reviews per second. Probabilities of
the three paths are compared on the sample. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gru_exp.train import device

device.limit_threads(1)  # before paddle is imported: one core
import paddle  # noqa: E402
import paddle.inference as pi  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from gru_exp.config.compose import compose_config  # noqa: E402
from gru_exp.config.values import run_config  # noqa: E402
from gru_exp.data.batches import iter_batches  # noqa: E402
from gru_exp.data.imdb import load_imdb, resolve_archive  # noqa: E402
from gru_exp.data.splits import padded  # noqa: E402
from gru_exp.train.loop import eval_batches  # noqa: E402
from gru_exp.train.model import GRUClassifier  # noqa: E402
from gru_exp.use.infer import probabilities  # noqa: E402


class Probabilities(paddle.nn.Layer):  # what gru-exp export saves: softmax over the model's logits
    def __init__(self, model: paddle.nn.Layer) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids, lengths=None):
        return F.softmax(self.model(ids, lengths), axis=-1)


def inference_predictor(prefix: str):
    config = pi.Config(prefix + ".json", prefix + ".pdiparams")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(1)
    config.disable_glog_info()
    return pi.create_predictor(config)


def run_predictor(predictor, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    predictor.get_input_handle("ids").copy_from_cpu(ids)
    predictor.get_input_handle("lengths").copy_from_cpu(lengths)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def timed(fn, batches) -> tuple[list[float], np.ndarray]:
    """Seconds per batch, and the probabilities, of ``fn(ids, lengths)`` over ``batches``."""
    times, out = [], []
    for batch in batches:
        start = time.perf_counter()
        out.append(fn(batch.ids, batch.lengths))
        times.append(time.perf_counter() - start)
    return times, np.concatenate(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=200, help="reviews predicted one at a time")
    parser.add_argument("--many", type=int, default=2000, help="reviews predicted in large batches")
    parser.add_argument("--batch", type=int, default=256, help="large batch size (trainer.eval_batch_size)")
    args = parser.parse_args()
    rc = run_config(compose_config(["experiment=imdb_bigram"]))
    arrays = load_imdb(resolve_archive(rc.data.path), rc.data.cutoff, Path(rc.data.cache_dir))
    test = padded(arrays, "test", rc.data.seq_len)
    rng = np.random.default_rng(0)
    single, many = (test.subset(rng.choice(len(test), n, replace=False)) for n in (args.single, args.many))
    paddle.seed(0)
    model = GRUClassifier(arrays.vocab_size, rc.model, num_classes=arrays.num_classes)
    model.eval()
    layer = Probabilities(model)
    layer.eval()

    @paddle.no_grad()
    def dynamic(ids, lengths):
        return layer(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "model")
        spec = [paddle.static.InputSpec([None, None], "int64", "ids"), paddle.static.InputSpec([None], "int64", "lengths")]
        paddle.jit.save(layer, prefix, input_spec=spec)
        loaded = paddle.jit.load(prefix)
        loaded.eval()
        predictor = inference_predictor(prefix)

        def jit_loaded(ids, lengths):
            return loaded(paddle.to_tensor(ids), paddle.to_tensor(lengths)).numpy()

        paths = {"dynamic (gru-exp predict)": dynamic, "static, Paddle Inference": lambda i, n: run_predictor(predictor, i, n),
                 "static, paddle.jit.load": jit_loaded}
        print(f"imdb_bigram model, {arrays.vocab_size} vocabulary rows, {sum(p.numel() for p in model.parameters()):,} "
              f"parameters; paddle {paddle.__version__}, 1 thread; reviews: mean {single.lengths.mean():.0f} / "
              f"{many.lengths.mean():.0f} tokens (cut at {rc.data.seq_len})")
        ones = [b for b in iter_batches(single, [np.array([i]) for i in range(len(single))], trim=True)]
        order = eval_batches(many, args.batch, True)
        large = list(iter_batches(many, order, trim=True))
        reference = probabilities(model, many, True, args.batch)  # predict's own function, as a check
        print(f"{'path':28} {'batch 1 median ms':>18} {'p95 ms':>8} {'batch ' + str(args.batch) + ' reviews/s':>18} "
              f"{'max |dp| vs predict':>20}")
        for name, fn in paths.items():
            fn(ones[0].ids, ones[0].lengths)  # warm-up (the static paths build their programs once)
            fn(large[0].ids, large[0].lengths)
            lat, _ = timed(fn, ones)
            times, probs = timed(fn, large)
            got = np.zeros_like(reference)
            got[np.concatenate(order)] = probs
            print(f"{name:28} {1000 * statistics.median(lat):18.2f} {1000 * np.percentile(lat, 95):8.2f} "
                  f"{len(many) / sum(times):18.0f} {float(np.abs(got - reference).max()):20.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
