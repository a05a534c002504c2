"""Coupon templates (A6): what a coupon is worth, where, for whom, and how many exist.

A template's terms are copied into every coupon issued from it, so an issued coupon is a
self-contained promise. Issuing moves no money: the coupon is a promise that the funder
(`platform:marketing` or `station:{id}:marketing`) pays part of a later order; the money
moves in that order's journal entry, when the order is paid.

Discounts, in integer fen:
- `fixed`: `amount_off_fen` off an order of at least `min_amount_fen` (0 by default).
- `threshold`: "50 off 300": `amount_off_fen` off an order of at least `min_amount_fen` (> 0).
- `percent`: `percent_off_bps` of the order's gross amount, rounded DOWN to the fen (the
  funder keeps the fraction of a fen), then capped at `max_discount_fen` when there is a cap.
A discount must leave something to pay: one that would cover the whole order does not
apply to it (the quote drops it; the member keeps the coupon).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger import accounts as acc
from ledger.domain import copying
from ledger.errors import InvalidCouponTemplate
from ledger.ids import from_key
from ledger.money import BPS_WHOLE, apply_bps

KINDS = ("fixed", "threshold", "percent")
TITLE_MAX = 64
MAX_DISCOUNT_FEN = 500_000


@dataclass(frozen=True)
class CouponTerms:
    title: str
    kind: str
    amount_off_fen: int = 0
    percent_off_bps: int = 0
    max_discount_fen: int | None = None
    min_amount_fen: int = 0
    grades: tuple[str, ...] = ()  # empty: every grade
    station_ids: tuple[str, ...] = ()  # empty: every station (platform-wide)
    funder_account: str = acc.PLATFORM_MARKETING
    stackable: bool = False

    def discount_for(self, amount_fen: int) -> int:
        """The discount on an order of `amount_fen` gross; 0 below the threshold."""
        if amount_fen < self.min_amount_fen or amount_fen <= 0:
            return 0
        if self.kind == "percent":
            off = apply_bps(amount_fen, self.percent_off_bps)
            return off if self.max_discount_fen is None else min(off, self.max_discount_fen)
        return self.amount_off_fen

    def covers(self, station_id: UUID, grade: str) -> bool:
        return (not self.station_ids or str(station_id) in self.station_ids) and (
            not self.grades or grade in self.grades
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grades"] = list(self.grades)
        data["station_ids"] = list(self.station_ids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CouponTerms:
        return cls(
            **{
                **data,
                "grades": tuple(data.get("grades") or ()),
                "station_ids": tuple(data.get("station_ids") or ()),
            }
        )

    def validated(self) -> CouponTerms:
        def bad(message: str, **details: Any) -> InvalidCouponTemplate:
            return InvalidCouponTemplate(message, **details)

        title = self.title.strip() if isinstance(self.title, str) else ""
        if not title or len(title) > TITLE_MAX:
            raise bad(f"a title has 1 to {TITLE_MAX} characters")
        if self.kind not in KINDS:
            raise bad(f"kind is one of {', '.join(KINDS)}", kind=self.kind)
        if not 0 <= self.min_amount_fen <= MAX_DISCOUNT_FEN * 10:
            raise bad("min_amount_fen out of range", min_amount_fen=self.min_amount_fen)
        if self.kind == "percent":
            if not 0 < self.percent_off_bps < BPS_WHOLE or self.amount_off_fen:
                raise bad("a percent coupon takes percent_off_bps in 1..9999 and no amount")
            if self.max_discount_fen is not None and not 0 < self.max_discount_fen <= (
                MAX_DISCOUNT_FEN
            ):
                raise bad("max_discount_fen must be positive", cap=self.max_discount_fen)
        else:
            if not 0 < self.amount_off_fen <= MAX_DISCOUNT_FEN or self.percent_off_bps:
                raise bad(f"a {self.kind} coupon takes a positive amount_off_fen and no rate")
            if self.max_discount_fen is not None:
                raise bad("max_discount_fen is for percent coupons")
            if self.kind == "threshold" and self.min_amount_fen <= self.amount_off_fen:
                raise bad("a threshold coupon needs min_amount_fen above amount_off_fen")
        if len(set(self.grades)) != len(self.grades) or any(
            not g or len(g) > 8 for g in self.grades
        ):
            raise bad("grades must be distinct fuel grades such as 92#")
        if self.funder_account != acc.PLATFORM_MARKETING:
            # A station funds coupons for its own sales only.
            owner = self.funder_account.split(":")
            if (
                len(owner) != 3
                or owner[0] != "station"
                or owner[2] != "marketing"
                or list(self.station_ids) != [owner[1]]
            ):
                raise bad("a station-funded coupon is valid at that station only")
        return CouponTerms(**{**self.__dict__, "title": title})


class CouponTemplate(Aggregate):
    @staticmethod
    def create_id(key: str) -> UUID:
        return from_key("coupon-template", key)

    @event("Created")
    def __init__(
        self,
        key: str,
        terms: dict[str, Any],
        valid_from: datetime | None,
        valid_until: datetime | None,
        valid_days: int | None,
        per_member_limit: int | None,
        total_quantity: int,
    ) -> None:
        self.key = key
        self.terms = CouponTerms.from_dict(terms)
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.valid_days = valid_days
        self.per_member_limit = per_member_limit
        self.total_quantity = total_quantity
        self.issued = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> CouponTemplate:
        return copying.clone(self)  # nothing mutable is shared: terms are frozen

    @staticmethod
    def check_rules(
        valid_from: datetime | None,
        valid_until: datetime | None,
        valid_days: int | None,
        per_member_limit: int | None,
        total_quantity: int,
    ) -> None:
        if (valid_until is None) == (valid_days is None):
            raise InvalidCouponTemplate("give either valid_until or valid_days")
        if valid_days is not None and not 0 < valid_days <= 3660:
            raise InvalidCouponTemplate("valid_days must be 1..3660", valid_days=valid_days)
        if valid_from is not None and valid_until is not None and valid_from >= valid_until:
            raise InvalidCouponTemplate("valid_from must be before valid_until")
        if valid_from is not None and valid_days is not None:
            raise InvalidCouponTemplate("valid_from goes with valid_until, not valid_days")
        if per_member_limit is not None and per_member_limit < 1:
            raise InvalidCouponTemplate("per_member_limit must be at least 1")
        if not isinstance(total_quantity, int) or not 0 < total_quantity <= 100_000_000:
            raise InvalidCouponTemplate("total_quantity must be 1..100000000")

    @property
    def remaining(self) -> int:
        return self.total_quantity - self.issued

    def issuable(self, now: datetime) -> bool:
        return self.valid_until is None or now < self.valid_until

    def window_for(self, issued_at: datetime) -> tuple[datetime, datetime]:
        """When a coupon issued at `issued_at` may be used: [from, until)."""
        if self.valid_days is not None:
            return issued_at, issued_at + timedelta(days=self.valid_days)
        assert self.valid_until is not None
        return self.valid_from or issued_at, self.valid_until

    def record_issued(self, count: int) -> None:
        """Count coupons issued by one command; never beyond the total quantity."""
        if count <= 0 or count > self.remaining:
            raise ValueError(f"cannot issue {count}, {self.remaining} left")
        self._issued(count=count)

    @event("Issued")
    def _issued(self, count: int) -> None:
        self.issued += count
