"""Load test of a sweep's study storage: many workers' Optuna traffic against PostgreSQL or SQLite.

Each simulated worker sends what a ``gru_exp.sweep`` worker sends per trial, through its own
storage made by ``gru_exp.sweep.storage.make_storage`` (the same engine settings, heartbeats and
stale-trial retries), without training anything:

- ask step: ``fail_stale_trials`` + ``get_trials`` (count the study) + ``ask``, as ``_next_trial``;
- start: 4 user attributes (command, run folder, host, pid); per epoch: ``report`` + ``should_prune``
  (median pruner); end: 2 user attributes + ``tell``;
- a heartbeat thread: ``record_heartbeat`` every ``--heartbeat`` s, as ``worker.heartbeat``.

Modes (docs/scale-out.md has the figures measured on the 2-core test machine):

  throughput  P worker processes, no pauses: calls/s and latency per call kind.
              python benchmarks/storage_load.py throughput --storage URL --procs 1,4,16 --seconds 15
  crowd       W workers (threads spread over a few processes) paced like real ones, only faster
              (an epoch every --epoch-s, a heartbeat every --heartbeat s): what fails first.
              python benchmarks/storage_load.py crowd --storage URL --workers 50,100,200 --seconds 30
  size        the ask step's latency as the study grows (finished trials added in bulk).
              python benchmarks/storage_load.py size --storage URL --trials 0,1000,3000

URL: a SQLAlchemy URL (postgresql://user:pw@host/db, sqlite:////tmp/load.db). Each run makes its
own study (``load_<uuid>``) and deletes it at the end. Prints one Markdown table per run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import Counter, defaultdict
from typing import Any

CALLS = ("ask_step", "set_attr", "report", "should_prune", "tell", "heartbeat")


def _sweep_cfg(url: str, heartbeat: int) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.create({"storage": url, "heartbeat_interval": heartbeat, "grace_period": max(60, 4 * heartbeat),
                             "max_retry": 1, "paths": {"sweeps_dir": "/tmp"}})


POOL = "queue"  # --pool; forked workers inherit it


def _storage(url: str, heartbeat: int) -> Any:
    """The storage a sweep worker opens (gru_exp.sweep.storage.make_storage); with --pool null, the
    same but without SQLAlchemy's connection pool (a connection per call, closed after it)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from gru_exp.sweep.storage import make_storage

    if POOL == "queue" or url.startswith("sqlite"):
        return make_storage(_sweep_cfg(url, heartbeat))
    import optuna
    import sqlalchemy.pool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool}, heartbeat_interval=heartbeat,
            grace_period=max(60, 4 * heartbeat),
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))


def _error_kind(exc: BaseException) -> str:
    chain, cause = [], exc
    while cause is not None and len(chain) < 4:  # Optuna and gru_exp wrap the driver's error
        chain.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    text = " ".join(" <- ".join(chain).split())
    for known in ("too many clients", "remaining connection slots", "database is locked", "timeout",
                  "could not serialize", "deadlock", "connection refused", "QueuePool limit"):
        if known.lower() in text.lower():
            return known
    return text[:80]


