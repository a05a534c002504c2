"""A refund, keyed by its out-refund number; tracks the provider's answer for its part."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.ids import from_key
from ledger.journal import JournalEntry


class Refund(Aggregate):
    @staticmethod
    def create_id(out_refund_no: str) -> UUID:
        return from_key("refund", out_refund_no)

    @event("Requested")
    def __init__(
        self,
        out_refund_no: str,
        order_id: UUID | None,
        payment_id: UUID | None,
        provider: str | None,
        provider_fen: int,
        provider_total_fen: int,
        out_trade_no: str,
        amount_fen: int,
        reason: str,
        requested_by: str,
        entry: JournalEntry | None = None,
    ) -> None:
        # `entry` is set only when the refund itself moves value (a suspense refund); an
        # order's refund moves value on the order's and the wallet's events.
        self.out_refund_no = out_refund_no
        self.order_id = order_id
        self.payment_id = payment_id
        self.provider = provider
        self.provider_fen = provider_fen
        self.provider_total_fen = provider_total_fen
        self.out_trade_no = out_trade_no
        self.amount_fen = amount_fen
        self.reason = reason
        self.requested_by = requested_by
        # none: nothing to send to a provider (a card-only refund)
        self.provider_state = "pending" if provider_fen > 0 else "none"

    def provider_result(self, state: str, detail: str = "") -> bool:
        """Record SUCCESS / ABNORMAL / CLOSED once; a repeat of the same answer changes nothing."""
        if self.provider_state == state:
            return False
        self._provider_answered(state=state, detail=detail)
        return True

    @event("ProviderAnswered")
    def _provider_answered(self, state: str, detail: str) -> None:
        self.provider_state = state
