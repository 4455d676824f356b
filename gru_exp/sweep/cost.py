"""What a sweep will cost: trials x epochs x seconds per epoch, and when it finishes.

Before any epoch has run, the seconds per epoch come from a model of the data size and the GRU's
size (:func:`epoch_seconds`), averaged over random points of the search space; once trials have
finished, from their measured wall time per trained epoch (start-up and test scoring included,
so it is what a trial really costs). Both are logged (stderr): once before the first trial, and
after every finished trial. Pruned trials stop early, so the figures are an upper bound.

The model (docs/performance.md, "What a sweep costs"): one epoch reads the training reviews once
forwards and backwards and the evaluation split once forwards (a third of the cost per token),
each review as min(its length, seq_len) tokens with true lengths (IMDB's mean of that below) or
seq_len tokens without; a token costs ``PER_STEP`` per GRU direction and layer plus ``PER_MAC``
per multiply-add of the GRU's gates. Fitted on this 2-core machine's documented runs (one
thread): within about 25% of cpu_quick, imdb_best and imdb_attention, 15-25% low for the
notebook's 2 x 256 model.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import random
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from gru_exp.sweep.corners import _sampled

log = logging.getLogger(__name__)
IMDB_TRAIN, IMDB_TEST = 25_000, 25_000
# IMDB train reviews (paddle's tokenizer, cutoff 150): mean of min(length, seq_len); None = whole.
MEAN_TOKENS = {100: 96.2, 200: 159.0, 300: 189.8, 400: 207.3, 500: 217.7, 600: 224.1, 800: 230.4, 1000: 232.5}
WHOLE_REVIEW, LONGEST = 232.9, 2469
PER_STEP, PER_MAC = 5.5e-6, 4.5e-11  # seconds per token and GRU direction x layer; per token and multiply-add
START_S = 10.0  # a trial's start (compose, data from the cache, model) before its first step
WORKERS_ENV = "GRU_EXP_SWEEP_WORKERS"  # set by the parent for the workers it starts: how many share the study


def mean_tokens(seq_len: Optional[int], use_lengths: bool) -> float:
    """Tokens the GRU reads per review: IMDB's mean of min(length, seq_len), interpolated."""
    if not use_lengths:
        return float(seq_len or LONGEST)
    if seq_len is None or seq_len >= max(MEAN_TOKENS):
        return WHOLE_REVIEW if seq_len is None else min(WHOLE_REVIEW, float(seq_len))
    points = sorted(MEAN_TOKENS.items())
    lo_len, lo_tok = 0, 0.0
    for length, tokens in points:
        if seq_len <= length:
            return lo_tok + (tokens - lo_tok) * (seq_len - lo_len) / (length - lo_len)
        lo_len, lo_tok = length, tokens
    return WHOLE_REVIEW


def epoch_seconds(cfg: Any) -> float:
    """One epoch of ``cfg`` on one CPU thread, estimated from the data size and the GRU's size."""
    d, m = cfg.data, cfg.model
    dirs = 2 if str(m.direction) == "bidirectional" else 1
    macs = sum(3 * m.hidden_size * ((m.embedding_size if layer == 0 else dirs * m.hidden_size) + m.hidden_size)
               for layer in range(m.num_layers)) * dirs
    per_token = PER_STEP * dirs * m.num_layers + PER_MAC * macs
    evaluated = d.val_size or (d.test_limit or IMDB_TEST)
    trained = d.train_limit or IMDB_TRAIN - d.val_size
    return (trained + evaluated / 3) * mean_tokens(d.seq_len, bool(m.use_lengths)) * per_token


