"""Running one command: load, decide, save every changed aggregate atomically, exactly once.

A command is a function of a UnitOfWork. It loads aggregates through the unit (which takes
an in-process lock per aggregate so that two commands on one aggregate never race inside one
process), changes them, and returns a JSON-able result. The runner hands the new events and
the command's receipt to the committer; a concurrency conflict (another process got there
first) reruns the command on fresh state; a duplicate command id returns the first result.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate

from ledger.errors import ConcurrencyExhausted, DomainError, IdempotencyConflict

A = TypeVar("A", bound=Aggregate)


class ConcurrencyConflict(Exception):
    """Another writer saved one of the aggregates first."""


class DuplicateCommand(Exception):
    def __init__(self, fingerprint: str, result: Any) -> None:
        super().__init__("duplicate command")
        self.fingerprint = fingerprint
        self.result = result


@dataclass(frozen=True)
class Receipt:
    command_id: UUID
    fingerprint: str
    result: Any


@dataclass
class Submission:
    """What one command asks the committer to write in one transaction."""

    events: list[Any]
    aggregates: list[Aggregate]
    receipt: Receipt


class Committer(Protocol):
    def in_flight(self) -> AbstractContextManager[None]: ...

    def commit(self, submission: Submission) -> None: ...

    def find_receipt(self, command_id: UUID) -> Receipt | None: ...


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AggregateLocks:
    """In-process locks per aggregate id; taken with a timeout so lock-order cycles between
    multi-aggregate commands end in a retry, never a deadlock."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[UUID, list[Any]] = {}  # id -> [lock, users]

    def acquire(self, aggregate_id: UUID, timeout_ms: int) -> bool:
        with self._guard:
            slot = self._locks.setdefault(aggregate_id, [threading.Lock(), 0])
            slot[1] += 1
        # timeout 0: try once, without waiting
        if slot[0].acquire(timeout=timeout_ms / 1000):
            return True
        self._forget(aggregate_id)
        return False

    def release(self, aggregate_id: UUID) -> None:
        with self._guard:
            slot = self._locks[aggregate_id]
        slot[0].release()
        self._forget(aggregate_id)

    def _forget(self, aggregate_id: UUID) -> None:
        with self._guard:
            slot = self._locks[aggregate_id]
            slot[1] -= 1
            if slot[1] == 0:
                del self._locks[aggregate_id]


class LockTimeout(Exception):
    pass


LOCK_ORDER_TIMEOUT_MS = 30_000  # how long a retry may wait for all the locks it wants


@dataclass
class UnitOfWork:
    app: Application[UUID]
    locks: AggregateLocks
    lock_timeout_ms: int = 2_000
    loaded: dict[UUID, Aggregate] = field(default_factory=dict)
    held: set[UUID] = field(default_factory=set)
    wanted: set[UUID] = field(default_factory=set)
    # A read that saves nothing (a quote) need not wait behind the commands writing.
    locking: bool = True

    def _lock(self, aggregate_id: UUID) -> None:
        """Wait for the first lock a command takes; past the first, only try: a command
        that waited for one lock while holding another made convoys (see lock_in_order).
        When one is busy the command gives up at once, and the runner takes every lock it
        wanted with lock_in_order before deciding again."""
        self.wanted.add(aggregate_id)
        if aggregate_id in self.held or not self.locking:
            return
        if not self._take(aggregate_id, 0 if self.held else self.lock_timeout_ms):
            raise LockTimeout(aggregate_id)

    def lock_in_order(self, ids: set[UUID], timeout_ms: int = LOCK_ORDER_TIMEOUT_MS) -> None:
        """Take all these locks, never waiting while holding one of them (the algorithm of
        C++'s std::lock): try each in one global order; when one is busy, let go of the
        rest and wait for that one alone, then try the others again.

        Waiting in order while holding the earlier locks stalled a contended wallet for
        minutes: a retried withdrawal held the day's limit and waited for the wallet, and
        every first attempt that got the wallet then waited (2 s, in vain) for the limit.
        """
        self.wanted |= ids
        if not self.locking:
            return
        deadline = time.monotonic() + timeout_ms / 1000
        order = sorted(ids, key=lambda u: u.bytes)
        busy: UUID | None = None
        while True:
            if busy is not None:  # holding none of them: wait for the busy one alone
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0 or not self._take(busy, left_ms):
                    raise LockTimeout(busy)
            busy = next((i for i in order if i not in self.held and not self._take(i, 0)), None)
            if busy is None:
                return
            for aggregate_id in order:
                if aggregate_id in self.held:
                    self.locks.release(aggregate_id)
                    self.held.discard(aggregate_id)

    def _take(self, aggregate_id: UUID, timeout_ms: int) -> bool:
        """Acquire within `timeout_ms` (0: try once) and remember it as held."""
        if not self.locks.acquire(aggregate_id, timeout_ms):
            return False
        self.held.add(aggregate_id)
        return True

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        if aggregate_id in self.loaded:
            return self.loaded[aggregate_id]  # type: ignore[return-value]
        self._lock(aggregate_id)
        aggregate: Aggregate = self.app.repository.get(aggregate_id)
        if not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate_id} is a {type(aggregate).__name__}, not {cls.__name__}")
        self.loaded[aggregate_id] = aggregate
        return aggregate

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            return self.get(cls, aggregate_id)
        except AggregateNotFoundError:
            return None

    def add(self, aggregate: A) -> A:
        """Register a new aggregate; creating one twice collides at commit (same id)."""
        self._lock(aggregate.id)
        self.loaded[aggregate.id] = aggregate
        return aggregate

    def get_or_create(self, cls: type[A], aggregate_id: UUID, factory: Callable[[], A]) -> A:
        found = self.find(cls, aggregate_id)
        return found if found is not None else self.add(factory())

    def collect(self) -> tuple[list[Any], list[Aggregate]]:
        events: list[Any] = []
        changed: list[Aggregate] = []
        for aggregate in self.loaded.values():
            new = aggregate.collect_events()
            if new:
                events.extend(new)
                changed.append(aggregate)
        return events, changed

    def release(self) -> None:
        for aggregate_id in self.held:
            self.locks.release(aggregate_id)
        self.held.clear()
        self.loaded.clear()


