"""Stage 3 (issue #30, benchmarks/ensemble_search): combine the GRU with the linear members, every choice made on the run's
validation split only; test scored once per final choice (method x split).

For each split (cache/gru_<run>.npz + cache/members_<run>.npz) and each method:
  - a member family's hyper-parameters (C, beta) are chosen on validation, by the rule's criterion
    (accuracy, ties: first in grid order = smaller C; or log-loss) of the member alone;
  - LR members give probabilities sigmoid(score); the interpolated NB-LR ("nbi") and the SVM ("svm") give
    scores that are calibrated by Platt scaling fitted on validation;
  - "avg-acc"/"avg-nll": P = sum_k w_k P_k, w on the simplex (step 0.05) chosen by validation accuracy
    (ties: first in grid order = smaller GRU weight) / validation log-loss;
  - "stack": logistic regression (C=1, lbfgs) on the members' logits (GRU: log p1/p0), fitted on validation.
Each method's choices are made on all of validation for the test score; its validation estimate "oof" is
the 10-fold cross-fitted one (every choice re-made on 9/10 of validation, scored on the other 1/10), so
methods can be compared on validation without the in-sample optimism. The "meta" rules pick, per split,
the method with the best oof validation log-loss (or accuracy) among all candidates and report its test.
"""
from __future__ import annotations

import argparse, itertools, json, os
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

CACHE = Path(os.environ.get('GRU_EXP_HOME', '.')) / 'outputs' / 'ensemble_search'
STEP = 0.05


def sig(s):
    return 1.0 / (1.0 + np.exp(-np.clip(s, -40, 40)))


def acc(p1, y):
    return float(((p1 > 0.5).astype(int) == y).mean())  # p1 = P(pos); ties (0.5) -> neg, as argmax does


def nll(p1, y):
    p = np.clip(np.where(y == 1, p1, 1 - p1), 1e-12, 1.0)
    return float(-np.log(p).mean())


def simplex(k, step=STEP):
    n = int(round(1 / step))
    return np.array([c for c in itertools.product(range(n + 1), repeat=k - 1) if sum(c) <= n], dtype=float) / n


def weights_grid(k):
    g = simplex(k)  # first k-1 weights; the last member gets the rest
    return np.hstack([g, 1 - g.sum(axis=1, keepdims=True)])


FAMILIES = {  # family -> (config keys, calibrated by Platt?)
    "nb4": ([f"nb_C{c:g}" for c in (0.1, 0.3, 1, 3)], False),  # the existing peer's grid
    "nb": ([f"nb_C{c:g}" for c in (0.1, 0.3, 1, 3, 10)], False),
    "nbi": ([f"nbi_C{c:g}_b{b:g}" for c in (0.1, 0.3, 1, 3, 10) for b in (0.25, 0.5, 0.75)]
            + [f"nb_C{c:g}" for c in (0.1, 0.3, 1, 3, 10)], True),
    "svm": ([f"svm_C{c:g}_b{b:g}" for c in (0.01, 0.1, 1) for b in (0.25, 0.5, 0.75, 1)], True),
    "word": ([f"word_C{c:g}" for c in (1, 3, 10, 30, 100)], False),
    "char": ([f"char_C{c:g}" for c in (0.1, 0.3, 1, 3, 10)], False),
}


class Split:
    def __init__(self, tag):
        g = np.load(CACHE / f"gru_{tag}.npz")
        m = np.load(CACHE / f"members_{tag}.npz")
        self.tag, self.seed = tag, int(g["split_seed"])
        self.y_val, self.y_test = g["y_val"], g["y_test"]
        eps = 1e-7
        self.s = {"gru": {part: np.log(np.clip(g[f"gru_{part}"][:, 1], eps, 1)) - np.log(np.clip(g[f"gru_{part}"][:, 0], eps, 1))
                          for part in ("val", "test")}}
        self.p_gru = {part: g[f"gru_{part}"][:, 1] for part in ("val", "test")}
        for key in m.files:
            name, part = key.split("|")
            self.s.setdefault(name, {})[part] = m[key]
        self.times = json.loads((CACHE / f"members_{tag}.json").read_text())

    def has(self, fam):
        return all(k in self.s for k in FAMILIES[fam][0]) if fam != "gru" else True


def platt(s_fit, y_fit, iters=50):
    """Platt scaling P = sigmoid(a s + b), (a, b) by Newton's method on the log-loss (tiny ridge for safety)."""
    x = np.column_stack([s_fit, np.ones_like(s_fit)])
    theta = np.array([1.0 / max(np.std(s_fit), 1e-6), 0.0])
    for _ in range(iters):
        p = sig(x @ theta)
        grad = x.T @ (p - y_fit) + 1e-6 * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    a, b = theta
    return lambda s: sig(a * s + b)


_CACHE: dict = {}


def member_probs(sp, fam, fit, rule):
    """Choose the family's config on val[fit] by `rule`; return (key, P(pos) on val, P(pos) on test)."""
    ck = (sp.tag, fam, rule, hash(fit.tobytes()))
    if ck in _CACHE:
        return _CACHE[ck]
    _CACHE[ck] = out = _member_probs(sp, fam, fit, rule)
    return out


def _member_probs(sp, fam, fit, rule):
    y = sp.y_val[fit]
    if fam == "gru":
        return "gru", sp.p_gru["val"], sp.p_gru["test"]
    keys, calib = FAMILIES[fam]
    best = None
    for key in keys:
        sv, st = sp.s[key]["val"], sp.s[key]["test"]
        f = platt(sv[fit], y) if calib else sig
        pv = f(sv)
        crit = (-acc(pv[fit], y)) if rule == "acc" else nll(pv[fit], y)
        if best is None or crit < best[0] - 1e-12:
            best = (crit, key, pv, f(st))
    return best[1:]


