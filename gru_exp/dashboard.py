"""``python -m gru_exp.dashboard [--port 8040] [--host 127.0.0.1]``: VisualDL over every run.

Serves ``<outputs>/vdl``, the folder of readable links each run, sweep trial, sweep best-so-far
curve and the notebook baseline put there, from the outputs folder: VisualDL names runs in its
HParams views by their folder as walked, so the names read "vdl/imdb trial 3: hidden=64 ...",
not absolute paths, and its embedding projector needs a relative folder to load labels.

VisualDL 2.5.3 never exits when it cannot listen (a thread keeps polling its own URL), so the
host and port are checked here first (a bad value: one paragraph, exit 2) and VisualDL must answer
within ``START_TIMEOUT_S``, from a socket its own process group listens on (Linux /proc: a second
dashboard started on the same port at the same moment is refused, exit 2, not fooled by the first). It runs in its own process group, which this command stops on SIGTERM,
SIGINT, SIGHUP and any exit (status 128 + the signal's number after a signal); if this process is
killed outright (SIGKILL), the kernel sends VisualDL SIGTERM (Linux's parent-death signal).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from gru_exp.errors import GruExpError
from gru_exp.config.paths import VIEW_DIR
from gru_exp.port_owner import port_holder
from gru_exp.optuna_board import study_storage
from gru_exp.ports import PORTS, DashboardError, address, check_bindable, parse_port, url

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0
STOP_WAIT_S = 10.0
TAKEN_GRACE_S = 2.0  # another program holding the port this long while VisualDL starts: it never gets it
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def view_dir(output_dir: Path) -> Path:
    """The dashboard folder of ``output_dir``, or one paragraph saying why it cannot be served."""
    view = output_dir / VIEW_DIR
    text = str(output_dir)
    where = "set GRU_EXP_HOME to a folder (its outputs/ is served) or unset it to serve ./outputs"
    if "${" in text:
        raise DashboardError(f"The outputs folder {text!r} holds an unresolved '${{...}}' (from $GRU_EXP_HOME?): "
                             f"{where}.")
    existing = next(p for p in (view, *view.parents) if os.path.lexists(p))
    if existing != view and not existing.is_dir():
        raise DashboardError(f"The outputs folder {text} cannot exist: {existing} is a file, not a folder; {where}.")
    if existing != view:
        raise DashboardError(f"{view} does not exist yet: train or sweep first (or {where}).")
    if not view.is_dir():
        raise DashboardError(f"{view} is not a folder, so it holds no VisualDL records; {where}.")
    if not os.access(view, os.R_OK | os.X_OK):
        raise DashboardError(f"{view} is not readable by this user; {where}.")
    return view


@dataclass(frozen=True)
class Server:
    """A dashboard server to run: its name, command, folder, the URL path that answers once it
    serves (with this status) and what it needs in its environment (a storage URL: never argv)."""

    name: str
    command: list[str]
    cwd: Path
    alive: str
    status: int
    env: dict[str, str] = field(default_factory=dict)


def visualdl(output_dir: Path, host: str, port: int) -> Server:
    exe = Path(sys.executable).with_name("visualdl")  # the console script of this environment
    return Server("VisualDL", [str(exe), "--logdir", VIEW_DIR, "--host", host, "--port", str(port),
                               "--disable-telemetry", "-L", "en"], output_dir, "/alive", 204)


def optuna_dashboard(storage: str, output_dir: Path, host: str, port: int) -> Server:
    """optuna-dashboard over ``storage``, the URL in its environment (a password stays out of ``ps``)."""
    code = ("import os, optuna_dashboard; from gru_exp.sweep.urls import readonly_storage; optuna_dashboard.run_server("
            f"readonly_storage(os.environ['GRU_EXP_DASHBOARD_STORAGE']), host={host!r}, port={port})")
    return Server("optuna-dashboard", [sys.executable, "-c", code], output_dir, "/api/meta", 200,
                  {"GRU_EXP_DASHBOARD_STORAGE": storage})


def _die_with_parent() -> None:  # in VisualDL's process, before exec (Linux: prctl PR_SET_PDEATHSIG)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen, wait_s: float = STOP_WAIT_S) -> None:
    """Stop VisualDL's whole process group: SIGTERM, then SIGKILL to whatever is left after ``wait_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # start_new_session: the group's id is the leader's pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)


