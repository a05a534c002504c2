"""One issued coupon, and the pocket that lists a member's coupons.

A coupon's life: held -> locked (an order was created with it) -> redeemed (the order was
paid); locked -> held (the order expired unpaid); redeemed -> held (the whole order was
refunded; and at once -> expired if its validity is over by then); held -> expired (its
validity ended, recorded by a sweep). It is redeemed at most once at a time (DESIGN.md
invariant 4): only a held coupon can be locked, and only the order that locked it can
redeem it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.domain.coupon_template import CouponTerms
from ledger.errors import CouponNotApplicable
from ledger.ids import from_key
from ledger.pricing import CouponOffer

STATES = ("held", "locked", "redeemed", "expired")
STACK_SEPARATOR = "+"  # an order's coupon_id for a stack: "id+id+..."


class Coupon(Aggregate):
    @staticmethod
    def create_id(template_id: UUID, issue_key: str) -> UUID:
        # Issuing is idempotent per issue key: a second issue collides on version 1.
        return from_key("coupon", f"{template_id}:{issue_key}")

    @event("Issued")
    def __init__(
        self,
        template_id: UUID,
        issue_key: str,
        member_id: UUID,
        source: str,
        terms: dict[str, Any],
        valid_from: datetime,
        valid_until: datetime,
    ) -> None:
        self.template_id = template_id
        self.issue_key = issue_key
        self.member_id = member_id
        self.source = source  # admin, segment, signup, referral, campaign
        self.terms = CouponTerms.from_dict(terms)
        self.valid_from = valid_from
        self.valid_until = valid_until
        self.state = "held"
        self.order_id: UUID | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Coupon:
        return copying.clone(self)  # no mutable containers

    def valid_at(self, now: datetime) -> bool:
        return self.valid_from <= now < self.valid_until

    def discount(
        self, member_id: UUID, station_id: UUID, grade: str, amount_fen: int, now: datetime
    ) -> int:
        """What this coupon takes off that order now; 0 when it does not apply."""
        if (
            self.state != "held"
            or member_id != self.member_id
            or not self.valid_at(now)
            or not self.terms.covers(station_id, grade)
        ):
            return 0
        return self.terms.discount_for(amount_fen)

    def lock(self, order_id: UUID, member_id: UUID, now: datetime) -> None:
        if self.state == "locked" and self.order_id == order_id:
            return
        if self.state != "held" or member_id != self.member_id or not self.valid_at(now):
            raise CouponNotApplicable(
                f"coupon is {self.state}", coupon_id=str(self.id), state=self.state
            )
        self._locked(order_id=order_id)

    def redeem(self, order_id: UUID) -> bool:
        """The locking order was paid. False if that order redeemed it already."""
        if self.state == "redeemed" and self.order_id == order_id:
            return False
        if self.state != "locked" or self.order_id != order_id:
            raise CouponNotApplicable(
                f"coupon is {self.state} for another order", coupon_id=str(self.id)
            )
        self._redeemed(order_id=order_id)
        return True

    def release(self, order_id: UUID) -> bool:
        """The locking order expired unpaid: the member holds the coupon again."""
        if self.state != "locked" or self.order_id != order_id:
            return False
        self._released(order_id=order_id)
        return True

    def restore(self, order_id: UUID, now: datetime) -> bool:
        """The order that redeemed it was wholly refunded: held again if still valid, else
        expired (it was not used after all, and it can no longer be)."""
        if self.state != "redeemed" or self.order_id != order_id:
            return False
        self._restored(order_id=order_id)
        self.expire(now)
        return True

    def expire(self, now: datetime) -> bool:
        """Held past its validity. A locked coupon waits for its order to end first."""
        if self.state != "held" or now < self.valid_until:
            return False
        self._expired()
        return True

    @event("Locked")
    def _locked(self, order_id: UUID) -> None:
        self.state = "locked"
        self.order_id = order_id

    @event("Redeemed")
    def _redeemed(self, order_id: UUID) -> None:
        self.state = "redeemed"

    @event("Released")
    def _released(self, order_id: UUID) -> None:
        self.state = "held"
        self.order_id = None

    @event("Restored")
    def _restored(self, order_id: UUID) -> None:
        self.state = "held"
        self.order_id = None

    @event("Expired")
    def _expired(self) -> None:
        self.state = "expired"


class CouponPocket(Aggregate):
    """Which coupons a member was issued: the quote's index of candidates, and the place
    where the per-member limit of a template is counted (one lock per member)."""

    @staticmethod
    def create_id(member_id: UUID) -> UUID:
        return from_key("coupon-pocket", str(member_id))

    @event("Opened")
    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        self.coupons: dict[str, str] = {}  # coupon id hex -> template id hex

    def __deepcopy__(self, memo: dict[int, Any]) -> CouponPocket:
        clone = copying.clone(self)
        clone.coupons = dict(self.coupons)
        return clone

    def count_of(self, template_id: UUID) -> int:
        return sum(1 for t in self.coupons.values() if t == template_id.hex)

    def add(self, coupon_id: UUID, template_id: UUID) -> None:
        if coupon_id.hex not in self.coupons:
            self._added(coupon_id=coupon_id, template_id=template_id)

    @event("Added")
    def _added(self, coupon_id: UUID, template_id: UUID) -> None:
        self.coupons[coupon_id.hex] = template_id.hex


def with_stacks(found: Sequence[tuple[Coupon, int]], amount_fen: int) -> list[CouponOffer]:
    """Each applicable coupon on its own, plus, per funder, the stack of its stackable ones.

    Stacking rule: one coupon per order unless every coupon in the stack is stackable; a
    stack takes at most one coupon per template (the best one), all funded by the same
    account (the order names one funder), largest first while something is left to pay.
    """

    def rank(item: tuple[Coupon, int]) -> tuple[int, str, str]:
        return (-item[1], item[0].valid_until.isoformat(), item[0].id.hex)

    offers = [_offer(c, off) for c, off in found]
    by_funder: dict[str, dict[UUID, tuple[Coupon, int]]] = {}
    for coupon, off in sorted(found, key=rank):
        if coupon.terms.stackable:
            per_template = by_funder.setdefault(coupon.terms.funder_account, {})
            per_template.setdefault(coupon.template_id, (coupon, off))
    for funder, per_template in sorted(by_funder.items()):
        stack: list[tuple[Coupon, int]] = []
        for coupon, off in sorted(per_template.values(), key=rank):
            if sum(o for _, o in stack) + off < amount_fen:
                stack.append((coupon, off))
        if len(stack) >= 2:
            stack.sort(key=lambda item: item[0].id.hex)
            offers.append(
                CouponOffer(
                    coupon_id=STACK_SEPARATOR.join(str(c.id) for c, _ in stack),
                    discount_fen=sum(o for _, o in stack),
                    funder_account=funder,
                    expires_at=min(c.valid_until for c, _ in stack).isoformat(),
                    title=" + ".join(c.terms.title for c, _ in stack),
                )
            )
    return offers


def _offer(coupon: Coupon, off: int) -> CouponOffer:
    return CouponOffer(
        coupon_id=str(coupon.id),
        discount_fen=off,
        funder_account=coupon.terms.funder_account,
        expires_at=coupon.valid_until.isoformat(),
        title=coupon.terms.title,
    )