def _worker(url: str, study_name: str, until: float, epochs: int, epoch_s: float, heartbeat: float,
            lat: dict[str, list[float]], errors: Counter, trials: list[int]) -> None:
    """One simulated sweep worker until ``until`` (time.time()); latencies in seconds into ``lat``."""
    import optuna

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        storage = _storage(url, max(1, int(heartbeat)))
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    except Exception as exc:  # e.g. the server refuses the connection
        errors[f"open: {_error_kind(exc)}"] += 1
        return

    def timed(kind: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as exc:
            errors[f"{kind}: {_error_kind(exc)}"] += 1
            return None
        lat[kind].append(time.perf_counter() - t0)
        return out

    def ask() -> Any:
        optuna.storages.fail_stale_trials(study)
        study.get_trials(deepcopy=False)
        return study.ask()

    while time.time() < until:
        trial = timed("ask_step", ask)
        if trial is None:
            time.sleep(0.5)
            continue
        stop = threading.Event()

        def beat(stop: threading.Event = stop, trial_id: int = trial._trial_id) -> None:
            while not stop.wait(heartbeat):
                timed("heartbeat", storage.record_heartbeat, trial_id)

        timed("heartbeat", storage.record_heartbeat, trial._trial_id)
        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        for key in ("command", "run_dir", "host", "pid"):
            timed("set_attr", trial.set_user_attr, key, "x" * 60)
        value = 0.5
        for epoch in range(1, epochs + 1):
            if epoch_s:
                time.sleep(epoch_s)
            value = min(0.99, value + 0.03 * (trial.number % 7 + 1) / 7)
            timed("report", trial.report, value, epoch)
            timed("should_prune", trial.should_prune)
            if time.time() >= until:
                break
        for key in ("epochs_run", "wall_time_s"):
            timed("set_attr", trial.set_user_attr, key, 1.0)
        stop.set()
        beater.join()
        if timed("tell", study.tell, trial, value) is not None:
            trials.append(1)


def _proc(url: str, study_name: str, start: float, seconds: float, threads: int, epochs: int, epoch_s: float,
          heartbeat: float, queue: Any) -> None:
    lat: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    trials: list[int] = []
    try:
        time.sleep(max(0.0, start - time.time()))
        ts = [threading.Thread(target=_worker, args=(url, study_name, start + seconds, epochs, epoch_s, heartbeat,
                                                     lat, errors, trials)) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    except Exception:
        errors[traceback.format_exc(limit=1)[-80:]] += 1
    queue.put((dict(lat), dict(errors), len(trials)))


def _connections(url: str) -> int:
    """Connections the server has open to this database now (PostgreSQL only; -1 elsewhere)."""
    if not url.startswith("postgresql"):
        return -1
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")).scalar()) - 1
    except Exception:
        return -1
    finally:
        engine.dispose()


def _run(url: str, procs: int, threads: int, seconds: float, epochs: int, epoch_s: float, heartbeat: float) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"load_{uuid.uuid4().hex[:8]}"
    storage = _storage(url, max(1, int(heartbeat)))
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    storage.engine.dispose()  # no pooled connection crosses the fork
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = time.time() + 2 + 0.05 * procs  # every process imported and waiting: all start together
    ps = [ctx.Process(target=_proc, args=(url, name, start, seconds, threads, epochs, epoch_s, heartbeat, queue))
          for _ in range(procs)]
    for p in ps:
        p.start()
    peak = -1
    while time.time() < start + seconds:
        time.sleep(min(2.0, max(0.1, start + seconds - time.time())))
        if time.time() > start + 1:
            peak = max(peak, _connections(url))
    results = [queue.get(timeout=seconds + 300) for _ in ps]
    for p in ps:
        p.join()
    lat: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    done = 0
    for part_lat, part_err, n in results:
        for k, v in part_lat.items():
            lat[k] += v
        errors.update(part_err)
        done += n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except Exception as exc:
            print(f"(could not delete study {name}: {_error_kind(exc)})", file=sys.stderr)
    return {"lat": lat, "errors": errors, "trials": done, "seconds": seconds, "peak_connections": peak}


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{1000 * values[min(len(values) - 1, int(q * len(values)))]:.1f}"


def _row(label: str, r: dict) -> str:
    calls = sum(len(v) for v in r["lat"].values())
    cells = [label, f"{calls / r['seconds']:.0f}", f"{r['trials'] / r['seconds']:.1f}"]
    for kind in ("ask_step", "report", "heartbeat", "tell"):
        v = r["lat"].get(kind, [])
        cells.append(f"{_ms(v, 0.5)} / {_ms(v, 0.95)}")
    cells.append(str(r["peak_connections"]) if r["peak_connections"] >= 0 else "-")
    errs = sum(r["errors"].values())
    cells.append(f"{errs}: " + "; ".join(f"{k} ×{n}" for k, n in r["errors"].most_common(2)) if errs else "0")
    return "| " + " | ".join(cells) + " |"


HEADER = ("| {who} | calls/s | trials/s | ask step p50/p95 ms | report p50/p95 ms | heartbeat p50/p95 ms | "
          "tell p50/p95 ms | peak server connections | errors |\n|---|---|---|---|---|---|---|---|---|")


def _kind(url: str) -> str:
    return url.split(":", 1)[0].split("+")[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("throughput", "crowd", "size"))
    parser.add_argument("--storage", action="append", required=True, help="SQLAlchemy URL; repeat for several")
    parser.add_argument("--procs", default="1,4,16", help="throughput: worker processes per run")
    parser.add_argument("--workers", default="50,100,200", help="crowd: simulated workers per run")
    parser.add_argument("--threads-per-proc", type=int, default=25, help="crowd: workers per process")
    parser.add_argument("--trials", default="0,1000,3000", help="size: finished trials in the study")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-s", type=float, default=1.0, help="crowd: seconds per simulated epoch")
    parser.add_argument("--heartbeat", type=float, default=2.0, help="seconds between heartbeats (real default 30)")
    parser.add_argument("--pool", choices=("queue", "null"), default="queue",
                        help="PostgreSQL: queue = gru-exp's storage (SQLAlchemy's pool, connections kept open); "
                             "null = a connection per call")
    args = parser.parse_args(argv)
    global POOL
    POOL = args.pool
    print(f"# storage_load {args.mode} on {os.cpu_count()} CPUs, pool {args.pool}, {time.strftime('%Y-%m-%d %H:%M')}")
    for url in args.storage:
        if args.mode == "throughput":
            print("\n" + HEADER.format(who=f"{_kind(url)}: processes"))
            for p in [int(x) for x in args.procs.split(",")]:
                print(_row(str(p), _run(url, p, 1, args.seconds, args.epochs, 0.0, args.heartbeat)), flush=True)
        elif args.mode == "crowd":
            print(f"\n(epoch every {args.epoch_s} s, {args.epochs} epochs per trial, "
                  f"heartbeat every {args.heartbeat} s)")
            print(HEADER.format(who=f"{_kind(url)}: workers"))
            for w in [int(x) for x in args.workers.split(",")]:
                procs = max(1, -(-w // args.threads_per_proc))
                print(_row(str(w), _run(url, procs, -(-w // procs), args.seconds, args.epochs, args.epoch_s,
                                        args.heartbeat)), flush=True)
        else:
            _size(url, [int(x) for x in args.trials.split(",")], args.epochs)
    return 0


def _size(url: str, sizes: list[int], epochs: int) -> None:
    """The ask step (fail_stale_trials + get_trials + ask) of a fresh worker and of a warm one, and one
    should_prune, as the study holds more finished trials (each with ``epochs`` intermediate values)."""
    import optuna
    from optuna.distributions import FloatDistribution

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"load_{uuid.uuid4().hex[:8]}"
    storage = _storage(url, 30)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    print(f"\n| {_kind(url)}: finished trials | fresh worker's first ask step ms | warm ask step p50 ms | "
          "should_prune p50 ms | adding 100 trials s |\n|---|---|---|---|---|")
    have = 0
    dist = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    try:
        for size in sizes:
            t_add = 0.0
            while have < size:
                batch = [optuna.trial.create_trial(params={"lr": 1e-3 * (1 + (have + i) % 50)}, distributions=dist,
                                                   value=0.5 + ((have + i) % 40) / 100,
                                                   intermediate_values={e: 0.5 + e / 100 for e in range(epochs)})
                         for i in range(min(100, size - have))]
                t0 = time.perf_counter()
                study.add_trials(batch)
                t_add = time.perf_counter() - t0
                have += len(batch)
            fresh = optuna.load_study(study_name=name, storage=_storage(url, 30), pruner=study.pruner)
            t0 = time.perf_counter()
            optuna.storages.fail_stale_trials(fresh)
            fresh.get_trials(deepcopy=False)
            trial = fresh.ask()
            first = time.perf_counter() - t0
            warm, prune = [], []
            for _ in range(5):
                trial.report(0.6, 3)
                t0 = time.perf_counter()
                trial.should_prune()
                prune.append(time.perf_counter() - t0)
                fresh.tell(trial, 0.6)
                have += 1
                t0 = time.perf_counter()
                optuna.storages.fail_stale_trials(fresh)
                fresh.get_trials(deepcopy=False)
                trial = fresh.ask()
                warm.append(time.perf_counter() - t0)
            fresh.tell(trial, 0.6)
            have += 1
            print(f"| {size} | {1000 * first:.0f} | {1000 * statistics.median(warm):.0f} | "
                  f"{1000 * statistics.median(prune):.0f} | {t_add:.2f} |", flush=True)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.delete_study(study_name=name, storage=storage)


if __name__ == "__main__":
    sys.exit(main())
