"""Who listens on a TCP port (Linux ``/proc``): whether a server that answers on a port is a
process of a given process group (the dashboard's own VisualDL) or another program, e.g. a second
dashboard started on the same port at the same moment (both found the port free, one got it)."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)
LISTEN = "0A"  # the state column of /proc/net/tcp{,6}
WILDCARDS = (ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::"))


def _address(hex_text: str) -> ipaddress._BaseAddress:
    """/proc/net/tcp's address: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_text)
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(swapped)
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def listeners(port: int, host_address: str) -> Optional[set[int]]:
    """Socket inodes listening on ``port`` at an address that conflicts with ``host_address`` (the
    same one, or either is a wildcard); None when /proc/net/tcp cannot be read (not Linux)."""
    try:
        ours = ipaddress.ip_address(host_address.split("%")[0])
    except ValueError:
        return None
    ours = getattr(ours, "ipv4_mapped", None) or ours
    found, readable = set(), False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) != port:
                continue
            theirs = _address(address)
            if theirs == ours or theirs in WILDCARDS or ours in WILDCARDS:
                found.add(int(fields[9]))
    return found if readable else None


def group_sockets(pgid: int) -> set[int]:
    """Inodes of the sockets open in the processes of process group ``pgid``."""
    inodes: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for fd in os.listdir(entry / "fd"):
                target = os.readlink(entry / "fd" / fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:["):-1]))
        except (OSError, IndexError, ValueError):
            continue
    return inodes


def port_holder(port: int, host_address: str, pgid: int) -> str:
    """"ours" when a process of group ``pgid`` listens on the port, "other" when only another
    program does, "none" when nobody does, "unknown" when this system cannot tell (no /proc)."""
    held = listeners(port, host_address)
    if held is None:
        return "unknown"
    if not held:
        return "none"
    return "ours" if held & group_sockets(pgid) else "other"
