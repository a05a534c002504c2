"""Keeps a process's aggregate cache from going stale behind other processes' writes.

Every API worker caches aggregates and decides on them without reading the store; a write
from another worker makes the cached copy stale, and a command decided on it collides at
insert and is decided again (correct, but paid twice). This thread listens on the channel
the append function notifies (`ledger_events`, one notification per batch). A notification
from one of this process's own connections changes nothing cached here; one from any other
backend makes it read which aggregates moved since it last looked, and evict those it holds
at an older version. A command racing the eviction is still caught by the version check at
insert: this only makes the collisions rare.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application

from infra.db import log_head

log = logging.getLogger(__name__)

WAIT_S = 0.5  # how long one wait for notifications lasts (so that close() is prompt)
FAR_BEHIND = 50_000  # events; past this, drop the whole cache rather than check each
RECONNECT_S = 1.0

_MOVED = (
    "SELECT originator_id, max(originator_version) FROM public.ledger_events "
    "WHERE notification_id > %s AND notification_id <= %s GROUP BY originator_id"
)


class CacheFollower:
    def __init__(self, app: Application[UUID], url: str, own_pids: set[int]) -> None:
        self.app, self.url, self.own_pids = app, url, own_pids
        self.evicted = 0
        self.reads = 0
        self._last = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cache-follower", daemon=True)

    def start(self, timeout: float = 10.0) -> CacheFollower:
        """Returns once listening: from then on, no other process's write is missed."""
        self._thread.start()
        self._ready.wait(timeout)
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute("LISTEN ledger_events")
                    if self._last:
                        self._catch_up(conn)  # what happened while reconnecting
                    else:
                        self._last = log_head(conn)
                    self._ready.set()
                    self._follow(conn)
            except psycopg.Error as e:
                log.warning("cache follower: %s; reconnecting", e)
                self._stop.wait(RECONNECT_S)

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            notes = list(conn.notifies(timeout=WAIT_S, stop_after=1))
            if any(n.pid not in self.own_pids for n in notes):
                self._catch_up(conn)

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        cache = self.app.repository.cache
        head = log_head(conn)
        if cache is None or head <= self._last:
            return
        self.reads += 1
        if head - self._last > FAR_BEHIND:
            for aggregate_id in list(getattr(cache, "cache", {})):
                self._evict(cache, aggregate_id)
        else:
            for aggregate_id, version in conn.execute(_MOVED, (self._last, head)):
                try:
                    cached = cache.get(aggregate_id)
                except KeyError:
                    continue
                if cached.version < version:
                    self._evict(cache, aggregate_id)
        self._last = head

    def _evict(self, cache: Any, aggregate_id: UUID) -> None:
        try:
            cache.get(aggregate_id, evict=True)
            self.evicted += 1
        except KeyError:
            pass
