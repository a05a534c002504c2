"""Group commit: concurrent commands share one transaction (TigerBeetle-style batching).

Command threads encode their own events, queue them and wait. One committer thread drains
the queue; it waits at most `max_wait` for more commands, but closes the batch as soon as
every command in flight is in it, then writes the whole batch with one gap-safe insert. If
the batch hits a uniqueness violation, one query finds which commands are guilty (a receipt
already written: a duplicate, which gets its first result; an event version already taken,
by the store or by an earlier command of the same batch: a concurrency conflict, which the
command runner retries on fresh state) and the innocent rest is written again as one batch.
Only if that fails too is each command written alone. (Several API workers each cache
aggregates, so conflicts are routine there; writing the batch alone after each one made two
workers slower than one.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import DataError, IntegrityError, StoredEvent

from infra.recorder import LedgerRecorder
from ledger.commands import ConcurrencyConflict, DuplicateCommand, Receipt, Submission


@dataclass
class _Waiter:
    submission: Submission
    stored: list[StoredEvent]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class DirectCommitter:
    """One transaction per command: the baseline, and what single-threaded tools use."""

    def __init__(self, app: Application[UUID]) -> None:
        self.app = app
        self.recorder: LedgerRecorder = app.recorder  # type: ignore[assignment]

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        yield

    def commit(self, submission: Submission) -> None:
        stored = [self.app.mapper.to_stored_event(e) for e in submission.events]
        try:
            self.recorder.insert_events(stored, receipts=[submission.receipt])
        except IntegrityError:
            raise _classify(self.recorder, submission.receipt) from None
        _cache(self.app, submission)

    def find_receipt(self, command_id: UUID) -> Receipt | None:
        return self.recorder.find_receipt(command_id)

    def close(self) -> None:
        pass


class GroupCommitter(DirectCommitter):
    def __init__(
        self, app: Application[UUID], *, max_wait_s: float = 0.003, max_batch: int = 500
    ) -> None:
        super().__init__(app)
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Waiter] = []
        self._active = 0
        self._closed = False
        self.batches = 0
        self.commands = 0
        self._thread = threading.Thread(target=self._loop, name="group-committer", daemon=True)
        self._thread.start()

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def commit(self, submission: Submission) -> None:
        # Encoding happens here, on the command's thread, not on the committer's.
        waiter = _Waiter(
            submission, [self.app.mapper.to_stored_event(e) for e in submission.events]
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("committer closed")
            self._queue.append(waiter)
            self._cond.notify_all()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        _cache(self.app, submission)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _next_batch(self) -> list[_Waiter]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait_s
            while (
                len(self._queue) < min(self._active, self.max_batch)
                and not self._closed
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(remaining)
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._closed:
                    return
                continue
            self._write(batch)
            self.batches += 1
            self.commands += len(batch)

    def _write(self, batch: list[_Waiter]) -> None:
        try:
            self._insert(batch)
        except (IntegrityError, DataError) as e:
            if len(batch) == 1:
                batch[0].error = self._refusal(batch[0], e)
            elif isinstance(e, IntegrityError):
                self._write_screened(batch)
            else:  # one command's bad input: writing each alone finds it
                for waiter in batch:
                    self._write_alone(waiter)
        except Exception as e:  # noqa: BLE001 - the database itself failed: every command
            for waiter in batch:
                waiter.error = e
        for waiter in batch:
            waiter.done.set()

    def _write_screened(self, batch: list[_Waiter]) -> None:
        innocent = self._screen(batch)
        if not innocent:
            return
        try:
            self._insert(innocent)
        except Exception:  # noqa: BLE001 - not explained by the screen: one at a time
            for waiter in innocent:
                self._write_alone(waiter)

    def _screen(self, batch: list[_Waiter]) -> list[_Waiter]:
        """Refuse the commands the store would refuse; return the rest, in order."""
        try:
            claimed, earlier = self.recorder.find_taken(
                [(e.originator_id, e.originator_version) for w in batch for e in w.stored],
                [w.submission.receipt.command_id for w in batch],
            )
        except Exception:  # noqa: BLE001 - cannot tell: let the one-at-a-time path decide
            return batch
        commands: set[UUID] = set()
        innocent = []
        for waiter in batch:
            command_id = waiter.submission.receipt.command_id
            keys = {(e.originator_id, e.originator_version) for e in waiter.stored}
            if command_id in earlier:
                found = earlier[command_id]
                waiter.error = DuplicateCommand(found.fingerprint, found.result)
            elif command_id in commands or not keys.isdisjoint(claimed):
                waiter.error = ConcurrencyConflict(command_id)
            else:
                innocent.append(waiter)
                commands.add(command_id)
                claimed |= keys
        return innocent

    def _write_alone(self, waiter: _Waiter) -> None:
        try:
            self._insert([waiter])
        except Exception as e:  # noqa: BLE001 - handed to the waiting command
            waiter.error = self._refusal(waiter, e)

    def _refusal(self, waiter: _Waiter, error: Exception) -> Exception:
        if not isinstance(error, IntegrityError):
            return error
        try:
            return _classify(self.recorder, waiter.submission.receipt)
        except Exception as e:  # noqa: BLE001 - the database went away: never kill the thread
            return e

    def _insert(self, batch: list[_Waiter]) -> None:
        stored = [e for w in batch for e in w.stored]
        self.recorder.insert_events(stored, receipts=[w.submission.receipt for w in batch])


def _classify(recorder: LedgerRecorder, receipt: Receipt) -> Exception:
    earlier = recorder.find_receipt(receipt.command_id)
    if earlier is not None:
        return DuplicateCommand(earlier.fingerprint, earlier.result)
    return ConcurrencyConflict(receipt.command_id)


def _cache(app: Application[UUID], submission: Submission) -> None:
    cache = app.repository.cache
    if cache is not None:
        for aggregate in submission.aggregates:
            cache.put(aggregate.id, aggregate)
