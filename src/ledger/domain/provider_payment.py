"""A payment the provider reported, keyed by its transaction id: applied once, however often
and in whatever order the notification arrives. One that cannot be applied (the order had
expired, was already paid, or the amount differs) parks the money in suspense until it is
refunded, and is flagged for finance."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.ids import from_key
from ledger.journal import JournalEntry


class ProviderPayment(Aggregate):
    @staticmethod
    def create_id(provider: str, transaction_id: str) -> UUID:
        return from_key("provider-payment", f"{provider}:{transaction_id}")

    @event("Received")
    def __init__(
        self,
        provider: str,
        transaction_id: str,
        out_trade_no: str,
        order_id: UUID | None,
        amount_fen: int,
        outcome: str,
        reason: str,
        entry: JournalEntry | None,
        paid_at: datetime,
    ) -> None:
        # outcome: "applied" | "late" | "duplicate" | "amount_mismatch" | "unknown_order"
        self.provider = provider
        self.transaction_id = transaction_id
        self.out_trade_no = out_trade_no
        self.order_id = order_id
        self.amount_fen = amount_fen
        self.outcome = outcome
        self.reason = reason
        self.paid_at = paid_at
        self.refund_state: str | None = None

    @property
    def needs_refund(self) -> bool:
        return self.outcome in ("late", "duplicate") and self.refund_state is None

    def refund_requested(self, out_refund_no: str) -> None:
        self._refund_requested(out_refund_no=out_refund_no)

    @event("RefundRequested")
    def _refund_requested(self, out_refund_no: str) -> None:
        self.refund_state = "requested"
