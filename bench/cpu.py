"""CPU seconds used by the server's backends of one database, read from /proc (Linux).

Only the backends serving the benchmark's own database count: other people's sessions on a
shared server do not. A server on another machine gives no figure (None).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def _is_local(url: str) -> bool:
    host = str(conninfo_to_dict(url).get("host") or "")
    return host in LOCAL_HOSTS or host.startswith("/")


def _backend_pids(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # the backend ended
        name_end = stat.rfind(b")")
        if stat[stat.find(b"(") + 1 : name_end] != b"postgres":
            continue
        fields = stat[name_end + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def backend_cpu_probe(url: str) -> Callable[[], float] | None:
    """A function returning the CPU seconds so far of the database's current backends."""
    if not _is_local(url) or not os.path.isdir("/proc"):
        return None
    pids: list[int] = []

    def probe() -> float:
        if not pids:
            pids.extend(_backend_pids(url))
        return _cpu_seconds(pids)

    return probe
