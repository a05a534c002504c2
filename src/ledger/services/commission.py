"""One-level commission (SPEC M11, A7): earned when a referee's order is paid, released after
the refund window, clawed back in proportion when the order is refunded.

The listener runs inside the payment and refund commands (FuelOrderService listeners), so a
payment and its commission are one atomic save. The commission is a share, in basis points,
of the referee's cash: what came from the provider and from the card's cash value (the card
bonus and points were the platform's gifts, coupons its discount), rounded DOWN to the fen.
The rate is global with a per-station override.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.commission import Commission
from ledger.domain.fuel_order import FuelOrder
from ledger.domain.member import Member
from ledger.domain.wallet import Wallet
from ledger.ids import child, from_key
from ledger.money import apply_bps, prorate
from ledger.services.order_listeners import NoListener
from ledger.services.wallets import open_wallet

CASH_SOURCES = ("provider", "card")
ReferrerOf = Callable[[UnitOfWork, UUID], UUID | None]
DueReferrers = Callable[[datetime], Sequence[UUID]]


@dataclass(frozen=True)
class CommissionPolicy:
    rate_bps: int = 100
    station_rates_bps: Mapping[str, int] = field(default_factory=dict)
    refund_window: timedelta = timedelta(days=7)

    def rate_for(self, station_id: UUID) -> int:
        return self.station_rates_bps.get(str(station_id), self.rate_bps)


def member_referrer(uow: UnitOfWork, member_id: UUID) -> UUID | None:
    """The referrer bound on the Member aggregate (read inside the paying command)."""
    try:
        member = uow.find(Member, member_id)
    except TypeError:  # the id names another kind of aggregate
        return None
    return member.referrer if member is not None else None


def _cash(parts: Mapping[str, int]) -> int:
    return sum(parts.get(s, 0) for s in CASH_SOURCES)


class CommissionListener(NoListener):
    def __init__(self, policy: CommissionPolicy, referrer_of: ReferrerOf = member_referrer):
        self.policy = policy
        self.referrer_of = referrer_of

    def on_paid(self, uow: UnitOfWork, order: FuelOrder) -> None:
        referrer = self.referrer_of(uow, order.member_id)
        if referrer is None or referrer == order.member_id or order.paid_at is None:
            return
        base = _cash(order.sources)
        rate = self.policy.rate_for(order.station_id)
        amount = apply_bps(base, rate)
        if amount <= 0:
            return
        due_at = order.paid_at + self.policy.refund_window
        uow.add(
            Commission(
                order_id=order.id,
                referrer=referrer,
                referee=order.member_id,
                station_id=order.station_id,
                base_fen=base,
                rate_bps=rate,
                amount_fen=amount,
                paid_at=order.paid_at,
                due_at=due_at,
            )
        )
        open_wallet(uow, referrer).earn_commission(
            child(order.id, "commission"), order.id, amount, due_at, referee=str(order.member_id)
        )

    def on_refunded(
        self, uow: UnitOfWork, order: FuelOrder, refund_id: UUID, parts: dict[str, int]
    ) -> None:
        refunded = _cash(parts)
        if not refunded:
            return
        commission = uow.find(Commission, Commission.create_id(order.id))
        if commission is None or commission.outstanding <= 0:
            return
        # The order has recorded this refund already: what was left before it is left + it.
        left_before = _cash(order.remaining()) + refunded
        due = prorate(commission.outstanding, refunded, left_before)
        if due <= 0:
            return
        wallet = open_wallet(uow, commission.referrer)
        split = wallet.claw_back_commission(child(refund_id, "commission"), order.id, due)
        commission.claw_back(refund_id, due, **split)


class CommissionService:
    def __init__(
        self,
        runner: CommandRunner,
        *,
        policy: CommissionPolicy | None = None,
        due_referrers: DueReferrers = lambda now: (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runner = runner
        self.policy = policy or CommissionPolicy()
        self.listener = CommissionListener(self.policy)
        self.due_referrers = due_referrers
        self.clock = clock

    def release_commission(self, now: datetime | None = None) -> dict[str, int]:
        """The scheduled job: every referrer with commission due gets one release event.
        Candidates come from the read model; each wallet decides what is really due."""
        now = now or self.clock()
        totals = {"referrers": 0, "released_fen": 0, "repaid_fen": 0, "orders": 0}
        for referrer in self.due_referrers(now):
            result = self.release_for(referrer, now)
            if result["orders"]:
                totals["referrers"] += 1
                for name in ("released_fen", "repaid_fen", "orders"):
                    totals[name] += result[name]
        return totals

    def release_for(self, referrer: UUID, now: datetime) -> dict[str, Any]:
        command_id = from_key("commission-release", f"{referrer}:{now.isoformat()}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = uow.find(Wallet, Wallet.create_id(referrer))
            entry = wallet.release_commission(command_id, now) if wallet else None
            if wallet is None or entry is None:
                return {"referrer": str(referrer), "orders": 0, "released_fen": 0, "repaid_fen": 0}
            released = -entry.amount_for(wallet.prefix + "commission:pending", "CNY")
            available = entry.amount_for(wallet.prefix + "commission:available", "CNY")
            return {
                "referrer": str(referrer),
                "orders": int(entry.memo["orders"]),
                "released_fen": released,
                "repaid_fen": released - available,
            }

        return self.runner.run(command_id, ["release", str(referrer), now.isoformat()], decide)
