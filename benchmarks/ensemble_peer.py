"""A finished gru-exp IMDB run and the NB-LR peer, their probabilities averaged (issue #30): how far
the combination gets, with every choice made on the run's own validation split.

For each run folder (a finished run on the IMDB archive, e.g. ``experiment=imdb_bigram``):

1. the run's splits rebuilt from its record (its split seed, validation split and test set), and the
   GRU's class probabilities on validation and test from the checkpoint it was scored with
   (``gru_exp.use.infer``, as ``gru-exp predict`` computes them);
2. benchmarks/peers.py's NB-LR (NB log-count ratios on binarized uni+bi+trigrams, logistic
   regression; every word kept, gru-exp's tokenizer) fitted on the run's training reviews only,
   its C chosen on the run's validation split among 0.1, 0.3, 1, 3;
3. P = w P_gru + (1 - w) P_nb, w in 0, 0.05, ..., 1 chosen by validation accuracy (ties: the
   smaller w), and, as a second rule, by validation log-loss; scored once on test. Runs trained on
   the same reviews (the same split seed and data knobs: the same training, validation and test
   documents) are one group: the first k of its GRU runs, in the order given, are averaged with
   equal weights (a line for each k), and the peer is fitted once per group.

    pip install -e '.[peers]'
    python benchmarks/ensemble_peer.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import NBRatios, _lr  # noqa: E402 (the peer exactly as measured there)

C_GRID = (0.1, 0.3, 1.0, 3.0)
WEIGHTS = np.linspace(0.0, 1.0, 21)
_DOC = re.compile(r"aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")


def read_tokens(archive: Path) -> dict[str, list[list[str]]]:
    """Each split's reviews as token lists, in gru-exp's order (all pos, then all neg, archive order)."""
    from gru_exp.data.tokenize import tokenize

    found: dict[tuple[str, str], list[list[str]]] = {(s, c): [] for s in ("train", "test") for c in ("pos", "neg")}
    with tarfile.open(archive) as tar:
        for member in tar:
            match = _DOC.match(member.name)
            fh = tar.extractfile(member) if match else None
            if match and fh is not None:
                found[(match.group(1), match.group(2))].append([t.decode("latin-1") for t in tokenize(fh.read())])
    return {s: found[(s, "pos")] + found[(s, "neg")] for s in ("train", "test")}


def documents(split, offsets: np.ndarray) -> np.ndarray:
    """The archive split's document numbers of ``split``'s reviews (their first tokens' offsets)."""
    starts = offsets[:-1]
    if (np.diff(starts) <= 0).any():
        sys.exit("a review without tokens makes the documents ambiguous; this script needs IMDB's archive")
    return np.searchsorted(starts, split.starts)


def acc(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(axis=1) == y).mean())


def nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def run_scores(run_dir: Path) -> SimpleNamespace:
    """A finished run's documents (indices into the archive's train and test reviews), labels and
    the GRU's class probabilities on validation and test, from its record and scored checkpoint
    (paddle loaded: call :func:`setup` first)."""
    from gru_exp.config.values import split_seed
    from gru_exp.data import sources
    from gru_exp.data.imdb import load_imdb
    from gru_exp.train.run import load_data
    from gru_exp.use.infer import load_model, probabilities
    from gru_exp.use.runs import usable_run

    run = usable_run(run_dir)
    rc = run.config
    archive = Path(rc.data.path)
    splits = load_data(rc, sources.find(rc.data))
    arrays = load_imdb(archive, rc.data.cutoff, Path(rc.data.cache_dir))
    train_i, val_i = documents(splits.train, arrays.offsets["train"]), documents(splits.eval, arrays.offsets["train"])
    test_i = documents(splits.test, arrays.offsets["test"])
    y = (splits.train.labels, splits.eval.labels, splits.test.labels)
    assert (arrays.labels["train"][train_i] == y[0]).all() and (arrays.labels["train"][val_i] == y[1]).all()
    assert (arrays.labels["test"][test_i] == y[2]).all() and not set(train_i) & set(val_i)
    model = load_model(run)
    gru_val, gru_test = (probabilities(model, s, rc.model.use_lengths, rc.trainer.eval_batch_size)
                         for s in (splits.eval, splits.test))
    return SimpleNamespace(config=rc, archive=archive, split_seed=split_seed(rc), train_i=train_i, val_i=val_i,
                           test_i=test_i, y=y, gru_val=gru_val, gru_test=gru_test)


