"""The study storage ``gru-exp dashboard --optuna`` shows: found (``--storage``, $GRU_EXP_STORAGE or
the sweeps' SQLite file) and read once before optuna-dashboard starts, so a storage it cannot read
is one paragraph, not optuna-dashboard's traceback; nothing is ever created or migrated."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gru_exp.errors import GruExpError
from gru_exp.ports import DashboardError


def study_storage(given: Optional[str]) -> tuple[str, str]:
    """The storage optuna-dashboard shows (``--storage``, else $GRU_EXP_STORAGE, else the default
    SQLite file of the sweeps) and how to name it in the terminal (password redacted); one paragraph
    when the default file does not exist yet (it is never created here)."""
    from gru_exp.config.compose import compose_config
    from gru_exp.redact import redact

    sc = compose_config([], config_name="sweep")
    storage = given or sc.storage or f"sqlite:///{Path(str(sc.paths.sweeps_dir)) / 'optuna.db'}"
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        raise DashboardError(f"{storage[len('sqlite:///'):]} does not exist yet: run a sweep first, or give the study "
                             "storage with --storage URL (or $GRU_EXP_STORAGE).")
    import optuna

    from gru_exp.sweep.urls import readonly_storage

    try:  # read before serving: optuna-dashboard would print its traceback and exit
        optuna.get_all_study_summaries(readonly_storage(storage))
    except GruExpError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable server, a file that is not a study database
        raise DashboardError(f"--storage {redact(storage)!r} cannot be read as a study storage: {type(exc).__name__}: "
                             f"{redact(' '.join(str(exc).split()))[:300]}") from None
    return storage, redact(storage)
