"""The outbox relay: unsent outbox rows become dramatiq messages, in log order.

A row is stamped sent in the same transaction that enqueued it. If Redis is down the enqueue
raises, the transaction rolls back and the rows wait for the next attempt; a crash between
the enqueue and the commit sends a row twice, which its actor absorbs (the message id is
the event id, and each effect is idempotent by it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from psycopg import Connection
from psycopg_pool import ConnectionPool

from workers.broker import build_broker, close_broker

log = logging.getLogger("workers.relay")
QUEUE = "default"
# A daemon must not hang on a Redis that accepts connections but does not answer.
REDIS_TIMEOUTS = {"socket_timeout": "5", "socket_connect_timeout": "2"}


def outbox_message(event_id: UUID, actor: str, payload: dict[str, Any]) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=QUEUE,
        actor_name=actor,
        args=(),
        kwargs={**payload, "event_id": str(event_id)},
        options={},
        message_id=str(event_id),
    )


def relay(conn: Connection[Any], broker: dramatiq.Broker, limit: int = 500) -> int:
    """Send up to `limit` unsent rows; returns how many. Raises when the broker is down."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT event_id, actor, payload FROM read.outbox WHERE sent_at IS NULL "
            "ORDER BY position LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        ).fetchall()
        for event_id, actor, payload in rows:
            broker.enqueue(outbox_message(event_id, actor, payload))
        if rows:
            conn.execute(
                "UPDATE read.outbox SET sent_at = now() WHERE event_id = ANY(%s)",
                ([r[0] for r in rows],),
            )
    return len(rows)


def relay_all(conn: Connection[Any], broker: dramatiq.Broker, limit: int = 500) -> int:
    total = 0
    while (sent := relay(conn, broker, limit)) > 0:
        total += sent
        if sent < limit:
            break
    return total


def with_timeouts(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in REDIS_TIMEOUTS.items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


class OutboxRelay:
    """The projection daemon's relay: one broker built lazily, an outage logged once, and
    retried every `retry_seconds` rather than on every step."""

    def __init__(
        self,
        pool: ConnectionPool,
        redis_url: str | None,
        *,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.redis_url = redis_url
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.sent = 0
        self.down_since: float | None = None
        self._broker: RedisBroker | None = None
        self._retry_at = 0.0
        if not redis_url:
            log.warning("REDIS_URL is not set: outbox messages wait until it is")

    @property
    def broker(self) -> RedisBroker | None:
        if self._broker is None and self.redis_url:
            self._broker = build_broker(with_timeouts(self.redis_url))
        return self._broker

    @property
    def available(self) -> bool:
        return self.down_since is None or self.clock() >= self._retry_at

    def step(self) -> int:
        """Relay what is waiting; never raises (the daemon keeps projecting without Redis)."""
        broker = self.broker
        if broker is None or not self.available:
            return 0
        try:
            with self.pool.connection() as conn:
                sent = relay_all(conn, broker)
        except Exception as exc:  # noqa: BLE001 - Redis down (or the database): retry later
            self.failed(exc)
            return 0
        self.recovered()
        self.sent += sent
        return sent

    def failed(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = self.clock()
            log.warning("outbox relay paused, messages wait in the outbox: %s", exc)
        self._retry_at = self.clock() + self.retry_seconds

    def recovered(self) -> None:
        if self.down_since is not None:
            log.info("outbox relay resumed after %.0f s", self.clock() - self.down_since)
            self.down_since = None

    def close(self) -> None:
        if self._broker is not None:
            close_broker(self._broker)
            self._broker = None
