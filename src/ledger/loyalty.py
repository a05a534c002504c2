"""Points rules: what a member earns on a payment, what points are worth against fuel, and
when the points of one earning (a lot) expire.

All integer maths. Earning rounds DOWN (no points for a fraction of a yuan); points are
spent only in whole fen of value (100 points = 1 yuan by default, so 1 fen = 1 point) and
never cover more than `max_points_bps` of the amount left after the coupon.

Multipliers are basis points (10000 = x1): the global `multiplier_bps`, then one for the
fuel grade, one for the station and the best campaign running at the time of the sale. They
multiply exactly (one product of integers) and the result is rounded DOWN once, at the end:
300 yuan at x1.5 (grade) and x1.2 (campaign) earn 300 * 15000 * 12000 // 10000**2 = 540.

A lot earned on a day expires at the end of the month `lifetime_months` later (business
days in Asia/Shanghai): earned 2026-11-24 with 12 months, usable through 2027-11-30.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ledger.money import BPS_WHOLE, FEN_PER_YUAN, Rounding, apply_bps, div_round

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_LIFETIME_MONTHS = 12


def business_day(at: datetime) -> date:
    return at.astimezone(BUSINESS_TZ).date()


def lot_expiry(earned_at: datetime, months: int = DEFAULT_LIFETIME_MONTHS) -> date:
    """The last day a lot earned at `earned_at` can be spent."""
    day = business_day(earned_at)
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, calendar.monthrange(year, month + 1)[1])


@dataclass(frozen=True)
class PointsCampaign:
    """A points multiplier for sales on business days `starts_on`..`ends_on` (inclusive)."""

    starts_on: date
    ends_on: date
    multiplier_bps: int

    def runs_on(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True)
class PointsRules:
    earn_points_per_yuan: int = 1
    points_per_yuan_value: int = 100
    max_points_bps: int = 5_000
    # global multiplier in basis points (10000 = x1)
    multiplier_bps: int = BPS_WHOLE
    grade_multipliers_bps: Mapping[str, int] = field(default_factory=dict)
    station_multipliers_bps: Mapping[str, int] = field(default_factory=dict)
    campaigns: tuple[PointsCampaign, ...] = ()
    lifetime_months: int = DEFAULT_LIFETIME_MONTHS
    # the grade, station and campaign multipliers of one sale (see `for_sale`)
    sale_multipliers_bps: tuple[int, ...] = ()

    def for_sale(self, *, station_id: object, grade: str, at: datetime) -> PointsRules:
        """These rules with the multipliers of one sale bound in."""
        day = business_day(at)
        campaign = max(
            (c.multiplier_bps for c in self.campaigns if c.runs_on(day)), default=BPS_WHOLE
        )
        return replace(
            self,
            sale_multipliers_bps=(
                self.grade_multipliers_bps.get(grade, BPS_WHOLE),
                self.station_multipliers_bps.get(str(station_id), BPS_WHOLE),
                campaign,
            ),
        )

    def lot_expiry(self, earned_at: datetime) -> date:
        return lot_expiry(earned_at, self.lifetime_months)

    def points_value_fen(self, points: int) -> int:
        """Fen that `points` pay for, rounded down to a whole fen."""
        return div_round(points * FEN_PER_YUAN, self.points_per_yuan_value)

    def points_for_value(self, fen: int) -> int:
        """Points consumed to pay exactly `fen` (the inverse, rounded up so value is covered)."""
        return div_round(fen * self.points_per_yuan_value, FEN_PER_YUAN, Rounding.UP)

    def usable_points(
        self, balance: int, requested: int, amount_after_coupon: int
    ) -> tuple[int, int]:
        """(points spent, fen they pay) for this amount: never more points than requested or
        held, never more value than the cap."""
        cap_fen = apply_bps(amount_after_coupon, self.max_points_bps)
        value = min(self.points_value_fen(min(balance, requested)), cap_fen)
        return (self.points_for_value(value), value) if value > 0 else (0, 0)

    def points_earned(self, paid_fen: int) -> int:
        """Points earned on cash paid (provider or card), rounded down once, at the end."""
        base = (paid_fen // FEN_PER_YUAN) * self.earn_points_per_yuan
        factors = (self.multiplier_bps, *self.sale_multipliers_bps)
        return div_round(base * math.prod(factors), BPS_WHOLE ** len(factors))


def parse_multipliers(text: str) -> dict[str, int]:
    """'95#:15000,98#:20000' -> {'95#': 15000, '98#': 20000} (basis points)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, bps = part.rpartition(":")
        if not key or int(bps) < 0:
            raise ValueError(f"not a multiplier: {part!r}")
        out[key.strip()] = int(bps)
    return out


def parse_campaigns(text: str) -> tuple[PointsCampaign, ...]:
    """'2026-12-01/2026-12-31:20000,...' -> campaigns (business days, inclusive)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        days, _, bps = part.rpartition(":")
        start, _, end = days.partition("/")
        campaign = PointsCampaign(date.fromisoformat(start), date.fromisoformat(end), int(bps))
        if campaign.ends_on < campaign.starts_on or campaign.multiplier_bps < 0:
            raise ValueError(f"not a points campaign: {part!r}")
        out.append(campaign)
    return tuple(out)


def today(now: datetime | None = None) -> date:
    return business_day(now or datetime.now(UTC))
