"""What a projector is, and the runner that feeds it the log exactly once.

A runner reads the notification log after its projector's tracked position, in pages, and
hands each page to the projector inside one transaction that also moves the position. The
tracking row is locked FOR UPDATE, so two runners of one projector never both apply a page,
and a crash at any point leaves either the whole page applied with its position, or none.

Projectors write unqualified table names: the runner sets `search_path` to its target schema
for each transaction (`read` for the live models, `read_shadow` while a rebuild fills a copy),
and keeps the tracking rows in that schema's own `tracking` table.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from psycopg import Connection, Cursor
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

LIVE_SCHEMA = "read"


@dataclass(frozen=True, slots=True)
class Envelope:
    position: int
    event: Any


class Projector(ABC):
    name: str
    # Topic prefixes worth decoding; None means every event.
    topic_prefixes: tuple[str, ...] | None = None
    # True when every statement names its tables unqualified (the runner's search_path picks
    # the schema): only such a projector can be rebuilt into a shadow schema. One that still
    # writes `read.x` would write into the live tables during a rebuild, so it is left out.
    schema_aware: bool = False

    def wants(self, topic: str) -> bool:
        return self.topic_prefixes is None or topic.startswith(self.topic_prefixes)

    @abstractmethod
    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        """Write the effects of these events; runs inside the runner's transaction, with
        `search_path` set to the target schema (write unqualified table names)."""

    def apply_bulk(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        """The same effects for a large page (a rebuild); a projector that writes row by
        row may fold the page in memory here. Must leave the tables exactly as `apply`."""
        self.apply(cur, envelopes)

    @abstractmethod
    def tables(self) -> Sequence[str]:
        """The tables this projector owns, schema-qualified as live (`read.x`); a rebuild
        fills a copy of each in a shadow schema. Empty: it is never rebuilt."""


class ProjectionRunner:
    def __init__(
        self,
        app: Application[UUID],
        pool: ConnectionPool,
        projector: Projector,
        *,
        page_size: int = 2000,
        schema: str = LIVE_SCHEMA,
        bulk: bool = False,
    ) -> None:
        self.app = app
        self.pool = pool
        self.projector = projector
        self.page_size = page_size
        self.schema = schema
        self.bulk = bulk  # large pages: the projector's apply_bulk
        self.applied = 0
        self.last_applied_at = 0.0
        self.tracking = SQL("{}.tracking").format(Identifier(schema))
        self.search_path = SQL("SET LOCAL search_path TO {}, public").format(Identifier(schema))

    def position(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                SQL("SELECT position FROM {} WHERE projection = %s").format(self.tracking),
                (self.projector.name,),
            ).fetchone()
        return row[0] if row else 0

    def run_once(self, until: int | None = None) -> int:
        """Apply at most one page; return how many notifications it covered."""
        with self.pool.connection() as conn, conn.transaction():
            covered = self.apply_page(conn, until)
        if covered:
            self.applied += covered
            self.last_applied_at = time.time()
        return covered

    def apply_page(self, conn: Connection[Any], until: int | None = None) -> int:
        """One page inside the caller's transaction: lock the tracking row, apply the events
        after it, move it; nothing once the row is at `until` or past it. Leaves
        `search_path` on the target schema for that transaction."""
        conn.execute(self.search_path)
        position = self.lock_position(conn)
        if until is not None and position >= until:
            return 0
        notifications = self.app.recorder.select_notifications(
            start=position, limit=self.page_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        envelopes = [
            Envelope(n.id, self.app.mapper.to_domain_event(n))
            for n in notifications
            if self.projector.wants(n.topic)
        ]
        with conn.cursor() as cur:
            if envelopes and self.bulk:
                self.projector.apply_bulk(cur, envelopes)
            elif envelopes:
                self.projector.apply(cur, envelopes)
            self.move_position(cur, notifications[-1].id)
        return len(notifications)

    def move_position(self, cur: Cursor[Any], position: int) -> None:
        cur.execute(
            SQL("UPDATE {} SET position = %s, updated_at = now() WHERE projection = %s").format(
                self.tracking
            ),
            (position, self.projector.name),
        )

    def run_until_caught_up(self, until: int | None = None) -> int:
        """Up to the head, or only up to `until` (a bound: under writes faster than a page a
        round trip, the head is never reached)."""
        total = 0
        while n := self.run_once(until):
            total += n
        return total

    def lock_position(self, conn: Connection[Any]) -> int:
        conn.execute(
            SQL(
                "INSERT INTO {} (projection, position) VALUES (%s, 0) "
                "ON CONFLICT (projection) DO NOTHING"
            ).format(self.tracking),
            (self.projector.name,),
        )
        row = conn.execute(
            SQL("SELECT position FROM {} WHERE projection = %s FOR UPDATE").format(self.tracking),
            (self.projector.name,),
        ).fetchone()
        assert row is not None
        return int(row[0])
