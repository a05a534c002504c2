"""The dramatiq broker: Redis at REDIS_URL (`redis://...` or `unix:///path/to/socket`).

Every process that sends or runs actors builds its broker here, so retries, time limits and
age limits are the same everywhere. Tests build their own with `build_broker(url)` on a test
Redis and close it with `close_broker`.
"""

from __future__ import annotations

import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
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


def build_broker(url: str | None = None) -> RedisBroker:
    """A new broker on `url`, REDIS_URL by default (the launcher hands the embedded one)."""
    url = url or get_settings().redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set: `make run` sets it, or export REDIS_URL")
    return RedisBroker(url=url, namespace=NAMESPACE, middleware=default_middleware())


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
