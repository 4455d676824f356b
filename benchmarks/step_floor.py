"""How far a training step is from its floor: the GRU op alone on the same shapes (issue #28).

    python benchmarks/step_floor.py                                   # every shipped experiment
    python benchmarks/step_floor.py --experiments imdb_bigram --variants \
        "today=" "fast ops=model.fast_ops=true" "rows=trainer.bag_update=rows" \
        "both=model.fast_ops=true,trainer.bag_update=rows"

For each experiment (composed as ``gru-exp train experiment=<name>`` would, on the real archive
$GRU_EXP_IMDB or ../shared/data/aclImdb_v1.tar.gz), one fresh process, one core, flush-to-zero:
``--steps`` training batches taken evenly from epoch 1's bucketed order, and per variant (a set of
overrides; one that the config's validation refuses is skipped and said) in ``--rounds`` rounds,
interleaved variant after variant:

- the loop's training step split into forward (+ loss), backward and optimizer (step + clear_grad),
  each timed on its own (a CPU runs the ops synchronously, so no sync is needed);
- the GRU op alone: ``paddle.nn.GRU`` of the same size, forward and backward (also to its input, as
  in the model) on a random [B, T, E] input of each batch's shape with its lengths;
- the data pipeline: gathering one epoch's batches into padded id matrices, per batch.

Figures are medians over the rounds of each round's mean per step. The GRU's achieved GFLOP/s
counts its matrix products only, over every padded step (what the kernel computes): forward
6 H (in + H) per token, layer and direction, backward twice that. Two ceilings measured here:
``sgemm 1024`` (a 1024^3 float32 product, as paddle reaches it on this core) and ``sgemm
[B,H]x[H,3H]`` (one recurrent step's product, the shape a GRU is made of, batch by batch).
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def _archive() -> str:
    for path in (os.environ.get("GRU_EXP_IMDB"), str(ROOT.parent / "shared" / "data" / "aclImdb_v1.tar.gz")):
        if path and Path(path).is_file():
            return path
    sys.exit("step_floor.py needs the IMDB archive: set GRU_EXP_IMDB")


def _gemm_rate(paddle, m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """GFLOP/s of a float32 [m, k] x [k, n] product, repeated for about ``seconds``."""
    a, b = paddle.randn([m, k]), paddle.randn([k, n])
    paddle.matmul(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        paddle.matmul(a, b)
        count += 1
    return 2.0 * m * k * n * count / (time.perf_counter() - start) / 1e9


def child(experiment: str, variants: list[tuple[str, list[str]]], steps: int, rounds: int, warmup: int,
          eval_sizes: list[int]) -> dict:
    """One experiment's figures, in this (fresh) process."""
    from gru_exp.train import device as runtime

    runtime.limit_threads(1)
    paddle = runtime.import_paddle()
    runtime.flush_denormals()
    import numpy as np
    import paddle.nn.functional as F

    from gru_exp.config.compose import compose_config
    from gru_exp.config.validation import validate
    from gru_exp.errors import ConfigError
    from gru_exp.config.values import run_config
    from gru_exp.data import sources
    from gru_exp.data.batches import batch_order, iter_batches
    from gru_exp.train.run import build, load_data

    base = [f"experiment={experiment}", f"data.path={_archive()}"]
    cfg = compose_config(base)
    rc = run_config(cfg)
    splits = load_data(rc, sources.find(rc.data))
    t, m = rc.trainer, rc.model
    order = batch_order(splits.train, t.batch_size, rng=np.random.default_rng([t.seed, 1, 1]), drop_last=t.drop_last,
                        bucket_size=rc.data.bucket_size)
    taken = [order[i] for i in np.linspace(0, len(order) - 1, warmup + steps).astype(int)]
    batches = list(iter_batches(splits.train, taken, trim=m.use_lengths))
    epoch_t = float(np.mean([splits.train.lengths[b].max() for b in order]))
    out = {"experiment": experiment, "batch": t.batch_size, "n_eval": len(splits.eval), "steps_per_epoch": len(order),
           "mean_T": float(np.mean([b.ids.shape[1] for b in batches[warmup:]])), "epoch_mean_T": epoch_t,
           "variants": {}, "skipped": {}}

    models = {}
    for name, overrides in variants:
        vcfg = compose_config(base + overrides)
        try:
            validate(vcfg)
        except ConfigError as exc:
            out["skipped"][name] = str(exc)
            continue
        paddle.seed(t.seed)
        model, optimizer = build(run_config(vcfg), splits)
        model.train()
        models[name] = (model, optimizer, run_config(vcfg))

    def train_steps(model, optimizer, rc_v) -> dict:
        parts = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            labels = paddle.to_tensor(b.labels)
            logits = model(paddle.to_tensor(b.ids), paddle.to_tensor(b.lengths) if rc_v.model.use_lengths else None)
            loss = F.cross_entropy(logits.astype("float32"), labels)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            optimizer.clear_grad()
            t3 = time.perf_counter()
            if i >= warmup:
                parts["forward"] += t1 - t0
                parts["backward"] += t2 - t1
                parts["optimizer"] += t3 - t2
        return {k: v / steps * 1000 for k, v in parts.items()}

    gru = None
    if m.gru:
        gru = paddle.nn.GRU(m.embedding_size, m.hidden_size, num_layers=m.num_layers, direction=str(m.direction))

    def gru_steps() -> tuple[float, float]:
        forward = backward = 0.0
        for i, b in enumerate(batches):
            x = paddle.randn([b.ids.shape[0], b.ids.shape[1], m.embedding_size])
            x.stop_gradient = False
            lengths = paddle.to_tensor(b.lengths) if m.use_lengths else None
            t0 = time.perf_counter()
            outputs, _ = gru(x, sequence_length=lengths)
            loss = outputs.mean()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            gru.clear_gradients()
            if i >= warmup:
                forward, backward = forward + t1 - t0, backward + t2 - t1
        return forward / steps * 1000, backward / steps * 1000

    def data_ms() -> float:
        start = time.perf_counter()
        for _ in iter_batches(splits.train, order, trim=m.use_lengths):
            pass
        return (time.perf_counter() - start) / len(order) * 1000

    samples: dict[str, list] = {name: [] for name in models}
    gru_ms, data = [], []
    for _ in range(rounds):
        for name, (model, optimizer, rc_v) in models.items():
            samples[name].append(train_steps(model, optimizer, rc_v))
        if gru is not None:
            gru_ms.append(gru_steps())
        data.append(data_ms())
    out["gru_ms"] = statistics.median(f + b for f, b in gru_ms) if gru_ms else None
    out["gru_fwd_ms"] = statistics.median(f for f, _ in gru_ms) if gru_ms else None
    out["gru_bwd_ms"] = statistics.median(b for _, b in gru_ms) if gru_ms else None
    out["data_ms"] = statistics.median(data)
    for name, rows in samples.items():
        parts = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        parts["step"] = statistics.median(sum(r.values()) for r in rows)
        out["variants"][name] = parts
    if gru is not None:  # matrix products per padded token, forward + backward (3x forward)
        dirs, h = (2 if str(m.direction) == "bidirectional" else 1), m.hidden_size
        per_token = sum(6 * h * ((m.embedding_size if layer == 0 else dirs * h) + h) for layer in range(m.num_layers))
        tokens = float(np.mean([b.ids.size for b in batches[warmup:]]))
        out["gru_gflops"] = 3 * per_token * dirs * tokens / (out["gru_ms"] / 1000) / 1e9
        out["sgemm_recurrent"] = _gemm_rate(paddle, t.batch_size, h, 3 * h)
    out["sgemm_1024"] = _gemm_rate(paddle, 1024, 1024, 1024)
    if eval_sizes and models:  # evaluation of the validation split (no grad) per batch size, the first variant's model
        import dataclasses

        from gru_exp.train.loop import evaluate

        model, _, rc_v = next(iter(models.values()))
        out["eval_s"] = {}
        for size in eval_sizes:
            rc_e = dataclasses.replace(rc_v, trainer=dataclasses.replace(rc_v.trainer, eval_batch_size=size))
            evaluate(model, splits.eval, rc_e)  # warm-up
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                evaluate(model, splits.eval, rc_e)
                times.append(time.perf_counter() - start)
            out["eval_s"][size] = statistics.median(times)
        model.train()
    out["model"] = {"hidden": m.hidden_size, "layers": m.num_layers, "embedding": m.embedding_size,
                    "pooling": str(m.pooling), "bag": m.bigram_buckets, "gru": m.gru}
    return out


