"""Stage 1 (issue #30, benchmarks/ensemble_search): for each run folder, rebuild its splits from its record (as ensemble_peer.py
does), compute the GRU's probabilities on validation and test from its checkpoint, and save them with the
split's document indices and labels to cache/gru_<run>.npz. Also saves the archive's reviews once (gru-exp
tokens and raw text) to cache/docs.pkl. Run from the repository with gru-exp installed (pip install -e '.[peers]')."""
from __future__ import annotations

import argparse, os, pickle, re, sys, tarfile, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: ensemble_peer, peers
from ensemble_peer import acc, run_scores, setup  # noqa: E402

CACHE = Path(os.environ.get('GRU_EXP_HOME', '.')) / 'outputs' / 'ensemble_search'  # inputs and member scores
_DOC = re.compile(r"aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")


def read_docs(archive: Path) -> dict:
    """{"train"|"test": {"tokens": [...], "raw": [...]}} in gru-exp's order (all pos, then all neg, archive order)."""
    from gru_exp.data.tokenize import tokenize
    found = {(s, c): ([], []) for s in ("train", "test") for c in ("pos", "neg")}
    with tarfile.open(archive) as tar:
        for member in tar:
            m = _DOC.match(member.name)
            fh = tar.extractfile(member) if m else None
            if m and fh is not None:
                data = fh.read()
                found[(m.group(1), m.group(2))][0].append([t.decode("latin-1") for t in tokenize(data)])
                found[(m.group(1), m.group(2))][1].append(data.decode("utf-8", "replace"))
    return {s: dict(tokens=found[(s, "pos")][0] + found[(s, "neg")][0], raw=found[(s, "pos")][1] + found[(s, "neg")][1])
            for s in ("train", "test")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    setup()
    for run_dir in args.runs:
        out = CACHE / f"gru_{run_dir.resolve().name}.npz"
        if out.exists():
            print(f"{out.name} exists", flush=True)
            continue
        t0 = time.perf_counter()
        r = run_scores(run_dir.resolve())
        (y_train, y_val, y_test), archive = r.y, r.archive
        np.savez(out, train_i=r.train_i, val_i=r.val_i, test_i=r.test_i, y_train=y_train, y_val=y_val, y_test=y_test,
                 gru_val=r.gru_val, gru_test=r.gru_test, split_seed=r.split_seed, trainer_seed=r.config.trainer.seed,
                 archive=str(archive), experiment_name=str(r.config.name))
        print(f"{run_dir.name}: split seed {r.split_seed} trainer seed {r.config.trainer.seed}: GRU val "
              f"{100 * acc(r.gru_val, y_val):.2f} test {100 * acc(r.gru_test, y_test):.2f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        docs_p = CACHE / "docs.pkl"
        if not docs_p.exists():
            t0 = time.perf_counter()
            with open(docs_p, "wb") as fh:
                pickle.dump(read_docs(archive), fh, protocol=pickle.HIGHEST_PROTOCOL)
            print(f"docs.pkl written ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
