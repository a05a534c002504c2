"""A fuel order: the price locked at creation, its payment by sources, its refunds.

Sources are where the order's gross amount came from: `provider` (WeChat Pay or Alipay),
`card` and `card_bonus` (the member's fuel card), `points` (their value, funded by platform
marketing) and `coupon` (funded by the platform or the station). The platform's settlement
fee is a share of the gross, split over the sources by the largest remainder, so a refund
of any part can take back exactly that part's fee.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.errors import OrderNotPayable, RefundNotAllowed
from ledger.ids import from_key
from ledger.journal import JournalEntry
from ledger.money import apply_bps, prorate, split_largest_remainder

SOURCES = ("provider", "card", "card_bonus", "points", "coupon")
PROVIDER_METHODS = ("wechat", "alipay")


class FuelOrder(Aggregate):
    @staticmethod
    def create_id(member_id: UUID, order_key: str) -> UUID:
        return from_key("fuel-order", f"{member_id}:{order_key}")

    @event("Created")
    def __init__(
        self,
        member_id: UUID,
        order_key: str,
        station_id: UUID,
        grade: str,
        nozzle: int,
        amount_fen: int,
        price_fen_per_litre: int,
        volume_ml: int,
        settlement_rate_bps: int,
        coupon_id: str | None,
        coupon_fen: int,
        coupon_funder: str | None,
        points_used: int,
        points_fen: int,
        payable_fen: int,
        points_to_earn: int,
        expires_at: datetime,
    ) -> None:
        self.member_id = member_id
        self.order_key = order_key  # the client's Idempotency-Key
        self.station_id = station_id
        self.grade = grade
        self.nozzle = nozzle
        self.amount_fen = amount_fen
        self.price_fen_per_litre = price_fen_per_litre
        self.volume_ml = volume_ml
        self.settlement_rate_bps = settlement_rate_bps
        self.coupon_id = coupon_id
        self.coupon_fen = coupon_fen
        self.coupon_funder = coupon_funder
        self.points_used = points_used
        self.points_fen = points_fen
        self.payable_fen = payable_fen
        self.points_to_earn = points_to_earn
        self.expires_at = expires_at
        self.status = "created"
        self.method: str | None = None
        self.pending: dict[str, Any] = {}  # an unfinished provider payment: holds and parts
        self.sources: dict[str, int] = {}
        self.fees: dict[str, int] = {}
        self.refunded: dict[str, int] = {}
        self.refunded_fees: dict[str, int] = {}
        self.points_restored = 0
        self.points_earned = 0
        self.points_clawed = 0
        self.provider_transaction: str | None = None
        self.paid_at: datetime | None = None
        self.confirmed = False

    def __deepcopy__(self, memo: dict[int, Any]) -> FuelOrder:
        clone = copying.clone(self)
        for name in ("pending", "sources", "fees", "refunded", "refunded_fees"):
            setattr(clone, name, dict(getattr(self, name)))
        return clone

    @property
    def out_trade_no(self) -> str:
        return self.id.hex  # 32 alphanumerics: what both providers accept

    @property
    def gross_fee(self) -> int:
        return apply_bps(self.amount_fen, self.settlement_rate_bps)

    def split_fees(self, sources: dict[str, int]) -> dict[str, int]:
        names = [s for s in SOURCES if sources.get(s)]
        parts = split_largest_remainder(self.gross_fee, [sources[s] for s in names])
        return dict(zip(names, parts, strict=True))

    # -- paying -----------------------------------------------------------------------------

    def check_payable(self, now: datetime) -> None:
        if self.status not in ("created", "paying"):
            raise OrderNotPayable(f"order is {self.status}", status=self.status)
        if now >= self.expires_at:
            raise OrderNotPayable("order has expired", status="expired")

    def start_provider_payment(
        self, method: str, card_fen: int, bonus_fen: int, holds: dict[str, str], now: datetime
    ) -> None:
        self.check_payable(now)
        if self.status == "paying":
            raise OrderNotPayable("a payment is already in progress", status=self.status)
        provider_fen = self.payable_fen - card_fen - bonus_fen
        if provider_fen <= 0 or card_fen < 0 or bonus_fen < 0:
            raise OrderNotPayable("the provider part must be positive", provider_fen=provider_fen)
        self._payment_started(
            method=method,
            provider_fen=provider_fen,
            card_fen=card_fen,
            bonus_fen=bonus_fen,
            holds=holds,
        )

    def mark_paid(
        self,
        method: str,
        sources: dict[str, int],
        entry: JournalEntry | None,
        provider_transaction: str | None,
        paid_at: datetime,
    ) -> None:
        if sum(sources.values()) != self.amount_fen:
            raise ValueError("sources must add up to the order amount")
        self._paid(
            method=method,
            sources=sources,
            fees=self.split_fees(sources),
            entry=entry,
            provider_transaction=provider_transaction,
            paid_at=paid_at,
        )

    def record_points_earned(self, points: int) -> None:
        self._points_earned(points=points)

    def expire(self) -> dict[str, str]:
        """Expire an unpaid order; returns the holds its payment attempt placed."""
        if self.status not in ("created", "paying"):
            raise OrderNotPayable(f"order is {self.status}", status=self.status)
        holds = dict(self.pending.get("holds", {}))
        self._expired()
        return holds

    def confirm(self) -> None:
        if self.status not in ("paid", "partially_refunded"):
            raise OrderNotPayable(f"order is {self.status}", status=self.status)
        if not self.confirmed:
            self._confirmed()

    # -- refunds ----------------------------------------------------------------------------

    def remaining(self) -> dict[str, int]:
        return {s: n - self.refunded.get(s, 0) for s, n in self.sources.items()}

    def refund_parts(self, amount: int) -> tuple[dict[str, int], dict[str, int]]:
        """Split a refund of `amount` (of the gross) over what is left of each source, and
        each part's share of the fee. Refunding everything left returns everything exactly."""
        if self.status not in ("paid", "partially_refunded"):
            raise RefundNotAllowed(f"order is {self.status}", status=self.status)
        remaining = self.remaining()
        left = sum(remaining.values())
        if not isinstance(amount, int) or amount <= 0 or amount > left:
            raise RefundNotAllowed(f"refund must be 1..{left} fen", amount=amount, refundable=left)
        names = [s for s in SOURCES if remaining.get(s)]
        parts = dict(
            zip(names, split_largest_remainder(amount, [remaining[s] for s in names]), strict=True)
        )
        fees = {
            s: prorate(self.fees.get(s, 0) - self.refunded_fees.get(s, 0), parts[s], remaining[s])
            for s in names
        }
        return parts, fees

    def record_refund(
        self,
        refund_id: UUID,
        parts: dict[str, int],
        fees: dict[str, int],
        points_restored: int,
        points_clawed: int,
        entry: JournalEntry | None,
        reason: str,
    ) -> None:
        self._refunded(
            refund_id=refund_id,
            parts=parts,
            fees=fees,
            points_restored=points_restored,
            points_clawed=points_clawed,
            entry=entry,
            reason=reason,
        )

    # -- events -----------------------------------------------------------------------------

    @event("PaymentStarted")
    def _payment_started(
        self, method: str, provider_fen: int, card_fen: int, bonus_fen: int, holds: dict[str, str]
    ) -> None:
        self.status = "paying"
        self.method = method
        self.pending = {
            "provider_fen": provider_fen,
            "card_fen": card_fen,
            "bonus_fen": bonus_fen,
            "holds": holds,
        }

    @event("Paid")
    def _paid(
        self,
        method: str,
        sources: dict[str, int],
        fees: dict[str, int],
        entry: JournalEntry | None,
        provider_transaction: str | None,
        paid_at: datetime,
    ) -> None:
        self.status = "paid"
        self.method = method
        self.sources = dict(sources)
        self.fees = dict(fees)
        self.provider_transaction = provider_transaction
        self.paid_at = paid_at
        self.pending = {}

    @event("PointsEarned")
    def _points_earned(self, points: int) -> None:
        self.points_earned += points

    @event("Expired")
    def _expired(self) -> None:
        self.status = "expired"
        self.pending = {}

    @event("Confirmed")
    def _confirmed(self) -> None:
        self.confirmed = True

    @event("Refunded")
    def _refunded(
        self,
        refund_id: UUID,
        parts: dict[str, int],
        fees: dict[str, int],
        points_restored: int,
        points_clawed: int,
        entry: JournalEntry | None,
        reason: str,
    ) -> None:
        for s, n in parts.items():
            self.refunded[s] = self.refunded.get(s, 0) + n
        for s, n in fees.items():
            self.refunded_fees[s] = self.refunded_fees.get(s, 0) + n
        self.points_restored += points_restored
        self.points_clawed += points_clawed
        left = sum(self.remaining().values())
        self.status = "refunded" if left == 0 else "partially_refunded"