class CommandRunner:
    MAX_ATTEMPTS = 20

    def __init__(self, app: Application[UUID], committer: Committer) -> None:
        self.app = app
        self.committer = committer
        self.locks = AggregateLocks()

    def run(self, command_id: UUID, payload: Any, decide: Callable[[UnitOfWork], Any]) -> Any:
        """Run `decide` exactly once per command id; `payload` identifies the request."""
        with self.committer.in_flight():
            return self._run(command_id, fingerprint(payload), decide)

    def _run(self, command_id: UUID, print_: str, decide: Callable[[UnitOfWork], Any]) -> Any:
        wanted: set[UUID] = set()
        refreshed = False
        for attempt in range(self.MAX_ATTEMPTS):
            if attempt:
                # Back off holding no lock, so the command we collided with can finish.
                time.sleep(random.randint(0, 2 * attempt) / 1000)
            uow = UnitOfWork(self.app, self.locks)
            try:
                # After a lock cycle, take every lock the last attempt wanted, in one global
                # order, before deciding: the same cycle cannot form again.
                uow.lock_in_order(wanted)
                try:
                    result = decide(uow)
                except DomainError:
                    # A retried command may fail now only because its first run succeeded.
                    earlier = self.committer.find_receipt(command_id)
                    if earlier is not None:
                        return self._replay(earlier.fingerprint, earlier.result, print_)
                    if refreshed or not uow.loaded:
                        raise
                    # The cache may be stale (another process changed these aggregates):
                    # decide once more on state read from the store before refusing.
                    refreshed = True
                    self._evict(uow)
                    continue
                events, changed = uow.collect()
                self.committer.commit(
                    Submission(events, changed, Receipt(command_id, print_, result))
                )
                return result
            except DuplicateCommand as dup:
                return self._replay(dup.fingerprint, dup.result, print_)
            except ConcurrencyConflict:
                wanted |= uow.wanted
                self._evict(uow)  # another process wrote first: what is cached is stale
            except LockTimeout:
                wanted |= uow.wanted  # busy, not stale: what is cached stays
            finally:
                uow.release()
        raise ConcurrencyExhausted("too many concurrent changes; try again")

    @staticmethod
    def _replay(first: str, result: Any, now: str) -> Any:
        if first != now:
            raise IdempotencyConflict("this key was used for a different request")
        return result

    def _evict(self, uow: UnitOfWork) -> None:
        cache = self.app.repository.cache
        if cache is None:
            return
        for aggregate_id in uow.loaded:
            try:
                cache.get(aggregate_id, evict=True)
            except KeyError:
                pass