def _draw(spec: DictConfig, rng: random.Random) -> Any:
    """One value of a searched knob, drawn as a random sampler would."""
    if spec.type == "categorical":
        return rng.choice(list(spec.choices))
    if spec.type == "int":
        step = int(spec.step or 1)
        return int(spec.low) + step * rng.randint(0, (int(spec.high) - int(spec.low)) // step)
    if spec.log:
        return math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
    return rng.uniform(spec.low, spec.high)


def space_estimate(sc: DictConfig, base: DictConfig, draws: int = 64) -> tuple[float, float]:
    """(epochs per run, seconds per epoch), averaged over ``draws`` random points of the search
    space (seeded: the same figures every time). The seconds are NaN for data other than IMDB's
    archive: the estimate knows IMDB's sizes only, and the first trial measures them."""
    if str(base.data.source) != "imdb":
        return float(base.trainer.epochs), math.nan
    rng = random.Random(0)
    samples = []
    for _ in range(draws if sc.params else 1):
        cfg = base.copy()
        try:
            for key, value in _sampled({k: _draw(spec, rng) for k, spec in sc.params.items()}, sc.params).items():
                OmegaConf.update(cfg, key, value, merge=False)
            samples.append((float(cfg.trainer.epochs), epoch_seconds(cfg)))
        except Exception:  # a value only Hydra's parser takes: leave this draw out of the mean
            continue
    if not samples:
        return float(base.trainer.epochs), epoch_seconds(base)
    return (sum(e for e, _ in samples) / len(samples), sum(s for _, s in samples) / len(samples))


def duration(seconds: float) -> str:
    """"42 min", "3.4 h"."""
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def clock(seconds_from_now: float) -> str:
    """The wall-clock time that far from now: "15:42", or "Tue 09:10" beyond today."""
    now = datetime.datetime.now()
    at = now + datetime.timedelta(seconds=seconds_from_now)
    return at.strftime("%H:%M" if at.date() == now.date() else "%a %H:%M")


def measured(trials: list) -> tuple[int, float]:
    """(epochs trained, seconds per epoch) over the study's finished trials' own wall times."""
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            and t.user_attrs.get("epochs_run") and t.user_attrs.get("wall_time_s")]
    epochs = sum(int(t.user_attrs["epochs_run"]) for t in done)
    return epochs, (sum(float(t.user_attrs["wall_time_s"]) for t in done) / epochs if epochs else math.nan)


def workers(sc: DictConfig) -> int:
    """Workers sharing the study: the parent's n_workers (its workers run with n_workers=1)."""
    try:
        return max(1, int(os.environ.get(WORKERS_ENV) or sc.n_workers))
    except ValueError:
        return max(1, int(sc.n_workers))


def cost_line(sc: DictConfig, trials: list, epochs: float, estimate_s: float, *,
              timeout_left_s: Optional[float] = None) -> str:
    """What the study's remaining trials cost: trials x epochs x seconds per epoch, and the finish
    time; measured seconds per epoch once any trial has trained, else ``estimate_s``."""
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    left = max(sc.n_trials - done, 0)
    trained, per_epoch = measured(trials)
    runs = epochs * sc.repeats
    if trained:
        source = f"measured over the {trained} epoch(s) trained so far, start-up and test scoring included"
    elif not math.isfinite(estimate_s):
        return (f"Cost of study {sc.study_name!r}: {left} trial(s) to run (of {sc.n_trials}) x {runs:g} epoch(s); the "
                "seconds per epoch are measured once the first trial has trained (no estimate before it for data "
                "other than IMDB's archive)")
    else:
        per_epoch = estimate_s
        source = "estimated from the data size and the GRU's size before any epoch ran; docs/performance.md"
    n = workers(sc)
    work = left * (runs * per_epoch + (0 if trained else START_S * sc.repeats))
    line = (f"Cost of study {sc.study_name!r}: {left} trial(s) to run (of {sc.n_trials}) x {runs:g} epoch(s) x "
            f"{per_epoch:.0f} s per epoch ({source}) = {duration(work)} of training, {duration(work / n)} on {n} "
            f"worker(s)")
    if timeout_left_s is not None and math.isfinite(timeout_left_s) and timeout_left_s < work / n:
        return line + (f"; the timeout stops new trials after {duration(max(timeout_left_s, 0))}: finishes about "
                       f"{clock(timeout_left_s + runs * per_epoch)} at the latest")
    return line + f"; finishes about {clock(work / n)}, sooner for every pruned trial"


def log_cost(sc: DictConfig, study: Any, estimate: tuple[float, float], timeout_left_s: Optional[float] = None) -> None:
    """Log (stderr) the cost line of ``study`` as it stands."""
    if timeout_left_s is None and sc.timeout:
        timeout_left_s = float(sc.timeout)
    log.info("%s", cost_line(sc, study.get_trials(deepcopy=False), *estimate, timeout_left_s=timeout_left_s))
