"""What a projector is, and the runner that feeds it the log exactly once.

A runner reads the notification log after its projector's tracked position, in pages, and
hands each page to the projector inside one transaction that also moves the position. The
tracking row is locked FOR UPDATE, so two runners of one projector never both apply a page,
and a crash at any point leaves either the whole page applied with its position, or none.
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
from psycopg_pool import ConnectionPool


@dataclass(frozen=True, slots=True)
class Envelope:
    position: int
    event: Any


class Projector(ABC):
    name: str
    # Topic prefixes worth decoding; None means every event.
    topic_prefixes: tuple[str, ...] | None = None

    def wants(self, topic: str) -> bool:
        return self.topic_prefixes is None or topic.startswith(self.topic_prefixes)

    @abstractmethod
    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        """Write the effects of these events; runs inside the runner's transaction."""

    @abstractmethod
    def tables(self) -> Sequence[str]:
        """The tables this projector owns (emptied before a rebuild)."""


class ProjectionRunner:
    def __init__(
        self,
        app: Application[UUID],
        pool: ConnectionPool,
        projector: Projector,
        *,
        page_size: int = 2000,
    ) -> None:
        self.app = app
        self.pool = pool
        self.projector = projector
        self.page_size = page_size
        self.applied = 0
        self.last_applied_at = 0.0

    def position(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT position FROM read.tracking WHERE projection = %s", (self.projector.name,)
            ).fetchone()
        return row[0] if row else 0

    def run_once(self) -> int:
        """Apply at most one page; return how many notifications it covered."""
        with self.pool.connection() as conn, conn.transaction():
            position = self._lock_position(conn)
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
                if envelopes:
                    self.projector.apply(cur, envelopes)
                cur.execute(
                    "UPDATE read.tracking SET position = %s, updated_at = now() "
                    "WHERE projection = %s",
                    (notifications[-1].id, self.projector.name),
                )
        self.applied += len(notifications)
        self.last_applied_at = time.time()
        return len(notifications)

    def run_until_caught_up(self) -> int:
        total = 0
        while n := self.run_once():
            total += n
        return total

    def _lock_position(self, conn: Connection[Any]) -> int:
        conn.execute(
            "INSERT INTO read.tracking (projection, position) VALUES (%s, 0) "
            "ON CONFLICT (projection) DO NOTHING",
            (self.projector.name,),
        )
        row = conn.execute(
            "SELECT position FROM read.tracking WHERE projection = %s FOR UPDATE",
            (self.projector.name,),
        ).fetchone()
        assert row is not None
        return int(row[0])
