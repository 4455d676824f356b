"""Peak memory of parsing a big table (issue #25: "a file of a million rows parses within a bounded
memory"): the table source streams its file line by line and keeps only int32 token ids, label and
group numbers, so its peak RSS should follow the number of tokens, not the size of the text.

    python benchmarks/table_rss.py [--rows 100000 1000000] [--format csv|jsonl] [--dir DIR]

For each row count it writes a file of synthetic texts (seeded: words drawn from a Zipf-like list of
20,000 made-up words, 20-120 words a text, 5 labels, a group column), then, in a fresh child
process each, (1) only imports gru-exp's data layer and composes the config, and (2) parses the file through the table source
(``gru_exp.data.sources.load``, the path a training takes, into a fresh cache). It prints the file
size, the tokens, the parse time and both peak RSS figures (``ru_maxrss`` of the child). The files
go to ``--dir`` (default: a temporary folder, removed at the end).

Measured here: see docs/your-data.md, "How big a file".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, path, fmt, cache = sys.argv[1:5]
from gru_exp.config.compose import compose_config
from gru_exp.data import sources
out = {}
cfg = compose_config(["data.source=table", f"data.train_file={path}", f"data.cache_dir={cache}",
                      "data.text_column=text", "data.label_column=label", "data.group_column=group"])
if mode == "parse":
    start = time.perf_counter()
    arrays = sources.load(cfg.data, sources.find(cfg.data))
    out["parse_s"] = time.perf_counter() - start
    out["tokens"] = int(sum(len(a) for a in arrays.ids.values()))
    out["vocabulary"] = int(len(arrays.words))
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def write_table(path: Path, rows: int, fmt: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(20_000)]
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    with path.open("w", encoding="utf-8") as f:
        f.write("text,label,group\n" if fmt == "csv" else "")
        for start in range(0, rows, 10_000):
            n = min(10_000, rows - start)
            lengths = rng.integers(20, 121, size=n)
            ids = rng.choice(len(words), size=int(lengths.sum()), p=p)
            labels = rng.integers(0, 5, size=n)
            at = 0
            for i in range(n):
                text = " ".join(words[j] for j in ids[at:at + lengths[i]])
                at += lengths[i]
                group = (start + i) // 50
                if fmt == "csv":
                    f.write(f"{text},c{labels[i]},g{group}\n")
                else:
                    f.write(json.dumps({"text": text, "label": f"c{labels[i]}", "group": f"g{group}"}) + "\n")


def child(mode: str, path: Path, fmt: str, cache: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), fmt, str(cache)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'rows':>9} {'file MB':>8} {'tokens':>11} {'parse s':>8} {'import-only RSS MB':>19} "
              f"{'parse peak RSS MB':>18} {'RSS - import, bytes/token':>26}")
        for rows in args.rows:
            path = folder / f"table_{rows}.{args.format}"
            if not path.exists():
                start = time.perf_counter()
                write_table(path, rows, args.format)
                print(f"# wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            cache = Path(tempfile.mkdtemp(dir=folder))
            base = child("import", path, args.format, cache)
            got = child("parse", path, args.format, cache)
            extra = (got["peak_rss_mb"] - base["peak_rss_mb"]) * 2**20 / got["tokens"]
            print(f"{rows:>9,} {path.stat().st_size / 1e6:>8.0f} {got['tokens']:>11,} {got['parse_s']:>8.1f} "
                  f"{base['peak_rss_mb']:>19.0f} {got['peak_rss_mb']:>18.0f} {extra:>26.1f}", flush=True)


if __name__ == "__main__":
    main()