def setup() -> None:
    """One thread, paddle loaded, flush-to-zero: as a training scores its runs."""
    from gru_exp.train import device as runtime

    runtime.limit_threads(1)
    runtime.import_paddle()
    runtime.flush_denormals()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    setup()
    tokens: dict[str, dict[str, list[list[str]]]] = {}
    groups: dict[tuple, dict] = {}  # runs on the same reviews (split identity) -> their members
    for run_dir in dict.fromkeys(p.resolve() for p in args.runs):  # a run given twice counts once
        r = run_scores(run_dir)
        key = (str(r.archive), r.train_i.tobytes(), r.val_i.tobytes(), r.test_i.tobytes())
        group = groups.setdefault(key, dict(archive=r.archive, seed=r.split_seed, train_i=r.train_i, val_i=r.val_i,
                                            test_i=r.test_i, y=r.y, members=[]))
        group["members"].append((run_dir.name, r.gru_val, r.gru_test))
        print(f"{run_dir.name} (seed {r.config.trainer.seed}): GRU val {100 * acc(r.gru_val, r.y[1]):.2f} "
              f"test {100 * acc(r.gru_test, r.y[2]):.2f}", flush=True)

    rows = []
    for group in groups.values():
        archive, (y_train, y_val, y_test) = group["archive"], group["y"]
        if str(archive) not in tokens:
            tokens[str(archive)] = read_tokens(archive)
        docs = tokens[str(archive)]
        start = time.perf_counter()
        nb = NBRatios()
        x_train = nb.fit_transform([docs["train"][i] for i in group["train_i"]], y_train)
        x_val = nb.transform([docs["train"][i] for i in group["val_i"]])
        x_test = nb.transform([docs["test"][i] for i in group["test_i"]])
        fitted = {c: _lr(c).fit(x_train, y_train) for c in C_GRID}
        c = max(C_GRID, key=lambda c: (fitted[c].score(x_val, y_val), -c))
        nb_val, nb_test = fitted[c].predict_proba(x_val), fitted[c].predict_proba(x_test)
        nb_s = time.perf_counter() - start
        # the first k GRU runs given for these reviews averaged with equal weights (k = 1 .. all), then w
        # chosen on validation: by accuracy (the rule of section 12) and by log-loss (smoother)
        for k in range(1, len(group["members"]) + 1):
            gru_val = np.mean([m[1] for m in group["members"][:k]], axis=0)
            gru_test = np.mean([m[2] for m in group["members"][:k]], axis=0)
            row = dict(seed=group["seed"], k=k, gru_val=acc(gru_val, y_val), gru_test=acc(gru_test, y_test), nb_c=c,
                       nb_val=acc(nb_val, y_val), nb_test=acc(nb_test, y_test), nb_s=nb_s)
            for rule, score in (("acc", acc), ("nll", lambda p, y: -nll(p, y))):
                val = [score(w * gru_val + (1 - w) * nb_val, y_val) for w in WEIGHTS]
                w = float(WEIGHTS[int(np.argmax(val))])  # ties: the smaller w
                row[rule] = dict(w=w, val=acc(w * gru_val + (1 - w) * nb_val, y_val),
                                 test=acc(w * gru_test + (1 - w) * nb_test, y_test))
            rows.append(row)
            print(f"split seed {row['seed']}, first {k} GRU run(s) averaged: val {100 * row['gru_val']:.2f} test "
                  f"{100 * row['gru_test']:.2f}; NB-LR C={c:g} val {100 * row['nb_val']:.2f} test "
                  f"{100 * row['nb_test']:.2f} ({nb_s:.0f} s); average, w by val accuracy: w={row['acc']['w']:.2f} "
                  f"val {100 * row['acc']['val']:.2f} -> test {100 * row['acc']['test']:.2f}; w by val log-loss: "
                  f"w={row['nll']['w']:.2f} val {100 * row['nll']['val']:.2f} -> test {100 * row['nll']['test']:.2f}",
                  flush=True)
    for k in sorted({r["k"] for r in rows}):
        same = [r for r in rows if r["k"] == k]
        if len(same) > 1:
            for name, values in (("GRU", [r["gru_test"] for r in same]), ("NB-LR", [r["nb_test"] for r in same]),
                                 ("average, w by accuracy", [r["acc"]["test"] for r in same]),
                                 ("average, w by log-loss", [r["nll"]["test"] for r in same])):
                v = 100 * np.array(values)
                print(f"{k} GRU run(s): {name} test {v.mean():.2f} ± {v.std(ddof=1):.2f} over {len(same)} splits")


if __name__ == "__main__":
    main()
