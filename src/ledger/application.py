"""The one eventsourcing Application that holds every aggregate of the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application, Repository
from eventsourcing.persistence import JSONTranscoder

from ledger.transcodings import JournalEntryAsDict

T = TypeVar("T")


def replay(aggregate: T | None, events: Iterable[Any]) -> T | None:
    """The library's project_aggregate without its `isinstance` check against a runtime
    Protocol, which on Python 3.11 costs more than applying the event (a tenth of an API
    worker's CPU, in its loads and its cache follower, with two workers)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class LedgerRepository(Repository[UUID]):
    def get(self, aggregate_id: UUID, **kwargs: Any) -> Any:
        kwargs.setdefault("projector_func", replay)
        return super().get(aggregate_id, **kwargs)


class LedgerApplication(Application[UUID]):
    # One events table and one notification log for the whole ledger: a command that touches
    # an order, a wallet and a coupon is one atomic save, and finance replays one total order.
    name = "Ledger"
    env = {  # noqa: RUF012 - the library reads this class attribute
        "AGGREGATE_CACHE_MAXSIZE": "200000",
        # Conflicts are caught at insert and retried, so a stale cache costs one retry and a
        # cache hit costs no SELECT.
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
        "APPLICATION_RECORDER_TOPIC": "infra.recorder:LedgerRecorder",
    }

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(JournalEntryAsDict())

    def construct_repository(self) -> Repository[UUID]:
        repository = super().construct_repository()  # the library's, as the env sets it
        repository.__class__ = LedgerRepository  # loads replay without the Protocol check
        return repository