def start(output_dir: Path, host: str = "127.0.0.1", port: int = 8040, timeout_s: float = START_TIMEOUT_S,
          log_file: Optional[Path] = None, stopping: Callable[[], bool] = lambda: False,
          server: Optional[Server] = None) -> subprocess.Popen:
    """Start ``server`` (default: VisualDL over ``output_dir``'s dashboard folder) in its own
    process group, and wait until it answers. On its exit, ``timeout_s`` without an answer, or
    ``stopping()``, the group is stopped and DashboardError raised (nothing of it is left running)."""
    server = server or visualdl(output_dir, host, port)
    log_fh = open(log_file, "w") if log_file else None  # noqa: SIM115 (closed below; the child has its copy)
    try:  # its own group (stopped whole); SIGTERM to it if this process dies, even by SIGKILL
        proc = subprocess.Popen(server.command, cwd=server.cwd, stdout=log_fh, env={**os.environ, **server.env},
                                stderr=subprocess.STDOUT if log_fh else None, start_new_session=True,
                                preexec_fn=_die_with_parent)  # noqa: PLW1509 (no other thread here)
    except OSError as exc:
        raise DashboardError(f"Cannot start {server.name} ({server.command[0]}: {exc.strerror or exc}): "
                             f"install it into this environment (pip install {server.name.lower()}).") from None
    finally:
        if log_fh:
            log_fh.close()
    try:
        where = address(host, port)
        deadline, taken_since = time.monotonic() + timeout_s, None
        while not stopping():
            if proc.poll() is not None:
                raise DashboardError(f"{server.name} exited with status {proc.returncode} before it served "
                                     f"{url(host, port)}{f'; its log: {log_file}' if log_file else ''}.")
            if time.monotonic() > deadline:
                raise DashboardError(f"{server.name} did not answer on {url(host, port)} within {timeout_s:g} s; it was "
                                     f"stopped. Try another --port ({PORTS}).")
            # Only an answer from a server of VisualDL's own process group counts (Linux: the
            # listening socket is one of its open files); where that cannot be told, any answer.
            holder = port_holder(port, where, proc.pid) if where else "unknown"
            taken_since = (taken_since or time.monotonic()) if holder == "other" else None
            if taken_since is not None and time.monotonic() - taken_since > TAKEN_GRACE_S:
                raise DashboardError(
                    f"--port {port} on {host} was taken by another program (another dashboard started at the same "
                    f"moment?) while {server.name} started, so {url(host, port)} is not this dashboard's; it was stopped. "
                    f"Give {PORTS}, e.g. --port {port + 1 if port < 65535 else 8040}, or stop that program (`ss "
                    f"-ltnp 'sport = :{port}'` shows it).")
            if holder in ("ours", "unknown"):
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{url(host, port)}{server.alive}", timeout=2) as answer:
                        if answer.status == server.status:
                            return proc
            time.sleep(0.3)
    except BaseException:
        stop(proc)
        raise
    stop(proc)
    return proc


def serve(output_dir: Path, host: str, port: int, server: Optional[Server] = None, what: str = "") -> int:
    """Run ``server`` (default VisualDL) until it exits or this process gets SIGTERM/SIGINT/SIGHUP;
    stop its group either way."""
    server = server or visualdl(output_dir, host, port)
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in STOP_SIGNALS}
    proc: Optional[subprocess.Popen] = None
    try:
        proc = start(output_dir, host, port, stopping=lambda: bool(received), server=server)
        if not received:
            print(f"{server.name} over {what or output_dir / VIEW_DIR}: {url(host, port)} (Ctrl-C stops it)",
                  file=sys.stderr, flush=True)
        while not received and proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)
        if received:
            log.info("signal %d: stopping %s", received[0], server.name)
            return 128 + received[0]
        print(f"gru_exp.dashboard: {server.name} exited with status {proc.returncode}; {url(host, port)} is no longer "
              "served.", file=sys.stderr)
        return 0 if proc.returncode == 0 else 1
    finally:
        if proc is not None:
            stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _output_dir() -> Path:
    from gru_exp.config.compose import compose_config, composition_error

    try:
        cfg = compose_config([])
    except GruExpError:
        raise
    except Exception as exc:  # Hydra's or OmegaConf's composition error (a bad user config folder)
        raise composition_error(exc) from None
    return Path(str(cfg.paths.output_dir))


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.dashboard") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                                     epilog=f"examples: {prog} --port 8040; {prog} --optuna")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", default="8040", help="TCP port, 1-65535 and free (default 8040)")
    parser.add_argument("--optuna", action="store_true",
                        help="optuna-dashboard over the sweeps' storage instead (pip install optuna-dashboard)")
    parser.add_argument("--storage", help="with --optuna: the study storage URL (default: $GRU_EXP_STORAGE, else "
                                          "the sweeps' SQLite file)")
    args = parser.parse_args(argv)
    try:
        port = parse_port(args.port)
        output_dir = _output_dir()
        if args.storage and not args.optuna:
            raise DashboardError("--storage is for --optuna (optuna-dashboard over a study storage); VisualDL serves "
                                 "the outputs folder's dashboard folder.")
        if args.optuna:
            if importlib.util.find_spec("optuna_dashboard") is None:
                raise DashboardError("--optuna needs optuna-dashboard in this Python: pip install optuna-dashboard "
                                     "(or pip install 'gru-exp[dashboard]').")
            storage, shown = study_storage(args.storage)
            check_bindable(args.host, port)
            return serve(output_dir, args.host, port, optuna_dashboard(storage, output_dir, args.host, port), shown)
        view_dir(output_dir)
        check_bindable(args.host, port)
        return serve(output_dir, args.host, port)
    except GruExpError as exc:
        print(f"gru_exp.dashboard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
