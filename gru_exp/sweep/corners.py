"""The corners of a search space, checked before any trial against the rules that tie training
knobs together (``config/validation.py``'s cross-knob rules): a combination the sampler can draw
and training would reject fails that trial at run time, so the sweep is refused up front instead,
with the combination, the rule and how to avoid it (a ``when:``, narrower ranges or another base).

A corner gives every searched knob one of its edge values (each choice of a categorical, low and
high of a range), applies ``when:`` as sampling does, and validates the composed config. All
corners when there are few (``FULL_LIMIT``), else every pair of knobs at all their edge values
with the other knobs at their first edge value: every rule between two knobs is met."""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any, Callable, Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from gru_exp.config.sweep import objective_list
from gru_exp.config.validation import validate
from gru_exp.errors import ConfigError

log = logging.getLogger(__name__)
_MISSING = object()
FULL_LIMIT = 256  # corners checked one by one up to this many; beyond, every pair of knobs


def edge_values(spec: DictConfig) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices)
    cast = int if spec.type == "int" else float
    return [cast(spec.low), cast(spec.high)]


def _corners(edges: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = list(edges)
    if math.prod(len(v) for v in edges.values()) <= FULL_LIMIT:
        for values in itertools.product(*edges.values()):
            yield dict(zip(keys, values))
        return
    first = {k: v[0] for k, v in edges.items()}
    for a, b in itertools.combinations(keys, 2):
        for va, vb in itertools.product(edges[a], edges[b]):
            yield {**first, a: va, b: vb}


def _sampled(corner: dict[str, Any], params: DictConfig) -> dict[str, Any]:
    """The values a trial drawing ``corner`` samples: a knob whose ``when`` fails is left out
    (it keeps the base's value), as :func:`~gru_exp.sweep.space.suggest_overrides` does."""
    chosen: dict[str, Any] = {}
    for key, spec in params.items():
        if spec.when and any(cond in params and chosen.get(cond, object()) not in list(allowed)
                             for cond, allowed in spec.when.items()):
            continue
        chosen[key] = corner[key]
    return chosen


def _problems(base: DictConfig, sampled: dict[str, Any], compose: Callable[[], DictConfig]) -> list[str]:
    cfg = base.copy()
    try:
        for key, value in sampled.items():
            OmegaConf.update(cfg, key, value, merge=False)
    except Exception:  # a value the structured config takes only through Hydra's parser: compose it
        cfg = compose()
    try:
        validate(cfg)
    except ConfigError as exc:
        return exc.problems
    return []


def _mentions(problem: str, key: str) -> bool:
    return any(f"{key}{end}" in problem for end in ("=", " ", ")", ","))


def corner_problem(sc: DictConfig, base: DictConfig, compose: Callable[[Sequence[str]], DictConfig],
                   overrides: Callable[[dict[str, Any]], list[str]]) -> str:
    """The first combination of searched values training would reject by a rule between knobs,
    as one sentence with the fix; "" when every corner passes. ``base`` is the composed base;
    ``overrides`` turns sampled values into a trial's overrides (to compose when needed)."""
    params = sc.params
    edges = {k: edge_values(spec) for k, spec in params.items()}
    seen: set[str] = set()
    for corner in _corners(edges):
        sampled = _sampled(corner, params)
        key_of = json_key(sampled)
        if key_of in seen:
            continue
        seen.add(key_of)
        for problem in _problems(base, sampled, lambda: compose(overrides(sampled))):
            involved = [k for k in sampled if _mentions(problem, k)]
            if not involved:
                continue  # the base's own problem, refused or allowed by check_sweep
            return _explain(problem, involved, sampled, params, base)
    return ""


def json_key(values: dict[str, Any]) -> str:
    return repr(sorted(values.items(), key=lambda kv: kv[0]))


def _explain(problem: str, involved: list[str], sampled: dict[str, Any], params: DictConfig,
             base: DictConfig) -> str:
    own = problem.split("=", 1)[0]
    drawn = ", ".join(f"{k}={sampled[k]!r}" for k in involved)
    others = [k for k in params if k != own and k not in involved and _mentions(problem, k)]
    fixed = [k for k in _keys_in(problem, base) if k not in params]
    text = (f"Invalid sweep: a trial can draw {drawn}" + (f" (with the base's {', '.join(fixed)})" if fixed else "")
            + f", which training rejects: {problem}. That trial would fail at run time. ")
    conds = [k for k in involved if k != own] + others
    if own in params and conds:
        cond = conds[0]
        spec = params[cond]
        good = [v for v in edge_values(spec) if v != sampled.get(cond)] if spec.type == "categorical" else ["..."]
        text += (f"Sample {own} only where it applies: give it `when: {{{cond}: {good}}}` (listed after {cond}), "
                 "or narrow the ranges so no such combination can be drawn.")
    elif own in params and fixed:
        text += (f"{own} is searched but {', '.join(fixed)} is fixed by the base: search {fixed[0]} too and give "
                 f"{own} `when: {{{fixed[0]}: [...]}}`, change the base, or leave {own} out of params.")
    else:
        text += "Narrow the ranges, give the searched knob a `when:` on the knob the rule names, or change the base."
    return text


def _keys_in(problem: str, base: DictConfig) -> list[str]:
    """Dotted training keys a problem names (e.g. model.bigram_buckets), in order."""
    found = []
    for word in problem.replace("=", " ").replace("(", " ").replace(")", " ").replace(",", " ").split():
        word = word.strip(".;:`")
        if "." in word and OmegaConf.select(base, word, default=_MISSING) is not _MISSING and word not in found:
            found.append(word)
    return found


def choice_by_test_problems(sc: DictConfig, base: DictConfig) -> list[str]:
    """A study that would choose by a test score: trials without a validation split (data.val_size=0,
    in the base or searched) are evaluated on the test set, so an eval_* objective (and the pruner
    that reads it) would be a test score."""
    evals = [str(o.metric) for o in objective_list(sc) if str(o.metric).startswith("eval_")]
    spec = sc.params.get("data.val_size")
    if spec is not None:
        zero = 0 in (spec.choices or []) or (spec.choices is None and spec.low is not None and spec.low <= 0)
    else:
        zero = base.data.val_size == 0
    if not evals or not zero:
        return []
    return [f"data.val_size=0 evaluates trials on the test set, so objective {evals[0]} would choose by a test "
            "score; keep a validation split (data.val_size > 0) and refit afterwards (data.val_size=0 "
            "trainer.test_epoch=last)"]
