"""The quote: locked price, litres, the best coupon, points, what is left to pay.

Pure functions: the quote endpoint and order creation call the same code, so what the
member saw is what the order locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import CouponNotApplicable, InvalidAmount
from ledger.loyalty import PointsRules
from ledger.money import litres_for_amount

MIN_ORDER_FEN = 100
MAX_ORDER_FEN = 500_000


@dataclass(frozen=True)
class CouponOffer:
    """A coupon the member holds, already checked for this station, grade and amount."""

    coupon_id: str
    discount_fen: int
    funder_account: str
    expires_at: str = ""
    title: str = ""


@dataclass(frozen=True)
class Quote:
    price_fen_per_litre: int
    amount_fen: int
    volume_ml: int
    coupon: CouponOffer | None
    points_used: int
    points_fen: int
    payable_fen: int
    points_to_earn: int
    applicable: tuple[CouponOffer, ...] = field(default=())
    best_coupon_id: str | None = None

    @property
    def coupon_fen(self) -> int:
        return self.coupon.discount_fen if self.coupon else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "price_fen_per_litre": self.price_fen_per_litre,
            "amount_fen": self.amount_fen,
            "volume_ml": self.volume_ml,
            "coupon_id": self.coupon.coupon_id if self.coupon else None,
            "coupon_fen": self.coupon_fen,
            "points_used": self.points_used,
            "points_fen": self.points_fen,
            "payable_fen": self.payable_fen,
            "points_to_earn": self.points_to_earn,
            "best_coupon_id": self.best_coupon_id,
            "applicable_coupons": [
                {"coupon_id": c.coupon_id, "discount_fen": c.discount_fen, "title": c.title}
                for c in self.applicable
            ],
        }


def best_coupon(offers: Sequence[CouponOffer]) -> CouponOffer | None:
    """Largest discount; ties go to the one expiring first, then the smallest id."""
    ranked = sorted(offers, key=lambda c: (-c.discount_fen, c.expires_at or "~", c.coupon_id))
    return ranked[0] if ranked else None


def quote(
    *,
    amount_fen: int,
    price_fen_per_litre: int,
    offers: Sequence[CouponOffer],
    coupon_id: str | None,
    points_requested: int,
    points_balance: int,
    rules: PointsRules,
) -> Quote:
    if not isinstance(amount_fen, int) or not MIN_ORDER_FEN <= amount_fen <= MAX_ORDER_FEN:
        raise InvalidAmount(
            f"amount must be {MIN_ORDER_FEN}..{MAX_ORDER_FEN} fen", amount_fen=amount_fen
        )
    if points_requested < 0:
        raise InvalidAmount("points must not be negative", points=points_requested)
    applicable = tuple(o for o in offers if 0 < o.discount_fen < amount_fen)
    best = best_coupon(applicable)
    chosen: CouponOffer | None = None
    if coupon_id is not None:
        chosen = next((o for o in applicable if o.coupon_id == coupon_id), None)
        if chosen is None:
            raise CouponNotApplicable(
                "that coupon does not apply to this order", coupon_id=coupon_id
            )
    after_coupon = amount_fen - (chosen.discount_fen if chosen else 0)
    points_used, points_fen = rules.usable_points(points_balance, points_requested, after_coupon)
    payable = after_coupon - points_fen
    return Quote(
        price_fen_per_litre=price_fen_per_litre,
        amount_fen=amount_fen,
        volume_ml=litres_for_amount(amount_fen, price_fen_per_litre),
        coupon=chosen,
        points_used=points_used,
        points_fen=points_fen,
        payable_fen=payable,
        points_to_earn=rules.points_earned(payable),
        applicable=applicable,
        best_coupon_id=best.coupon_id if best else None,
    )
