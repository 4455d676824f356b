"""Stage 1 (issue #30, benchmarks/ensemble_search): for each run folder, rebuild its splits from its record (as ensemble_peer.py
does), compute the GRU's probabilities on validation and test from its checkpoint, and save them with the
split's document indices and labels to cache/gru_<run>.npz. Also saves the archive's reviews once (gru-exp
tokens and raw text) to cache/docs.pkl. Run from the repository with gru-exp installed (pip install -e '.[peers]')."""
from __future__ import annotations

import argparse, os, pickle, re, sys, tarfile, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: ensemble_peer, peers
from ensemble_peer import documents, acc  # noqa: E402

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
    from gru_exp.train import device as runtime
    runtime.limit_threads(1)
    runtime.import_paddle()
    runtime.flush_denormals()
    from gru_exp.config.values import split_seed
    from gru_exp.data import sources
    from gru_exp.data.imdb import load_imdb
    from gru_exp.train.run import load_data
    from gru_exp.use.infer import load_model, probabilities
    from gru_exp.use.runs import usable_run

    for run_dir in args.runs:
        out = CACHE / f"gru_{run_dir.resolve().name}.npz"
        if out.exists():
            print(f"{out.name} exists", flush=True)
            continue
        t0 = time.perf_counter()
        run = usable_run(run_dir.resolve())
        rc = run.config
        archive = Path(rc.data.path)
        splits = load_data(rc, sources.find(rc.data))
        arrays = load_imdb(archive, rc.data.cutoff, Path(rc.data.cache_dir))
        train_i, val_i = documents(splits.train, arrays.offsets["train"]), documents(splits.eval, arrays.offsets["train"])
        test_i = documents(splits.test, arrays.offsets["test"])
        y_train, y_val, y_test = splits.train.labels, splits.eval.labels, splits.test.labels
        assert (arrays.labels["train"][train_i] == y_train).all() and (arrays.labels["train"][val_i] == y_val).all()
        assert (arrays.labels["test"][test_i] == y_test).all() and not set(train_i) & set(val_i)
        model = load_model(run)
        size = rc.trainer.eval_batch_size
        gv, gt = (probabilities(model, s, rc.model.use_lengths, size) for s in (splits.eval, splits.test))
        np.savez(out, train_i=train_i, val_i=val_i, test_i=test_i, y_train=y_train, y_val=y_val, y_test=y_test,
                 gru_val=gv, gru_test=gt, split_seed=split_seed(rc), trainer_seed=rc.trainer.seed,
                 archive=str(archive), experiment_name=str(rc.name))
        print(f"{run_dir.name}: split seed {split_seed(rc)} trainer seed {rc.trainer.seed}: GRU val {100 * acc(gv, y_val):.2f} "
              f"test {100 * acc(gt, y_test):.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        docs_p = CACHE / "docs.pkl"
        if not docs_p.exists():
            t0 = time.perf_counter()
            with open(docs_p, "wb") as fh:
                pickle.dump(read_docs(archive), fh, protocol=pickle.HIGHEST_PROTOCOL)
            print(f"docs.pkl written ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
