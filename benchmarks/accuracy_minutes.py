"""The cost side of docs/results.md section 10 as one figure: test accuracy against minutes of one
training, the GRU variants beside the linear peers (issue #30, item 3).

    python benchmarks/accuracy_minutes.py [--out docs/results/accuracy_minutes.png]

The points are the measured rows of section 10's table "The cost side: accuracy against minutes"
(each from the section named in ``source``; minutes on one core of this 2-core machine, the peers'
including their C search); vertical bars are the seed std where 3 seeds were run, horizontal ones
the range of times measured. Nothing is measured
here: change a row only with a new measurement in results.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# (label, test accuracy %, seed std or None, minutes of one training (low, high), source in docs/results.md)
ROWS = [
    ("TF-IDF uni+bigrams + LR", 90.65, None, (1.5 + 0.8, 1.5 + 0.8), "section 10, peers: refit + C search"),
    ("NB log-count ratios uni+bi+trigrams + LR", 91.50, None, (1.5 + 5.9, 1.5 + 5.9), "section 10, peers"),
    ("imdb_attention_wd (GRU, no bag)", 89.70, 0.12, (3.5, 5.0), "section 8"),
    ("imdb_bigram (GRU + hashed bigrams)", 90.83, 0.11, (4.1, 5.5), "section 9; section 10, stage 5"),
    ("imdb_bigram, trigrams, 5 epochs", 90.77, 0.11, (4.4, 4.9), "section 10, stage 5"),
    ("imdb_bigram, trigrams, 1M rows", 90.59, None, (6.6, 6.6), "section 10, stage 5 (seed 42 only)"),
    ("imdb_ngrams (GRU + NB n-gram model inside)", 91.80, 0.23, (7.5, 9.5), "section 16 (two runs at a time, shared)"),
    ("notebook's configuration (same code)", 86.28, 0.66, (50.0, 59.0), "the answer at the top (50-59 min)"),
]

OFFSETS = {"imdb_bigram (GRU + hashed bigrams)": (-30, 14), "imdb_bigram, trigrams, 5 epochs": (8, -14),
           "imdb_bigram, trigrams, 1M rows": (6, -12), "TF-IDF uni+bigrams + LR": (-40, 8)}  # labels apart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results"
                        / "accuracy_minutes.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for label, acc, std, (low, high), _ in ROWS:
        peer = "LR" in label
        mid = (low * high) ** 0.5  # the middle of the range on the log axis; the bar spans the range
        ax.errorbar(mid, acc, yerr=std, xerr=[[mid - low], [high - mid]], fmt="s" if peer else "o",
                    color="tab:orange" if peer else "tab:blue", capsize=3)
        ax.annotate(label, (mid, acc), textcoords="offset points", xytext=OFFSETS.get(label, (6, 4)), fontsize=8)
    ax.axhline(92.0, color="grey", linestyle="--", linewidth=0.8)
    ax.annotate("92% (issue #30's target)", (1.0, 92.0), textcoords="offset points", xytext=(2, 3), fontsize=8,
                color="grey")
    ax.set_xscale("log")
    ax.set_xlim(0.9, 200)
    ax.set_xlabel("minutes of one training on one CPU core (log scale; peers: refit + C search)")
    ax.set_ylabel("test accuracy % (25,000 IMDB test reviews)")
    ax.set_title("Accuracy against minutes: GRU variants (blue) and linear peers (orange)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
