"""One audit of a kind at a time across every process: a session advisory lock held by a
connection of its own for the length of the run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from ledger.errors import DomainError

LOCK_KEYS = {"replay": 7263101, "verify": 7263102}


class AuditRunning(DomainError):
    code = "audit_running"
    status = 409


@contextmanager
def exclusive(conninfo: str, kind: str) -> Iterator[None]:
    """Run the body only if no other `kind` audit is running; AuditRunning otherwise."""
    key = LOCK_KEYS[kind]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not row or not row[0]:
            raise AuditRunning(f"a {kind} audit is running; try again when it has finished")
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
