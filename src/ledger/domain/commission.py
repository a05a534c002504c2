"""One order's commission (SPEC M11): who earned it, on what, and what refunds took back.

The money moves on the referrer's wallet (CommissionEarned, CommissionClawedBack); this
aggregate keeps the facts a later refund needs to claw back in proportion, so the wallet
does not have to remember every order it was ever paid commission on.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.ids import from_key


class Commission(Aggregate):
    @staticmethod
    def create_id(order_id: UUID) -> UUID:
        return from_key("commission", str(order_id))

    @event("Accrued")
    def __init__(
        self,
        order_id: UUID,
        referrer: UUID,
        referee: UUID,
        station_id: UUID,
        base_fen: int,
        rate_bps: int,
        amount_fen: int,
        paid_at: datetime,
        due_at: datetime,
    ) -> None:
        self.order_id = order_id
        self.referrer = referrer
        self.referee = referee
        self.station_id = station_id
        self.base_fen = base_fen  # the referee's cash paid: provider and card
        self.rate_bps = rate_bps
        self.amount_fen = amount_fen
        self.paid_at = paid_at
        self.due_at = due_at
        self.clawed_fen = 0

    @property
    def outstanding(self) -> int:
        return self.amount_fen - self.clawed_fen

    def claw_back(
        self, refund_id: UUID, amount: int, from_pending: int, from_available: int, debt: int
    ) -> None:
        self._clawed_back(
            refund_id=refund_id,
            amount=amount,
            from_pending=from_pending,
            from_available=from_available,
            debt=debt,
        )

    @event("ClawedBack")
    def _clawed_back(
        self, refund_id: UUID, amount: int, from_pending: int, from_available: int, debt: int
    ) -> None:
        self.clawed_fen += amount