def _variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    return name, [o for o in overrides.split(",") if o]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", default=",".join(SHIPPED), help="comma-separated (default: every shipped one)")
    ap.add_argument("--variants", nargs="*", default=["today="], help="name=override,override ... ('today=': none)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval-batch-sizes", default="", help="also time evaluating the validation split at these "
                    "comma-separated batch sizes (e.g. 256,1024)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    variants = [_variant(v) for v in args.variants]
    if args.json and not args.child and args.json.exists():
        print(f"--json {args.json} exists; give a new file (this script never overwrites one)", file=sys.stderr)
        sys.exit(2)
    if args.child:
        sizes = [int(x) for x in args.eval_batch_sizes.split(",") if x]
        print(json.dumps(child(args.child, variants, args.steps, args.rounds, args.warmup, sizes)))
        return
    results = []
    for experiment in args.experiments.split(","):
        cmd = [sys.executable, __file__, "--child", experiment, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--rounds", str(args.rounds), "--eval-batch-sizes", args.eval_batch_sizes,
               "--variants", *args.variants]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if proc.returncode:
            sys.exit(f"{experiment} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"\n{experiment}: {r['model']}, batch {r['batch']}, mean T {r['mean_T']:.0f} (epoch {r['epoch_mean_T']:.0f}),"
              f" {r['steps_per_epoch']} steps/epoch; data {r['data_ms']:.2f} ms/batch; sgemm 1024 "
              f"{r['sgemm_1024']:.0f} GFLOP/s", flush=True)
        if r.get("gru_ms"):
            print(f"  GRU op alone: {r['gru_ms']:.1f} ms/step (forward {r['gru_fwd_ms']:.1f}, backward "
                  f"{r['gru_bwd_ms']:.1f}), {r['gru_gflops']:.1f} GFLOP/s "
                  f"(sgemm [B,H]x[H,3H]: {r['sgemm_recurrent']:.1f} GFLOP/s)")
        print(f"  {'variant':<14} {'step ms':>8} {'fwd':>7} {'bwd':>7} {'optim':>7} {'non-GRU fwd':>12} "
              f"{'non-GRU bwd':>12} {'step/GRU':>9} {'epoch s':>8}")
        for name, p in r["variants"].items():
            ratio = f"{p['step'] / r['gru_ms']:.2f}x" if r.get("gru_ms") else "-"
            rest = ((f"{p['forward'] - r['gru_fwd_ms']:12.1f} {p['backward'] - r['gru_bwd_ms']:12.1f}")
                    if r.get("gru_ms") else f"{'-':>12} {'-':>12}")
            epoch_s = (p["step"] + r["data_ms"]) * r["steps_per_epoch"] / 1000
            print(f"  {name:<14} {p['step']:8.1f} {p['forward']:7.1f} {p['backward']:7.1f} {p['optimizer']:7.1f} {rest} "
                  f"{ratio:>9} {epoch_s:8.0f}")
        for size, seconds in (r.get("eval_s") or {}).items():
            print(f"  evaluation of the {r['n_eval']:,} validation texts, batches of {size}: {seconds:.2f} s")
        for name, why in r["skipped"].items():
            print(f"  {name}: skipped ({why[:100]})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