def method(sp, fams, kind, fit):
    """Fit a method on val[fit]; return (P(pos) on all val, P(pos) on test, description)."""
    y = sp.y_val[fit]
    rule = "acc" if kind == "avg-acc" else "nll"
    mem = [member_probs(sp, f, fit, rule) for f in fams]
    if kind == "stack":
        logit = lambda p: np.log(np.clip(p, 1e-7, 1)) - np.log(np.clip(1 - p, 1e-7, 1))
        xv = np.column_stack([logit(m[1]) for m in mem])
        xt = np.column_stack([logit(m[2]) for m in mem])
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(xv[fit], y)
        return lr.predict_proba(xv)[:, 1], lr.predict_proba(xt)[:, 1], \
            f"{'+'.join(m[0] for m in mem)} coef {np.round(lr.coef_[0], 2).tolist()}"
    if len(mem) == 1:
        return mem[0][1], mem[0][2], mem[0][0]
    W = weights_grid(len(mem))
    PV = np.column_stack([m[1] for m in mem])  # n_val x k
    comb = PV[fit] @ W.T  # n_fit x n_grid
    if kind == "avg-acc":
        crit = -(((comb > 0.5).astype(int) == y[:, None]).mean(axis=0))
    else:
        pt = np.clip(np.where(y[:, None] == 1, comb, 1 - comb), 1e-12, 1)
        crit = -np.log(pt).mean(axis=0)
    w = W[int(np.argmin(crit))]  # ties: first in grid order
    PT = np.column_stack([m[2] for m in mem])
    return PV @ w, PT @ w, f"{'+'.join(m[0] for m in mem)} w {np.round(w, 2).tolist()}"


def evaluate(sp, fams, kind, folds=10):
    n = len(sp.y_val)
    allv = np.arange(n)
    pv, pt, desc = method(sp, fams, kind, allv)
    oof = np.zeros(n)
    for tr, ho in StratifiedKFold(folds, shuffle=True, random_state=0).split(allv, sp.y_val):
        oof[ho] = method(sp, fams, kind, tr)[0][ho]
    return dict(val=acc(pv, sp.y_val), oof=acc(oof, sp.y_val), oof_nll=nll(oof, sp.y_val),
                test=acc(pt, sp.y_test), desc=desc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tags", nargs="+")
    ap.add_argument("--out", type=Path, default=CACHE / "combine.json")
    ap.add_argument("--hide-test", action="store_true", help="debugging: do not print test scores")
    args = ap.parse_args()
    splits = [Split(t) for t in args.tags]
    if args.hide_test:
        for sp in splits:  # scores replaced by noise: the methods run, nothing about test is seen
            sp.y_test = np.zeros_like(sp.y_test)
    sets = [("gru",), ("nb4",), ("nb",), ("nbi",), ("svm",), ("word",), ("char",),
            ("gru", "nb4"), ("gru", "nb"), ("gru", "nbi"), ("gru", "svm"), ("gru", "word"), ("gru", "char"),
            ("gru", "nb", "char"), ("gru", "nb", "word"), ("gru", "nbi", "char"), ("gru", "svm", "char"),
            ("gru", "svm", "word"), ("gru", "nb", "word", "char"), ("gru", "svm", "word", "char"),
            ("gru", "nbi", "word", "char"), ("gru", "nb", "svm", "word", "char")]
    results = {}
    for sp in splits:
        for fams in sets:
            if not all(sp.has(f) for f in fams):
                continue
            for kind in (("avg-acc", "avg-nll") if len(fams) > 1 else ("avg-acc", "avg-nll")) + (("stack",) if len(fams) > 1 else ()):
                name = f"{'+'.join(fams)} {kind}" if len(fams) > 1 else f"{fams[0]} alone ({kind[4:]})"
                r = evaluate(sp, fams, kind)
                results.setdefault(name, {})[sp.seed] = r
                print(f"split {sp.seed:>2} {name:32s} val {100 * r['val']:.2f} oof {100 * r['oof']:.2f} "
                      f"oof-nll {r['oof_nll']:.4f} -> test {100 * r['test']:.2f}  [{r['desc']}]", flush=True)
    # meta rules: per split, the candidate (multi-member methods) with the best oof val log-loss / accuracy
    for rule, key in (("oof log-loss", lambda r: r["oof_nll"]), ("oof accuracy", lambda r: -r["oof"])):
        name = f"META best {rule}"
        for sp in splits:
            cands = [(key(res[sp.seed]), n) for n, res in results.items() if sp.seed in res and "+" in n]
            best = min(cands)[1]
            results.setdefault(name, {})[sp.seed] = dict(results[best][sp.seed], desc=best)
            r = results[name][sp.seed]
            print(f"split {sp.seed:>2} {name:32s} val {100 * r['val']:.2f} oof {100 * r['oof']:.2f} "
                  f"oof-nll {r['oof_nll']:.4f} -> test {100 * r['test']:.2f}  [{best}]", flush=True)
    print()
    for name, res in results.items():
        for label, seeds in (("splits 1-3", [1, 2, 3]), ("all splits", sorted(res))):
            v = np.array([100 * res[s]["test"] for s in seeds if s in res])
            o = np.array([100 * res[s]["oof"] for s in seeds if s in res])
            if len(v) > 1 and (label == "splits 1-3" or len(res) > 3):
                print(f"{name:36s} {label}: test {v.mean():.2f} ± {v.std(ddof=1):.2f} (n={len(v)}; oof val {o.mean():.2f})")
    args.out.write_text(json.dumps({n: {str(s): r for s, r in res.items()} for n, res in results.items()}, indent=1))
    for sp in splits:
        print(f"split {sp.seed} fit times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in sp.times.items()))


if __name__ == "__main__":
    main()
