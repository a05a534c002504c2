"""A database to benchmark in: a scratch database on a given server, or an embedded server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier


@dataclass(frozen=True)
class Target:
    url: str  # the owner's connection string for the scratch database
    kind: str  # "server" or "embedded"


def server_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or None


@contextmanager
def scratch_database(tag: str = "") -> Iterator[Target]:
    """`tag` tells apart the databases one run makes at once (`make bench` keeps the HTTP
    and projection-lag figures off the log the write-path benches filled)."""
    url = server_url()
    if url:
        with _scratch_on(url, tag) as scratch:
            yield Target(scratch, "server")
        return
    from infra.embedded import start_postgres

    server = start_postgres(Path(tempfile.mkdtemp(prefix="ledger-bench-")) / "pg", delete=True)
    try:
        yield Target(server.url, "embedded")
    finally:
        server.stop()


@contextmanager
def _scratch_on(url: str, tag: str = "") -> Iterator[str]:
    name = f"ledger_bench_{os.getpid()}" + (f"_{tag}" if tag else "")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL("DROP DATABASE IF EXISTS {0} WITH (FORCE)").format(Identifier(name)))
        conn.execute(SQL("CREATE DATABASE {0}").format(Identifier(name)))
    try:
        yield make_conninfo(**{**conninfo_to_dict(url), "dbname": name})
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SQL("DROP DATABASE IF EXISTS {0} WITH (FORCE)").format(Identifier(name)))


def server_facts(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        facts = {"pg_version": str(conn.execute("SHOW server_version").fetchone()[0])}  # type: ignore[index]
        for setting in ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers"):
            facts[setting] = str(conn.execute(f"SHOW {setting}").fetchone()[0])  # type: ignore[index]
    return facts
