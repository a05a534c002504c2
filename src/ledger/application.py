"""The one eventsourcing Application that holds every aggregate of the ledger."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder

from ledger.transcodings import JournalEntryAsDict


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
