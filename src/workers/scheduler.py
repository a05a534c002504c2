"""A tiny scheduler inside the projection daemon: every `every_seconds` it enqueues each job.

One daemon runs per deployment, so the jobs go out once per period. While Redis is down a
period is skipped quietly: every job is a sweep that the next period repeats, so nothing is
lost by skipping one.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dramatiq

log = logging.getLogger("workers.scheduler")

Job = Callable[[], dict[str, Any]]  # the actor's kwargs, worked out when it is sent


def default_jobs() -> dict[str, Job]:
    return {
        "expire_due": lambda: {"now": datetime.now(UTC).isoformat()},
        "loyalty_sweep": lambda: {"now": datetime.now(UTC).isoformat()},
        "heartbeat": dict,
        # does nothing unless the last backup is older than BACKUP_EVERY_HOURS
        "backup_due": dict,
        # does nothing once yesterday's provider statements are imported
        "reconcile_due": lambda: {"now": datetime.now(UTC).isoformat()},
    }


class Scheduler:
    def __init__(
        self,
        broker: Callable[[], dramatiq.Broker | None],
        jobs: dict[str, Job] | None = None,
        *,
        every_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.jobs = default_jobs() if jobs is None else jobs
        self.every_seconds = every_seconds
        self.clock = clock
        self.next_at = clock()  # the first period starts at once
        self.sent = 0

    def tick(self) -> int:
        """Enqueue every job if a period is due; returns how many went out. Never raises."""
        now = self.clock()
        if now < self.next_at:
            return 0
        self.next_at = now + self.every_seconds
        broker = self.broker()
        if broker is None:
            return 0
        sent = 0
        try:
            for actor, kwargs in self.jobs.items():
                broker.enqueue(
                    dramatiq.Message(
                        queue_name="default",
                        actor_name=actor,
                        args=(),
                        kwargs=kwargs(),
                        options={},
                        message_id=str(uuid.uuid4()),
                    )
                )
                sent += 1
        except Exception as exc:  # noqa: BLE001 - Redis down: this period is skipped
            log.debug("scheduled jobs skipped this period: %s", exc)
        self.sent += sent
        return sent
