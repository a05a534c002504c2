"""The projection daemon: every projector's runner plus the chain sealer, woken by NOTIFY.

`python -m projections.daemon` (started by `make run`). Polls every second as a fallback in
case a notification is missed (for example across a database restart).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import psycopg

from audit.chain import seal
from infra.bootstrap import Core, build_core
from infra.settings import get_settings
from projections.framework import ProjectionRunner
from projections.registry import all_projectors
from projections.together import run_together_until_caught_up
from workers.relay import OutboxRelay
from workers.scheduler import Scheduler

log = logging.getLogger("projections")


class Daemon:
    def __init__(self, core: Core, poll_seconds: float = 1.0) -> None:
        self.core = core
        self.poll_seconds = poll_seconds
        self.runners = [ProjectionRunner(core.app, core.read_pool, p) for p in all_projectors()]
        self.stopping = threading.Event()
        # Side effects: outbox rows to dramatiq, and the periodic sweeps; both wait quietly
        # (and the projections go on) while Redis is down.
        self.relay = OutboxRelay(core.read_pool, core.settings.redis_url)
        self.scheduler = Scheduler(lambda: self.relay.broker if self.relay.available else None)

    def step(self) -> int:
        done = run_together_until_caught_up(self.runners)
        # A pooled connection: a step runs on every NOTIFY, too often to connect each time.
        with self.core.read_pool.connection() as conn:
            while sealed := seal(conn):
                done += sealed
        self.relay.step()
        self.scheduler.tick()
        return done

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.follow()
            except psycopg.OperationalError as exc:
                # The database restarted (or is down): listen again once it answers.
                log.warning("lost the database connection, listening again: %s", exc)
                self.stopping.wait(self.poll_seconds)

    def follow(self) -> None:
        channel = self.core.app.recorder.channel_name  # type: ignore[attr-defined]
        with psycopg.connect(self.core.app_url, autocommit=True) as listener:
            listener.execute(f'LISTEN "{channel}"')
            while not self.stopping.is_set():
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - keep tailing; the next step retries
                    log.exception("projection step failed")
                    time.sleep(self.poll_seconds)
                for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                    pass


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is required (make run sets it)")
    core = build_core(settings, settings.database_url, migrate=False, group_commit=False)
    daemon = Daemon(core)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stopping.set())
    try:
        daemon.run()
    except KeyboardInterrupt:
        pass
    finally:
        daemon.relay.close()
        core.close()


if __name__ == "__main__":
    main()
