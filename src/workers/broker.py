"""The dramatiq broker: Redis at REDIS_URL (`redis://...` or `unix:///path/to/socket`).

Every process that sends or runs actors builds its broker here, so retries, time limits and
age limits are the same everywhere. Tests build their own with `build_broker(url)` on a test
Redis and close it with `close_broker`.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq import Message
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from redis import Redis

from infra.settings import get_settings

NAMESPACE = "ledger"
HEARTBEAT_KEY = "ledger:workers:heartbeat"
HEARTBEAT_TTL_S = 300

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
# A killed worker's unacknowledged messages go back to the queue when another broker's
# command runs Redis-side maintenance and sees the worker's heartbeat is this old. An idle
# worker polls every second, so 15 s of silence means it is gone; dramatiq's defaults (60 s,
# and maintenance on 0.1% of commands) left them waiting for minutes after a kill -9.
DEAD_WORKER_AFTER_MS = 15 * SECOND_MS
MAINTENANCE_CHANCE = 50_000  # per million commands: an idle worker's polls find them in ~10 s


def default_middleware() -> list[Middleware]:
    """Actors override these per actor (max_retries=, time_limit=, max_age=)."""
    return [
        # A message nobody could run for a day is dead-lettered, not run late.
        AgeLimit(max_age=24 * 60 * MINUTE_MS),
        TimeLimit(time_limit=5 * MINUTE_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at 10 min.
        Retries(max_retries=12, min_backoff=SECOND_MS, max_backoff=10 * MINUTE_MS),
        CurrentMessage(),
    ]


class RedisUnavailable(ConnectionClosed, redis.ConnectionError):
    """Both what dramatiq restarts a consumer on and what callers of enqueue catch."""


class LedgerBroker(RedisBroker):
    """dramatiq's RedisBroker with two repairs for a Redis that goes away and comes back.

    1. A worker holds delayed messages (retries waiting for their time) in memory; when it
       moves one back to its queue while Redis is down, the raw redis error killed its
       delay-queue consumer for good. `enqueue` raises a ConnectionClosed instead (still a
       redis.ConnectionError to its callers), which dramatiq handles by restarting it.
    2. A restarted consumer forgets the delayed messages it held; they stay in this broker's
       ack sets in Redis, which are requeued only for a broker that looks dead. A restarted
       consumer therefore takes a new broker id: the old one falls silent and, once
       DEAD_WORKER_AFTER_MS have passed, its messages go back to their queues (one that was
       running runs again: every effect is idempotent).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._consumed: set[str] = set()

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name in self._consumed:  # a restart, after a connection error
            self.broker_id = str(uuid4())
        self._consumed.add(queue_name)
        return super().consume(queue_name, prefetch, timeout)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        try:
            return super().enqueue(message, delay=delay)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailable(exc) from None


def build_broker(url: str | None = None) -> RedisBroker:
    """A new broker on `url`, REDIS_URL by default (the launcher hands the embedded one)."""
    url = url or get_settings().redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set: `make run` sets it, or export REDIS_URL")
    return LedgerBroker(
        url=url,
        namespace=NAMESPACE,
        middleware=default_middleware(),
        heartbeat_timeout=DEAD_WORKER_AFTER_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )


def setup_broker(url: str | None = None) -> RedisBroker:
    """Build the broker and make it dramatiq's global one; call before declaring actors."""
    broker = build_broker(url)
    dramatiq.set_broker(broker)
    return broker


def close_broker(broker: RedisBroker) -> None:
    """Close the broker and its Redis pool (an embedded Redis stops only when all are closed)."""
    broker.close()
    broker.client.connection_pool.disconnect()


def record_heartbeat(client: Redis) -> float:
    now = time.time()
    client.set(HEARTBEAT_KEY, f"{now:.3f}", ex=HEARTBEAT_TTL_S)
    return now


def last_heartbeat(client: Redis) -> float | None:
    """When a worker last ran the heartbeat actor (epoch seconds), if within the TTL."""
    value = client.get(HEARTBEAT_KEY)
    return float(value) if value is not None else None
