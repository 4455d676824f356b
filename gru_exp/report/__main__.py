"""``python -m gru_exp.report``: what won, by how much over the notebook, how sure, which knobs mattered.

    python -m gru_exp.report outputs/sweeps/<study>             # a study's folder (storage found there)
    python -m gru_exp.report study_name=gru storage=postgresql://...
    python -m gru_exp.report outputs/multirun/<date>/<time>     # a Hydra -m grid's run folders
    python -m gru_exp.report outputs/runs/a outputs/runs/b      # any run folders side by side
    options: --out DIR (default: the study's or given folder), --top N (curves and table rows)

Writes report.md and PNG figures; reads the storage and the folders only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from gru_exp.commands import version_text
from gru_exp.config.compose import compose_config
from gru_exp.config.names import name_problem
from gru_exp.errors import GruExpError
from gru_exp.logs import setup_cli_logging
from gru_exp.report.entries import (
    TOP_K,
    entries_from_runs,
    entries_from_study,
    open_study_readonly,
)
from gru_exp.report.out import check_out
from gru_exp.report.tables import check_own_files, report_title, write_report
from gru_exp.sweep.study_file import STUDY_FILE, is_study_folder, read_pointer


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of runs")
    return value


def _new_folder(parent: Path) -> Path:
    """parent/<date_time>, or <date_time>-2, -3 ... when another report took that second: a report
    of several folders gets a folder of its own, never another report's."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1, 1000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError:
            return folder  # check_writable names the problem
    raise GruExpError(f"{parent}: no free report folder name for {stamp}; give --out DIR.")


def check_writable(out: Path) -> None:
    """GruExpError unless report.md and its figures can be written into ``out`` (made if missing):
    a read-only folder, a read-only mount, another user's folder. Leaves nothing behind."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".report-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GruExpError(f"The report cannot be written into {out}: {exc.strerror or exc}. Give a folder you can "
                          "write to with --out DIR (the study or run folders are only read).") from None


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.report") -> int:
    summary, _, examples = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(prog=prog, description=summary, epilog=examples.replace("python -m gru_exp.report", prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("targets", nargs="*", help="folders, or study_name=... storage=...")
    parser.add_argument("--out", type=Path, help="where to write report.md and the figures")
    parser.add_argument("--top", type=_positive, default=TOP_K, help="runs shown in curves and the table")
    args = parser.parse_intermixed_args(argv)  # options anywhere among the folders
    setup_cli_logging()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its INFO lines are about axis units
    # An existing folder is a folder even with '=' in its name (run folders made before 0.2 have them).
    is_option = [("=" in t and not Path(t).exists()) for t in args.targets]
    keys = dict(t.split("=", 1) for t, opt in zip(args.targets, is_option) if opt)
    folders = [Path(t) for t, opt in zip(args.targets, is_option) if not opt]
    unknown = set(keys) - {"study_name", "storage"}
    try:
        if unknown:
            raise GruExpError(f"Unknown option(s) {', '.join(sorted(unknown))}; use study_name=... storage=... or "
                              "folders.")
        if any(not t.strip() for t in args.targets):  # Path("") is the working folder
            raise GruExpError("An empty folder name ('') was given (an unset shell variable?); give a study folder, "
                              "run folders, or study_name=... storage=....")
        bad_name = name_problem("study_name", keys["study_name"]) if "study_name" in keys else None
        if bad_name and not folders and args.out is None:  # its report would go to <sweeps_dir>/<name>: outside
            raise GruExpError(f"{bad_name}, so this study (made by another tool?) has no folder under the outputs "
                              "for its report; give --out <a new folder>.")
        study = None
        if len(folders) == 1 and is_study_folder(folders[0]):
            try:
                pointer = read_pointer(folders[0])
            except ValueError as exc:
                raise GruExpError(f"{exc}; pass study_name=... storage=... instead.") from None
            assert pointer is not None
            keys.setdefault("study_name", pointer["study_name"])
            if "storage" not in keys and "***" in pointer["storage"]:
                raise GruExpError(f"{folders[0] / STUDY_FILE} names a storage with a password ({pointer['storage']}); "
                                  "pass storage=<full URL> too.")
            keys.setdefault("storage", pointer["storage"])
        if "study_name" in keys:
            sweep_cfg = compose_config([], config_name="sweep")
            paths = sweep_cfg.paths
            storage = keys.get("storage") or sweep_cfg.storage or f"sqlite:///{Path(paths.sweeps_dir) / 'optuna.db'}"
            study = open_study_readonly(keys["study_name"], storage)
            # the trial folders are read under the study folder given (a copy may sit anywhere), else
            # under this machine's sweeps folder, else where the trials recorded them
            home = folders[0] if folders else Path(paths.sweeps_dir) / keys["study_name"]
            entries = entries_from_study(study, home, explicit=bool(folders))
            out = args.out or home
        elif folders:
            entries = entries_from_runs(folders)
            # Several folders: a report folder of its own under the outputs, never their common
            # parent (which can be / or $HOME for unrelated folders).
            out = args.out or (folders[0] if len(folders) == 1 else
                               _new_folder(Path(compose_config([]).paths.output_dir) / "reports"))
        else:
            raise GruExpError("Nothing to report: give a study folder, run folders, or study_name=... storage=....")
        if args.out is not None:
            paths = compose_config([]).paths
            check_out(args.out, home if study is not None else None, Path(paths.output_dir), Path(paths.baseline_dir))
        if Path(out).exists() and not Path(out).is_dir():
            raise GruExpError(f"--out {out}: not a folder; give a folder for report.md and its figures.")
        # matplotlib keeps its font cache in ~/.cache unless told otherwise: under the outputs instead.
        os.environ.setdefault("MPLCONFIGDIR", str(Path(compose_config([]).paths.cache_dir) / "matplotlib"))
        check_writable(Path(out))
        check_own_files(Path(out), report_title(Path(out), study))
        try:
            report = write_report(entries, Path(out), args.top, study)
        except OSError as exc:  # e.g. the disk filled up while the figures were written
            raise GruExpError(f"The report could not be written to {out}: {exc.strerror or exc} "
                              f"({exc.filename or out}). Free some space or give --out <a writable folder>.") from None
    except GruExpError as exc:
        print(f"gru_exp.report: error: {exc}", file=sys.stderr)
        return 2
    print(f"Report: {report} (figures beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
