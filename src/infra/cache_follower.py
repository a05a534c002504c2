"""Keeps a process's aggregate cache from going stale behind other processes' writes.

Every API worker caches aggregates and decides on them without reading the store; a write
from another worker makes the cached copy stale, and a command decided on it collides at
insert and is decided again (correct, but paid twice). This thread listens on the channel
the append function notifies (`ledger_events`, one notification per batch). A notification
from one of this process's own connections changes nothing cached here; one from any other
backend makes it read which aggregates moved since it last looked and bring the copies it
holds at an older version up to date: their newer events, applied to a copy that then
replaces the cached one. Evicting them instead made the next command on each reload its
whole history (a member's wallet, after every payment through another worker), a cost that
grows with the member's age. A command racing this is still caught by the version check at
insert: the follower only makes the collisions rare.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from copy import deepcopy
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from infra.db import log_head
from ledger.application import replay

log = logging.getLogger(__name__)

WAIT_S = 0.5  # how long one wait for notifications lasts (so that close() is prompt)
FAR_BEHIND = 50_000  # events; past this, drop the whole cache rather than check each
RECONNECT_S = 1.0

_MOVED = (
    "SELECT originator_id, max(originator_version) FROM public.ledger_events "
    "WHERE notification_id > %s AND notification_id <= %s GROUP BY originator_id"
)
# Every event of the given aggregates past the given versions: from the cached version, not
# from where the follower last looked, so a copy cached while the follower was reading is
# brought up to date too.
_NEWER = (
    "SELECT e.originator_id, e.originator_version, e.topic, e.state "
    "FROM unnest(%s::uuid[], %s::bigint[]) AS c(id, version) JOIN public.ledger_events e "
    "ON e.originator_id = c.id AND e.originator_version > c.version "
    "ORDER BY e.originator_id, e.originator_version"
)


class CacheFollower:
    def __init__(self, app: Application[UUID], url: str, own_pids: set[int]) -> None:
        self.app, self.url, self.own_pids = app, url, own_pids
        self.evicted = 0
        self.fast_forwarded = 0
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
            stale: dict[UUID, Aggregate] = {}
            for aggregate_id, version in conn.execute(_MOVED, (self._last, head)):
                try:
                    cached = cache.get(aggregate_id)
                except KeyError:
                    continue
                if cached.version < version:
                    stale[aggregate_id] = cached
            if stale:
                self._fast_forward(conn, cache, stale)
        self._last = head

    def _fast_forward(
        self, conn: psycopg.Connection[Any], cache: Any, stale: dict[UUID, Aggregate]
    ) -> None:
        newer: dict[UUID, list[StoredEvent]] = defaultdict(list)
        ids, versions = list(stale), [a.version for a in stale.values()]
        for aggregate_id, version, topic, state in conn.execute(_NEWER, (ids, versions)):
            newer[aggregate_id].append(StoredEvent(aggregate_id, version, topic, state))
        to_domain_event = self.app.mapper.to_domain_event
        for aggregate_id, cached in stale.items():
            try:
                # A copy: commands deep-copy the cached object meanwhile, it must not change.
                fresh = replay(deepcopy(cached), (to_domain_event(e) for e in newer[aggregate_id]))
            except Exception:  # noqa: BLE001 - an event this copy cannot take: read it anew
                log.exception("cache follower: could not bring %s up to date", aggregate_id)
                fresh = None
            try:
                current = cache.get(aggregate_id)
            except KeyError:
                continue  # gone meanwhile (evicted after a collision): nothing to replace
            if current is not cached:
                continue  # replaced meanwhile by this process's own newer write
            if fresh is None:
                self._evict(cache, aggregate_id)
            else:
                cache.put(aggregate_id, fresh)
                self.fast_forwarded += 1

    def _evict(self, cache: Any, aggregate_id: UUID) -> None:
        try:
            cache.get(aggregate_id, evict=True)
            self.evicted += 1
        except KeyError:
            pass
