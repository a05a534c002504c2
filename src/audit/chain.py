"""hash(n) = sha256(hash(n-1) || canonical bytes of the stored event at position n).

Computed from the raw rows of the events table, never through the library's decoding, so an
auditor needs nothing of ours but this function to check it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

GENESIS = bytes(32)
_ROWS = (
    "SELECT notification_id, originator_id, originator_version, topic, state "
    "FROM public.ledger_events WHERE notification_id > %s ORDER BY notification_id"
)


def link(
    previous: bytes, position: int, originator_id: UUID, version: int, topic: str, state: bytes
) -> bytes:
    topic_bytes = topic.encode()
    h = hashlib.sha256(previous)
    h.update(struct.pack(">qq", position, version))
    h.update(originator_id.bytes)
    h.update(struct.pack(">I", len(topic_bytes)))
    h.update(topic_bytes)
    h.update(struct.pack(">I", len(state)))
    h.update(state)
    return h.digest()


def _sealed_head(conn: psycopg.Connection[Any]) -> tuple[int, bytes]:
    row = conn.execute(
        "SELECT notification_id, hash FROM audit.chain ORDER BY notification_id DESC LIMIT 1"
    ).fetchone()
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def seal(conn: psycopg.Connection[Any], limit: int = 10_000) -> int:
    """Extend the chain over up to `limit` new events; return how many were sealed.

    One sealer at a time (an advisory lock), in one transaction with its reads.
    """
    with conn.transaction():
        got = conn.execute("SELECT pg_try_advisory_xact_lock(7263001)").fetchone()
        if not got or not got[0]:
            return 0
        position, previous = _sealed_head(conn)
        rows = conn.execute(_ROWS + " LIMIT %s", (position, limit)).fetchall()
        if not rows:
            return 0
        with conn.cursor().copy("COPY audit.chain (notification_id, hash) FROM STDIN") as copy:
            for nid, oid, version, topic, state in rows:
                previous = link(previous, nid, oid, version, topic, bytes(state))
                copy.write_row((nid, previous))
    return len(rows)


@dataclass
class Verdict:
    ok: bool
    checked: int
    unsealed: int
    first_bad_position: int | None = None
    reason: str = ""


def _walk(conn: psycopg.Connection[Any]) -> Iterator[tuple[Any, ...]]:
    # Every sealed link beside the event it covers; an event with no link is unsealed tail,
    # a link with no event means a row was deleted.
    with conn.cursor(name="audit_walk") as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT c.notification_id, c.hash, e.notification_id, e.originator_id, "
            "e.originator_version, e.topic, e.state "
            "FROM audit.chain c FULL OUTER JOIN public.ledger_events e "
            "ON e.notification_id = c.notification_id "
            "ORDER BY coalesce(c.notification_id, e.notification_id)"
        )
        yield from cur


def verify(conninfo: str, progress: Callable[[int], None] | None = None) -> Verdict:
    """Recompute the whole chain from the raw rows and name the first position that fails."""
    previous = GENESIS
    checked = unsealed = 0
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for chain_id, sealed, event_id, oid, version, topic, state in _walk(conn):
            if chain_id is None:
                unsealed += 1
                continue
            if event_id is None:
                return Verdict(False, checked, unsealed, chain_id, "event missing")
            if unsealed:
                return Verdict(
                    False, checked, unsealed, event_id, "event inserted before sealed ones"
                )
            previous = link(previous, event_id, oid, version, topic, bytes(state))
            if previous != bytes(sealed):
                return Verdict(False, checked, unsealed, event_id, "hash mismatch")
            checked += 1
            if progress and checked % 5000 == 0:
                progress(5000)
    if progress:
        progress(checked % 5000)
    return Verdict(True, checked, unsealed)


def count_events(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM public.ledger_events").fetchone()
    return int(row[0]) if row else 0
