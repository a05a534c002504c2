"""A station's settled income: fed by settlement batches (one event per batch, never one per
payment, so no payment ever touches this aggregate) and drawn down by withdrawals."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import event

from ledger import accounts as acc
from ledger.accounts import CNY
from ledger.domain.book import Book
from ledger.errors import InvalidAmount
from ledger.ids import from_key
from ledger.journal import JournalEntry, transfer


class StationAccount(Book):
    @staticmethod
    def create_id(station_id: UUID) -> UUID:
        return from_key("station-account", str(station_id))

    @event("Opened")
    def __init__(self, station_id: UUID) -> None:
        self.station_id = station_id
        self.settled_up_to = 0
        self._init_book(f"station:{station_id}:")

    @property
    def available(self) -> int:
        return self.balance(acc.station_available(self.station_id), CNY)

    def settle(self, entry_id: UUID, amount: int, up_to_position: int) -> JournalEntry:
        """Move income earned up to a log position into the withdrawable balance."""
        if up_to_position <= self.settled_up_to:
            raise InvalidAmount(
                "batch already settled", up_to=up_to_position, settled=self.settled_up_to
            )
        if amount <= 0:
            raise InvalidAmount("a settlement batch must be positive", amount=amount)
        entry = transfer(
            entry_id,
            "station_settlement",
            acc.station_income(self.station_id),
            acc.station_available(self.station_id),
            amount,
            CNY,
            up_to_position=up_to_position,
        )
        self.check(entry)
        self._settlement_batch_applied(entry=entry, up_to_position=up_to_position)
        return entry

    @event("SettlementBatchApplied")
    def _settlement_batch_applied(self, entry: JournalEntry, up_to_position: int) -> None:
        self._apply(entry)
        self.settled_up_to = up_to_position
