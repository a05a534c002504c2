"""A fuel-card top-up paid through WeChat Pay or Alipay, with its campaign bonus fixed when
it is created (what the member was promised is what they get)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.errors import OrderNotPayable
from ledger.ids import from_key


class TopUp(Aggregate):
    @staticmethod
    def create_id(member_id: UUID, top_up_key: str) -> UUID:
        return from_key("top-up", f"{member_id}:{top_up_key}")

    @event("Created")
    def __init__(
        self,
        member_id: UUID,
        top_up_key: str,
        method: str,
        amount_fen: int,
        bonus_fen: int,
        expires_at: datetime,
    ) -> None:
        self.member_id = member_id
        self.top_up_key = top_up_key
        self.method = method
        self.amount_fen = amount_fen
        self.bonus_fen = bonus_fen
        self.expires_at = expires_at
        self.status = "created"
        self.provider_transaction: str | None = None

    @property
    def out_trade_no(self) -> str:
        return self.id.hex

    def check_payable(self, now: datetime) -> None:
        if self.status != "created" or now >= self.expires_at:
            raise OrderNotPayable("top-up is no longer payable", status=self.status)

    def mark_paid(self, transaction_id: str, paid_at: datetime) -> None:
        self._paid(transaction_id=transaction_id, paid_at=paid_at)

    def expire(self) -> None:
        if self.status != "created":
            raise OrderNotPayable(f"top-up is {self.status}", status=self.status)
        self._expired()

    @event("Paid")
    def _paid(self, transaction_id: str, paid_at: datetime) -> None:
        self.status = "paid"
        self.provider_transaction = transaction_id

    @event("Expired")
    def _expired(self) -> None:
        self.status = "expired"
