"""deploy/haproxy.cfg from the outside: the environment that places it, and what its stats
socket says of its backends' servers, and commands on that socket.

Standard library only: the cluster tests (tests/cluster) and the scale benchmark
(benchmarks/scale.py) both run HAProxy on this configuration.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HAPROXY_CFG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"


def haproxy_env(port: int, stats_socket: str, servers: list[str], check_interval: str) -> dict:
    """This process's environment and what deploy/haproxy.cfg reads from it: the port to listen
    on (127.0.0.1), the stats socket, the health-check interval, and ``servers`` (host:port) as
    app1, app2, ..."""
    return dict(
        os.environ,
        LAUNCHPROV_HAPROXY_BIND=f"127.0.0.1:{port}",
        LAUNCHPROV_HAPROXY_STATS_SOCKET=stats_socket,
        LAUNCHPROV_HAPROXY_CHECK_INTERVAL=check_interval,
        **{f"LAUNCHPROV_APP{n}": address for n, address in enumerate(servers, start=1)},
    )


def command(stats_socket: str, line: str) -> str:
    """One command on HAProxy's stats socket (``show stat``, ``disable server b/s``, ...) and
    everything it answered."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(stats_socket)
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_stats(stats_socket: str, backend: str = "launchprov") -> dict[str, dict[str, str]]:
    """Server name -> its `show stat` row (status, scur: sessions in progress, ...)."""
    lines = command(stats_socket, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {
        row["svname"]: row
        for row in rows
        if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def server_statuses(stats_socket: str, backend: str = "launchprov") -> dict[str, str]:
    """Server name -> status (UP, DOWN, MAINT, ...) of a backend, from `show stat`."""
    return {name: row["status"] for name, row in server_stats(stats_socket, backend).items()}
