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
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional, Sequence

from gru_exp.errors import GruExpError
from gru_exp.config.paths import VIEW_DIR
from gru_exp.port_owner import port_holder

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0
STOP_WAIT_S = 10.0
TAKEN_GRACE_S = 2.0  # another program holding the port this long while VisualDL starts: it never gets it
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PORTS = "a TCP port number from 1 to 65535 that no other program listens on (default 8040)"


class DashboardError(GruExpError):
    """The dashboard cannot serve: a bad or busy host/port, or VisualDL did not come up."""


def parse_port(text: str) -> int:
    """``--port``'s value as a port number, or one paragraph naming it and what is allowed."""
    try:
        port = int(text.strip())
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise DashboardError(f"--port {text!r} is not a port the dashboard can serve on: give {PORTS}, "
                             "e.g. --port 8041.")
    return port


def check_bindable(host: str, port: int) -> None:
    """Refuse, with one paragraph, a host this machine cannot listen on or a port already taken.
    Binds as VisualDL's server does (SO_REUSEADDR: a port left in TIME_WAIT is free)."""
    hosts = ("--host takes an address of this machine or a name that resolves to one: 127.0.0.1 (the default, "
             "this machine only), 0.0.0.0 (every interface), :: or a local interface's address")
    if not host.strip() or host != host.strip():
        raise DashboardError(f"--host {host!r} is not a host name or address. {hosts}.")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise DashboardError(f"--host {host!r} does not resolve ({exc}). {hosts}.") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DashboardError(
                    f"--port {port} on {host} is in use by another program. Give {PORTS}, e.g. --port "
                    f"{port + 1 if port < 65535 else 8040}, or stop that program (`ss -ltnp 'sport = :{port}'` shows "
                    "it).") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise DashboardError(f"--host {host!r} ({address[0]}) is not an address of this machine. "
                                     f"{hosts}.") from None
            if exc.errno == errno.EACCES:
                raise DashboardError(f"--port {port} needs privileges this user lacks (ports below 1024 do). Give "
                                     f"{PORTS}, above 1023.") from None
            raise DashboardError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Give {PORTS}; "
                                 f"{hosts}.") from None


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


def visualdl_command(host: str, port: int) -> list[str]:
    exe = Path(sys.executable).with_name("visualdl")  # the console script of this environment
    return [str(exe), "--logdir", VIEW_DIR, "--host", host, "--port", str(port), "--disable-telemetry", "-L", "en"]


def _die_with_parent() -> None:  # in VisualDL's process, before exec (Linux: prctl PR_SET_PDEATHSIG)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def stop(proc: subprocess.Popen, wait_s: float = STOP_WAIT_S) -> None:
    """Stop VisualDL's whole process group: SIGTERM, then SIGKILL to whatever is left after ``wait_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # start_new_session: the group's id is the leader's pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)


def start(output_dir: Path, host: str = "127.0.0.1", port: int = 8040, timeout_s: float = START_TIMEOUT_S,
          log_file: Optional[Path] = None, stopping: Callable[[], bool] = lambda: False) -> subprocess.Popen:
    """Start VisualDL over ``output_dir``'s dashboard folder, in its own process group, and wait
    until it answers. On its exit, ``timeout_s`` without an answer, or ``stopping()``, the group
    is stopped and DashboardError raised (nothing of it is left running)."""
    log_fh = open(log_file, "w") if log_file else None  # noqa: SIM115 (closed below; the child has its copy)
    try:  # its own group (stopped whole); SIGTERM to it if this process dies, even by SIGKILL
        proc = subprocess.Popen(visualdl_command(host, port), cwd=output_dir, stdout=log_fh,
                                stderr=subprocess.STDOUT if log_fh else None, start_new_session=True,
                                preexec_fn=_die_with_parent)  # noqa: PLW1509 (no other thread here)
    except OSError as exc:
        raise DashboardError(f"Cannot start VisualDL ({visualdl_command(host, port)[0]}: {exc.strerror or exc}): "
                             "install it into this environment (pip install visualdl).") from None
    finally:
        if log_fh:
            log_fh.close()
    try:
        address = _address(host, port)
        deadline, taken_since = time.monotonic() + timeout_s, None
        while not stopping():
            if proc.poll() is not None:
                raise DashboardError(f"VisualDL exited with status {proc.returncode} before it served "
                                     f"{url(host, port)}{f'; its log: {log_file}' if log_file else ''}.")
            if time.monotonic() > deadline:
                raise DashboardError(f"VisualDL did not answer on {url(host, port)} within {timeout_s:g} s; it was "
                                     f"stopped. Try another --port ({PORTS}).")
            # Only an answer from a server of VisualDL's own process group counts (Linux: the
            # listening socket is one of its open files); where that cannot be told, any answer.
            holder = port_holder(port, address, proc.pid) if address else "unknown"
            taken_since = (taken_since or time.monotonic()) if holder == "other" else None
            if taken_since is not None and time.monotonic() - taken_since > TAKEN_GRACE_S:
                raise DashboardError(
                    f"--port {port} on {host} was taken by another program (another dashboard started at the same "
                    f"moment?) while VisualDL started, so {url(host, port)} is not this dashboard's; it was stopped. "
                    f"Give {PORTS}, e.g. --port {port + 1 if port < 65535 else 8040}, or stop that program (`ss "
                    f"-ltnp 'sport = :{port}'` shows it).")
            if holder in ("ours", "unknown"):
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{url(host, port)}/alive", timeout=2) as answer:
                        if answer.status == 204:
                            return proc
            time.sleep(0.3)
    except BaseException:
        stop(proc)
        raise
    stop(proc)
    return proc


def _address(host: str, port: int) -> Optional[str]:
    """The address VisualDL listens on for ``host`` (as check_bindable resolves it), or None."""
    try:
        return str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][4][0])
    except (OSError, UnicodeError, ValueError, IndexError):
        return None


def serve(output_dir: Path, host: str, port: int) -> int:
    """Run VisualDL until it exits or this process gets SIGTERM/SIGINT/SIGHUP; stop its group either way."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in STOP_SIGNALS}
    proc: Optional[subprocess.Popen] = None
    try:
        proc = start(output_dir, host, port, stopping=lambda: bool(received))
        if not received:
            print(f"VisualDL over {output_dir / VIEW_DIR}: {url(host, port)} (Ctrl-C stops it)", file=sys.stderr,
                  flush=True)
        while not received and proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.5)
        if received:
            log.info("signal %d: stopping VisualDL", received[0])
            return 128 + received[0]
        print(f"gru_exp.dashboard: VisualDL exited with status {proc.returncode}; {url(host, port)} is no longer "
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
                                     epilog=f"example: {prog} --port 8040")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", default="8040", help="TCP port, 1-65535 and free (default 8040)")
    args = parser.parse_args(argv)
    try:
        port = parse_port(args.port)
        output_dir = _output_dir()
        view_dir(output_dir)
        check_bindable(args.host, port)
        return serve(output_dir, args.host, port)
    except GruExpError as exc:
        print(f"gru_exp.dashboard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
