"""Replay a finished, unpruned sweep under other pruners and worker counts, without training.

    python benchmarks/prune_replay.py --study prune_full_seq_noprune \
        --pruner name=none --pruner name=median,n_startup_trials=2,n_warmup_steps=1 --workers 1,2

Every trial of the source study (run one after another with ``pruner.name=none``, so each trial
reported every epoch) is replayed in trial-number order through a real Optuna pruner in an
in-memory study. Each trial's per-epoch objective values (the intermediate values it reported)
arrive at the times its own run took: its measured start-up time, then each epoch's train + eval
time from its metrics.json, then the test evaluation a completed trial pays; ``--workers`` N
simulated workers each take the next trial when free, after the gap the source's worker left
between trials. A trial the pruner stops ends at that epoch and skips its test evaluation.

Per pruner and worker count it prints trained epochs (and how many fewer than the source), pruned
trials, the best objective and whether it is the source's best, and the simulated wall time with
its ratio to the source's measured wall time. The first row (no pruning, 1 worker) replays the
source itself: its simulated wall time checks the timing model against the measurement.

Decisions are made with the same arrival order a live sweep of the same trials would see, but
a live run's epoch times vary a little from run to run; confirm a chosen pruner with a live sweep.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SourceTrial:
    number: int
    values: list[float]  # the objective's running value after each epoch
    epoch_s: list[float]  # train + eval time of each epoch
    start_s: float  # trial start to the first epoch's first step (compose, data, model)
    test_s: float  # after the last epoch: test evaluation and the run record
    value: float


def load_source(storage: str, study_name: str) -> tuple[list[SourceTrial], float, float]:
    """The source study's trials, its measured wall time and the median gap between trials."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    bad = [t.number for t in trials if t.state != TrialState.COMPLETE]
    if bad or not trials:
        raise SystemExit(f"--study {study_name!r} must hold only COMPLETE trials of an unpruned sweep "
                         f"(pruner.name=none); trials {bad or '(none)'} are not complete.")
    out = []
    for t in trials:
        record = json.loads((Path(t.user_attrs["run_dir"]) / "metrics.json").read_text())
        series = record["series"]
        epoch_s = [a + b for a, b in zip(series["train_time_s"], series["eval_time_s"])]
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
        test_s = statistics.fmean(series["eval_time_s"]) * record["n_test"] / max(record["n_eval"], 1)
        start_s = max(wall - sum(epoch_s) - test_s, 0.0)
        values = [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
        out.append(SourceTrial(t.number, values, epoch_s, start_s, test_s, float(t.value)))
    wall = (trials[-1].datetime_complete - trials[0].datetime_start).total_seconds()
    gaps = [(b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(trials, trials[1:])]
    return out, wall, statistics.median(gaps) if gaps else 0.0


def make_pruner(spec: str) -> Any:
    """``name=median,n_startup_trials=2`` -> the pruner gru_exp.sweep would build from those keys."""
    from omegaconf import OmegaConf

    from gru_exp.config.sweep import PrunerConfig
    from gru_exp.sweep.space import make_pruner as build

    cfg = OmegaConf.structured(PrunerConfig)
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key.strip(), value.strip() or None)  # the schema converts "2" to 2
    return build(OmegaConf.create({"pruner": cfg, "objectives": [], "objective": {}}))


def replay(source: list[SourceTrial], pruner: Any, workers: int, gap_s: float, maximize: bool,
           study_name: str = "replay") -> dict[str, Any]:
    """Simulate the sweep: events are (time, order, trial index, epoch); 0 = start of a trial.

    ``study_name`` names the in-memory study: hyperband puts a trial in a bracket by hashing the
    study name and trial number, so a fixed name makes the replay repeatable (and, given the
    source's name, assigns the brackets a live study of that name would)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, direction="maximize" if maximize else "minimize",
                                pruner=pruner)
    events: list[tuple[float, int, int, int]] = []
    running: dict[int, Any] = {}
    order = 0
    next_trial = 0
    for _ in range(min(workers, len(source))):
        heapq.heappush(events, (0.0, order, next_trial, 0))
        order, next_trial = order + 1, next_trial + 1
    epochs = pruned = 0
    end = 0.0
    while events:
        now, _, i, epoch = heapq.heappop(events)
        src = source[i]
        if epoch == 0:
            running[i] = study.ask()
            heapq.heappush(events, (now + src.start_s + src.epoch_s[0], order, i, 1))
            order += 1
            continue
        trial = running[i]
        trial.report(src.values[epoch - 1], step=epoch)
        free_at = None
        if epoch < len(src.values) and trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            epochs, pruned, free_at = epochs + epoch, pruned + 1, now
        elif epoch == len(src.values):
            study.tell(trial, src.value)
            epochs, free_at = epochs + epoch, now + src.test_s
        else:
            heapq.heappush(events, (now + src.epoch_s[epoch], order, i, epoch + 1))
            order += 1
        if free_at is not None:
            end = max(end, free_at)
            if next_trial < len(source):
                heapq.heappush(events, (free_at + gap_s, order, next_trial, 0))
                order, next_trial = order + 1, next_trial + 1
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    best = (max if maximize else min)(complete, key=lambda t: t.value)
    # The in-memory study numbers trials in replay order: map back to the source's trial numbers.
    return {"epochs": epochs, "pruned": pruned, "best": best.value, "best_trial": source[best.number].number,
            "wall_s": end}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True, help="an unpruned study (pruner.name=none), all trials complete")
    parser.add_argument("--storage", default=f"sqlite:///{ROOT / 'outputs' / 'sweeps' / 'optuna.db'}")
    parser.add_argument("--pruner", action="append", default=None,
                        help="pruner keys as in sweeps/*.yaml, e.g. name=median,n_startup_trials=2 (repeatable)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--minimize", action="store_true", help="the objective is minimized (eval_loss)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    source, wall, gap = load_source(args.storage, args.study)
    total_epochs = sum(len(t.values) for t in source)
    best = (max if not args.minimize else min)(source, key=lambda t: t.value)
    print(f"Source study {args.study!r}: {len(source)} trials, {total_epochs} epochs, measured wall {wall:.0f} s, "
          f"best {best.value:.4f} (trial {best.number}), median gap between trials {gap:.1f} s")
    print("| pruner | workers | trained epochs | pruned | best objective | wall time (simulated) |")
    print("|---|---|---|---|---|---|")
    for spec in ["name=none"] + [p for p in (args.pruner or []) if p != "name=none"]:
        for workers in (int(w) for w in args.workers.split(",")):
            r = replay(source, make_pruner(spec), workers, gap, not args.minimize, args.study)
            same = "same" if r["best"] == best.value else "LOST"
            print(f"| {spec} | {workers} | {r['epochs']} ({r['epochs'] / total_epochs - 1:+.0%}) | {r['pruned']} | "
                  f"{r['best']:.4f} (trial {r['best_trial']}, {same}) | {r['wall_s']:.0f} s "
                  f"({r['wall_s'] / wall:.2f}x) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
