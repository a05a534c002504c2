"""What loyalty and distribution add to a member's wallet: points lots and commission.

Points: every movement of the spendable points account is mirrored in the wallet's lots
(ledger.domain.points_lots), whatever event carried it, so the lots always add up to the
balance; `expire_points` writes one PointsExpired event per wallet and run.

Commission (one level, SPEC M11): a referee's payment credits `commission:pending` with one
CommissionEarned per order, funded by platform marketing; once the order's refund window has
closed, `release_commission` moves everything due to `commission:available` in one
CommissionReleased event. A refund claws back from pending if the order's commission is
still there, else from available; what available cannot cover becomes a recorded debt: the
journal books it on `platform:commission_debt:{member}` (a receivable, negative while the
member owes), the wallet counts it, withdrawals are refused while it is owed, and new
commission repays it first when it is released. No owned balance ever goes below zero.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger import accounts as acc
from ledger.accounts import CNY, PTS
from ledger.domain.book import Book
from ledger.domain.points_lots import PointsLots
from ledger.errors import CommissionDebtOutstanding, InvalidAmount
from ledger.journal import JournalEntry


def commission_debt_account(member_id: UUID | str) -> str:
    """What a referrer owes back after a clawback that available could not cover."""
    return f"platform:commission_debt:{member_id}"


class LoyaltyBook(Book):
    def _init_book(self, prefix: str) -> None:
        super()._init_book(prefix)
        self.points_lots = PointsLots()
        # order id (hex) -> [amount still pending, due_at ISO]: bounded by the refund window
        self.commission_pending: dict[str, list[Any]] = {}
        self.commission_debt = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> LoyaltyBook:
        clone = super().__deepcopy__(memo)
        assert isinstance(clone, LoyaltyBook)
        clone.points_lots = self.points_lots.copy()
        clone.commission_pending = {k: list(v) for k, v in self.commission_pending.items()}
        return clone

    def _apply(self, entry: JournalEntry) -> None:
        super()._apply(entry)
        delta = entry.amount_for(self.prefix + "points", PTS)
        if delta:
            self.points_lots.follow(entry.kind, delta, entry.memo)

    # -- points expiry ----------------------------------------------------------------------

    def expire_points(self, entry_id: UUID, today: date) -> JournalEntry | None:
        """Expire every lot whose last day is before `today`; None when nothing is due."""
        due = self.points_lots.due(today.isoformat())
        if not due:
            return None
        entry = JournalEntry.of(
            entry_id,
            "points_expired",
            [(self.prefix + "points", PTS, -due), (acc.POINTS_ISSUED, PTS, due)],
            up_to=today.isoformat(),
        )
        self.check(entry)
        self._points_expired(entry=entry, up_to=today.isoformat())
        return entry

    # -- commission -------------------------------------------------------------------------

    @property
    def _member(self) -> str:
        return self.prefix.split(":")[1]

    @property
    def commission_available(self) -> int:
        return self.balance(self.prefix + "commission:available", CNY)

    @property
    def commission_pending_total(self) -> int:
        return self.balance(self.prefix + "commission:pending", CNY)

    def check_no_commission_debt(self) -> None:
        if self.commission_debt > 0:
            raise CommissionDebtOutstanding(
                "commission clawed back after refunds is still owed", debt_fen=self.commission_debt
            )

    def earn_commission(
        self,
        entry_id: UUID,
        order_id: UUID,
        amount: int,
        due_at: datetime,
        *,
        funder: str = acc.PLATFORM_MARKETING,
        **memo: Any,
    ) -> JournalEntry:
        if not isinstance(amount, int) or amount <= 0:
            raise InvalidAmount("commission must be a positive integer", amount=amount)
        if order_id.hex in self.commission_pending:
            raise InvalidAmount("commission for this order is already pending", amount=amount)
        entry = JournalEntry.of(
            entry_id,
            "commission_earned",
            [(funder, CNY, -amount), (self.prefix + "commission:pending", CNY, amount)],
            order_id=str(order_id),
            **memo,
        )
        self._commission_earned(entry=entry, order_id=order_id.hex, due_at=due_at)
        return entry

    def release_commission(self, entry_id: UUID, now: datetime) -> JournalEntry | None:
        """Everything whose refund window has closed by `now`, in one event; debt first."""
        due = sorted(
            k for k, (_, at) in self.commission_pending.items() if datetime.fromisoformat(at) <= now
        )
        if not due:
            return None
        total = sum(self.commission_pending[k][0] for k in due)
        repaid = min(self.commission_debt, total)
        entry = JournalEntry.of(
            entry_id,
            "commission_released",
            [
                (self.prefix + "commission:pending", CNY, -total),
                (self.prefix + "commission:available", CNY, total - repaid),
                (commission_debt_account(self._member), CNY, repaid),
            ],
            orders=len(due),
        )
        self.check(entry)
        self._commission_released(entry=entry, orders=due, repaid=repaid)
        return entry

    def claw_back_commission(
        self, entry_id: UUID, order_id: UUID, amount: int, *, funder: str = acc.PLATFORM_MARKETING
    ) -> dict[str, int]:
        """Take back `amount` of one order's commission: pending, else available, else debt."""
        if not isinstance(amount, int) or amount <= 0:
            raise InvalidAmount("a clawback must be a positive integer", amount=amount)
        pending = self.commission_pending.get(order_id.hex, [0, ""])[0]
        from_pending = min(amount, pending)
        from_available = min(amount - from_pending, self.commission_available)
        debt = amount - from_pending - from_available
        entry = JournalEntry.of(
            entry_id,
            "commission_clawed_back",
            [
                (self.prefix + "commission:pending", CNY, -from_pending),
                (self.prefix + "commission:available", CNY, -from_available),
                (commission_debt_account(self._member), CNY, -debt),
                (funder, CNY, amount),
            ],
            order_id=str(order_id),
        )
        self.check(entry)
        self._commission_clawed_back(
            entry=entry, order_id=order_id.hex, from_pending=from_pending, debt=debt
        )
        return {"from_pending": from_pending, "from_available": from_available, "debt": debt}

    def repay_commission_debt(self, entry_id: UUID) -> JournalEntry | None:
        """Commission that comes back to available (a withdrawal rejected or failed) repays
        what is owed first."""
        repaid = min(self.commission_debt, self.commission_available)
        if repaid <= 0:
            return None
        entry = JournalEntry.of(
            entry_id,
            "commission_debt_repaid",
            [
                (self.prefix + "commission:available", CNY, -repaid),
                (commission_debt_account(self._member), CNY, repaid),
            ],
        )
        self.check(entry)
        self._commission_debt_repaid(entry=entry, repaid=repaid)
        return entry

    # -- events -----------------------------------------------------------------------------

    @event("PointsExpired")
    def _points_expired(self, entry: JournalEntry, up_to: str) -> None:
        self._apply(entry)

    @event("CommissionEarned")
    def _commission_earned(self, entry: JournalEntry, order_id: str, due_at: datetime) -> None:
        self._apply(entry)
        amount = entry.amount_for(self.prefix + "commission:pending", CNY)
        self.commission_pending[order_id] = [amount, due_at.isoformat()]

    @event("CommissionReleased")
    def _commission_released(self, entry: JournalEntry, orders: list[str], repaid: int) -> None:
        self._apply(entry)
        for order_id in orders:
            self.commission_pending.pop(order_id, None)
        self.commission_debt -= repaid

    @event("CommissionClawedBack")
    def _commission_clawed_back(
        self, entry: JournalEntry, order_id: str, from_pending: int, debt: int
    ) -> None:
        self._apply(entry)
        slot = self.commission_pending.get(order_id)
        if slot is not None:
            slot[0] -= from_pending
            if slot[0] <= 0:
                del self.commission_pending[order_id]
        self.commission_debt += debt

    @event("CommissionDebtRepaid")
    def _commission_debt_repaid(self, entry: JournalEntry, repaid: int) -> None:
        self._apply(entry)
        self.commission_debt -= repaid
