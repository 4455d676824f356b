"""Where a dashboard listens: ``--host``/``--port`` checked before a server starts (a bad or busy
value is one paragraph, exit 2: VisualDL would otherwise hang forever), and the URL it serves."""

from __future__ import annotations

import errno
import socket
from typing import Optional

from gru_exp.errors import GruExpError

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


def url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def address(host: str, port: int) -> Optional[str]:
    """The address VisualDL listens on for ``host`` (as check_bindable resolves it), or None."""
    try:
        return str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][4][0])
    except (OSError, UnicodeError, ValueError, IndexError):
        return None
