"""Stage 2 (issue #30, benchmarks/ensemble_search): for one GRU run's split (its cache/gru_<run>.npz from extract.py), fit the linear
members on the run's training reviews only and save their scores (logits) on the run's validation split and
test set, for every hyper-parameter value of their grids, to cache/members_<run>.npz (+ fit times in .json).
No choice is made here; the choices are made on validation in combine.py.

Members (gru-exp tokens unless said):
  nb    NB log-count ratios on binarized uni+bi+trigrams + LR (peers.py's NBRatios/_lr exactly), C grid
        0.1 .. 10; plus Wang & Manning's interpolation on its weights w' = (1-beta) mean|w| + beta w,
        beta in 0.25, 0.5, 0.75 ("nbi")
  nbsvm the same features, L2-loss linear SVM (liblinear, LinearSVC) + the interpolation (W&M's NBSVM)
  word  TF-IDF (sublinear tf, l2) word uni+bigrams + LR
  char  TF-IDF (sublinear tf, l2) char_wb 2-5-grams of the raw review (lower-cased, <br /> -> space), min_df 2, + LR
"""
from __future__ import annotations

import argparse, json, os, pickle, sys, time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: peers
CACHE = Path(os.environ.get('GRU_EXP_HOME', '.')) / 'outputs' / 'ensemble_search'
from peers import NBRatios, _lr, _vectorizer  # noqa: E402

NB_C = (0.1, 0.3, 1.0, 3.0, 10.0)
BETAS = (0.25, 0.5, 0.75)
SVM_C = (0.01, 0.1, 1.0)
TFIDF_C = {"word": (1.0, 3.0, 10.0, 30.0, 100.0), "char": (0.1, 0.3, 1.0, 3.0, 10.0)}


def acc_s(s, y):
    return float(((s > 0).astype(int) == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gru_npz", type=Path)
    ap.add_argument("--members", default="nb,nbsvm,word,char")
    args = ap.parse_args()
    g = np.load(args.gru_npz)
    tag = args.gru_npz.stem[len("gru_"):]
    out_p, times_p = CACHE / f"members_{tag}.npz", CACHE / f"members_{tag}.json"
    scores = dict(np.load(out_p)) if out_p.exists() else {}
    times = json.loads(times_p.read_text()) if times_p.exists() else {}
    with open(CACHE / "docs.pkl", "rb") as fh:
        docs = pickle.load(fh)
    tr, va, te = g["train_i"], g["val_i"], g["test_i"]
    y_tr, y_va = g["y_train"], g["y_val"]  # the test labels are not read here
    want = args.members.split(",")

    def save():
        np.savez(out_p, **scores)
        times_p.write_text(json.dumps(times, indent=1))

    def report(key):
        print(f"  {key}: val {100 * acc_s(scores[key + '|val'], y_va):.2f}", flush=True)  # test is not looked at here

    if "nb" in want or "nbsvm" in want:
        t0 = time.perf_counter()
        nb = NBRatios()
        x_tr = nb.fit_transform([docs["train"]["tokens"][i] for i in tr], y_tr)
        x_va = nb.transform([docs["train"]["tokens"][i] for i in va])
        x_te = nb.transform([docs["test"]["tokens"][i] for i in te])
        feat_s = time.perf_counter() - t0
        print(f"split {g['split_seed']}: NB features {x_tr.shape[1]:,} ({feat_s:.0f} s)", flush=True)
        times["nb_features"] = feat_s
        if "nb" in want:
            for c in NB_C:
                t0 = time.perf_counter()
                m = _lr(c).fit(x_tr, y_tr)
                times[f"nb_C{c:g}"] = time.perf_counter() - t0
                w, b = m.coef_.ravel(), float(m.intercept_[0])
                for part, x in (("val", x_va), ("test", x_te)):
                    scores[f"nb_C{c:g}|{part}"] = x @ w + b
                    for beta in BETAS:
                        wi = (1 - beta) * np.abs(w).mean() + beta * w
                        scores[f"nbi_C{c:g}_b{beta:g}|{part}"] = x @ wi + b
                report(f"nb_C{c:g}")
                for beta in BETAS:
                    report(f"nbi_C{c:g}_b{beta:g}")
                print(f"  (fit {times[f'nb_C{c:g}']:.0f} s)", flush=True)
            save()
        if "nbsvm" in want:
            for c in SVM_C:
                t0 = time.perf_counter()
                m = LinearSVC(C=c, loss="squared_hinge", dual=True, max_iter=5000).fit(x_tr, y_tr)
                times[f"svm_C{c:g}"] = time.perf_counter() - t0
                w, b = m.coef_.ravel(), float(m.intercept_[0])
                for part, x in (("val", x_va), ("test", x_te)):
                    for beta in BETAS + (1.0,):
                        wi = (1 - beta) * np.abs(w).mean() + beta * w
                        scores[f"svm_C{c:g}_b{beta:g}|{part}"] = x @ wi + b
                for beta in BETAS + (1.0,):
                    report(f"svm_C{c:g}_b{beta:g}")
                print(f"  (fit {times[f'svm_C{c:g}']:.0f} s)", flush=True)
            save()
        del x_tr, x_va, x_te, nb

    for kind in ("word", "char"):
        if kind not in want:
            continue
        t0 = time.perf_counter()
        if kind == "word":
            vec = _vectorizer(TfidfVectorizer, ngram_range=(1, 2), sublinear_tf=True)
            field = "tokens"
        else:
            vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                  lowercase=True, dtype=np.float32)
            field = "raw"
        def get(split, idx):
            d = [docs[split][field][i] for i in idx]
            return d if field == "tokens" else [s.replace("<br />", " ") for s in d]
        x_tr = vec.fit_transform(get("train", tr))
        x_va, x_te = vec.transform(get("train", va)), vec.transform(get("test", te))
        times[f"{kind}_features"] = time.perf_counter() - t0
        print(f"split {g['split_seed']}: {kind} features {x_tr.shape[1]:,}, nnz {x_tr.nnz:,} "
              f"({times[f'{kind}_features']:.0f} s)", flush=True)
        for c in TFIDF_C[kind]:
            t0 = time.perf_counter()
            m = _lr(c).fit(x_tr, y_tr)
            times[f"{kind}_C{c:g}"] = time.perf_counter() - t0
            for part, x in (("val", x_va), ("test", x_te)):
                scores[f"{kind}_C{c:g}|{part}"] = np.asarray(m.decision_function(x), dtype=np.float64)
            report(f"{kind}_C{c:g}")
            print(f"  (fit {times[f'{kind}_C{c:g}']:.0f} s)", flush=True)
        save()
        del x_tr, x_va, x_te, vec


if __name__ == "__main__":
    main()
