"""hash(n) = sha256(hash(n-1) || canonical bytes of the stored event at position n).

Computed from the raw rows of the events table, never through the library's decoding, so an
auditor needs nothing of ours but `link` to check it. The canonical bytes (`frame`) are
    position (int64 BE) | version (int64 BE) | originator id (16 bytes) |
    len(topic) (uint32 BE) | topic (UTF-8) | len(state) (uint32 BE) | state
and PostgreSQL builds exactly these bytes for the sealer and the verifier (`_FRAME`), so
that Python only hashes: a million events verify in a few seconds. The tests hold `_FRAME`
to `frame` on real rows.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

GENESIS = bytes(32)
BATCH = 20_000  # rows per fetch of the verifier's cursor
_FRAME = (
    "coalesce(int8send(e.notification_id) || int8send(e.originator_version) "
    "|| uuid_send(e.originator_id) || int4send(octet_length(e.topic)) "
    "|| convert_to(e.topic, 'UTF8') || int4send(length(e.state)) || e.state, '')"
)  # a NULL topic or state (never written) frames as nothing, so it fails as a mismatch
_SEAL_ROWS = (
    f"SELECT e.notification_id, {_FRAME} FROM public.ledger_events e "
    "WHERE e.notification_id > %s ORDER BY e.notification_id LIMIT %s"
)
# Every event in order beside the link sealed for it (none: the unsealed tail).
_WALK = (
    f"SELECT e.notification_id, c.hash, {_FRAME} FROM public.ledger_events e "
    "LEFT JOIN audit.chain c ON c.notification_id = e.notification_id "
    "ORDER BY e.notification_id"
)
# The first link after a position (inside a window) whose event is gone: a deleted row.
# Asked only when the walk breaks or ends, so verify never joins the whole chain for it.
_ORPHAN = (
    "SELECT min(c.notification_id) FROM audit.chain c "
    "WHERE c.notification_id > %s AND c.notification_id < %s AND NOT EXISTS "
    "(SELECT 1 FROM public.ledger_events e WHERE e.notification_id = c.notification_id)"
)


def frame(position: int, originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The canonical bytes of one stored event."""
    topic_bytes = topic.encode()
    return b"".join(
        (
            struct.pack(">qq", position, version),
            originator_id.bytes,
            struct.pack(">I", len(topic_bytes)),
            topic_bytes,
            struct.pack(">I", len(state)),
            state,
        )
    )


def link(
    previous: bytes, position: int, originator_id: UUID, version: int, topic: str, state: bytes
) -> bytes:
    return hashlib.sha256(previous + frame(position, originator_id, version, topic, state)).digest()


def _sealed_head(conn: psycopg.Connection[Any]) -> tuple[int, bytes]:
    row = conn.execute(
        "SELECT notification_id, hash FROM audit.chain ORDER BY notification_id DESC LIMIT 1"
    ).fetchone()
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def seal(conn: psycopg.Connection[Any], limit: int = 10_000) -> int:
    """Extend the chain over up to `limit` new events; return how many were sealed.

    One sealer at a time (an advisory lock), in one transaction with its reads.
    """
    sha256 = hashlib.sha256
    with conn.transaction():
        got = conn.execute("SELECT pg_try_advisory_xact_lock(7263001)").fetchone()
        if not got or not got[0]:
            return 0
        position, previous = _sealed_head(conn)
        with conn.cursor(binary=True) as cur:
            rows = cur.execute(_SEAL_ROWS, (position, limit)).fetchall()
        if not rows:
            return 0
        with conn.cursor().copy("COPY audit.chain (notification_id, hash) FROM STDIN") as copy:
            for nid, canonical in rows:
                h = sha256(previous)
                h.update(canonical)
                previous = h.digest()
                copy.write_row((nid, previous))
    return len(rows)


@dataclass
class Verdict:
    ok: bool
    checked: int
    unsealed: int
    first_bad_position: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check(rows: list[tuple[int, bytes | None, bytes]], state: list[Any]) -> Verdict | None:
    """Hash one batch on from `state` = [previous hash, checked, unsealed, last checked
    position], left where the batch or the chain ended; a verdict if the chain breaks in it.
    One tight loop: verify's time is here."""
    sha256 = hashlib.sha256
    previous, checked, unsealed, last = state
    verdict = None
    for position, sealed, canonical in rows:
        if sealed is None:
            unsealed += 1
            continue
        if unsealed:
            verdict = Verdict(
                False, checked, unsealed, position, "event inserted before sealed ones"
            )
            break
        h = sha256(previous)
        h.update(canonical)
        previous = h.digest()
        if previous != sealed:
            verdict = Verdict(False, checked, unsealed, position, "hash mismatch")
            break
        checked += 1
        last = position
    state[:] = previous, checked, unsealed, last
    return verdict


def _missing(conn: psycopg.Connection[Any], after: int, before: int | None) -> int | None:
    """A sealed position between two events (or after the last) whose event is gone."""
    row = conn.execute(_ORPHAN, (after, before if before is not None else 2**63 - 1))
    found = row.fetchone()
    return found[0] if found else None


def verify(conninfo: str, progress: Callable[[int], None] | None = None) -> Verdict:
    """Recompute the whole chain from the raw rows and name the first position that fails.
    A deleted event shows as the next link not matching (or links past the last event): the
    verdict then names the deleted position."""
    state: list[Any] = [GENESIS, 0, 0, 0]
    verdict: Verdict | None = None
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SET LOCAL jit = off")  # a plain ordered scan: compiling costs more
        with conn.cursor(name="audit_walk", binary=True) as cur:
            cur.execute(_WALK)
            while rows := cur.fetchmany(BATCH):
                verdict = _check(rows, state)
                if verdict is not None:
                    break
                if progress:
                    progress(len(rows))
        checked, unsealed, last = state[1:]
        gone = _missing(conn, last, verdict.first_bad_position if verdict else None)
    if gone is not None:
        return Verdict(False, checked, unsealed, gone, "event missing")
    return verdict or Verdict(True, checked, unsealed)


def count_events(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM public.ledger_events").fetchone()
    return int(row[0]) if row else 0
