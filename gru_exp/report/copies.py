"""Each run counted once, however it is reached: the same metrics.json through a link or a folder
given twice (same resolved path), or a copy of it elsewhere (``rsync -a study/ copy/``): a copied
record keeps what the run recorded about itself, so records with the same host, process id,
recorded run folder and wall time are one run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from gru_exp.train.record import RunRecord

log = logging.getLogger(__name__)


def run_identity(record: RunRecord) -> tuple[Any, ...]:
    """What a run recorded about itself that a copy keeps: (host, pid, recorded run folder, wall time)."""
    return (record.host, record.pid, str(record.run_dir), record.wall_time_s)


class SeenRuns:
    """The runs already counted, by resolved path and by :func:`run_identity`."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self.identities: dict[tuple[Any, ...], Path] = {}

    def new_path(self, path: Path) -> bool:
        """False when ``path`` (a metrics.json) was already read, through any link; else notes it."""
        resolved = Path(path).resolve()
        if resolved in self.paths:
            return False
        self.paths.add(resolved)
        return True

    def copy_of(self, record: RunRecord, path: Path) -> Optional[Path]:
        """The folder of the run ``record`` (read from ``path``) copies, logged; None (and noted)
        when it is the first record of its run."""
        first = self.identities.setdefault(run_identity(record), Path(path).parent)
        if first == Path(path).parent:
            return None
        log.warning("%s holds a copy of the run in %s (same host %r, pid %s, recorded folder %s and wall time "
                    "%s s): counted once", Path(path).parent, first, record.host, record.pid, record.run_dir,
                    record.wall_time_s)
        return first
