"""Do reviews with consecutive ids in IMDB's file names (<id>_<rating>.txt) belong to one movie?

The archive here has no urls_*.txt (each review's movie), so this measures it from the text: the
share of review pairs that have a rare capitalised word (a name or a title: in 2-30 reviews only)
in common, for ids 1 apart, 50 apart and random pairs, in train/pos. Used by data.val_split=id_blocks
(docs/results.md, section 8). Measured 2026-11-29: 0.468 / 0.004 / 0.004.

    python benchmarks/consecutive_ids.py ../shared/data/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import collections
import random
import re
import sys
import tarfile


def main(archive: str) -> None:
    docs: dict[int, set[str]] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            match = re.match(r"aclImdb/train/pos/(\d+)_(\d+)\.txt$", member.name)
            if match:
                text = tar.extractfile(member).read().decode("utf8", "replace")
                docs[int(match.group(1))] = set(re.findall(r"[A-Z][a-z]{3,}", text))
    df = collections.Counter(w for words in docs.values() for w in words)
    rare = {i: {w for w in words if 2 <= df[w] <= 30} for i, words in docs.items()}
    ids = sorted(rare)

    def share(a: int, b: int) -> bool:
        return bool(rare[a] & rare[b])

    def apart(k: int) -> float:
        return sum(share(ids[i], ids[i + k]) for i in range(len(ids) - k)) / (len(ids) - k)

    rng = random.Random(0)
    rnd = sum(share(*rng.sample(ids, 2)) for _ in range(20000)) / 20000
    print(f"pairs sharing a rare capitalised word: ids 1 apart {apart(1):.3f}; 50 apart {apart(50):.3f}; "
          f"random {rnd:.3f} ({len(ids)} reviews)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/aclImdb_v1.tar.gz")
