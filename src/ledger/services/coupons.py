"""Coupons (A6, M5, M9): templates, issuing, the quote's offers, the order's hooks, expiry.

Issuing a coupon moves no money: it is a promise. The discount's money moves when the order
it was used on is paid, in that order's journal entry (funder -> station income and the
platform's fee), and back again in a refund's entry; the coupon itself carries no entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.coupon import STACK_SEPARATOR, Coupon, CouponPocket, with_stacks
from ledger.domain.coupon_template import CouponTemplate, CouponTerms
from ledger.domain.fuel_order import FuelOrder
from ledger.domain.member import Member
from ledger.domain.station import Station
from ledger.errors import (
    CouponLimitReached,
    CouponNotIssuable,
    CouponsExhausted,
    InvalidCouponTemplate,
    NotFound,
)
from ledger.ids import from_key
from ledger.pricing import CouponOffer
from ledger.services.fuel_orders import utcnow

Clock = Callable[[], datetime]
DueFinder = Callable[[datetime, int], Sequence[UUID]]  # held coupons past validity
SegmentFn = Callable[[str], Sequence[UUID]]  # a named segment's member ids
CHUNK = 100  # coupons issued per command
ISSUED = "issued"


@dataclass(frozen=True)
class Grant:
    member_id: UUID
    issue_key: str


def template_view(t: CouponTemplate) -> dict[str, Any]:
    return {
        "template_id": str(t.id),
        "key": t.key,
        **t.terms.to_dict(),
        "valid_from": t.valid_from.isoformat() if t.valid_from else None,
        "valid_until": t.valid_until.isoformat() if t.valid_until else None,
        "valid_days": t.valid_days,
        "per_member_limit": t.per_member_limit,
        "total_quantity": t.total_quantity,
        "issued": t.issued,
        "remaining": t.remaining,
    }


def coupon_view(c: Coupon) -> dict[str, Any]:
    return {
        "coupon_id": str(c.id),
        "template_id": str(c.template_id),
        "member_id": str(c.member_id),
        "source": c.source,
        "state": c.state,
        "order_id": str(c.order_id) if c.order_id else None,
        "valid_from": c.valid_from.isoformat(),
        "valid_until": c.valid_until.isoformat(),
        **c.terms.to_dict(),
    }


def _exists(uow: UnitOfWork, cls: type[Aggregate], aggregate_id: UUID) -> bool:
    try:
        return uow.find(cls, aggregate_id) is not None
    except TypeError:  # the id names another kind of aggregate
        return False


def _is_member(uow: UnitOfWork, member_id: UUID) -> bool:
    return _exists(uow, Member, member_id)


def grant_coupons(
    uow: UnitOfWork,
    template: CouponTemplate,
    grants: Sequence[Grant],
    *,
    source: str,
    now: datetime,
    at_most: int | None = None,
) -> list[tuple[Grant, str, UUID | None]]:
    """Issue one coupon per grant inside the caller's command; every issuing path (admin,
    segment, sign-up, referral, campaign) comes through here. Outcomes: issued, already
    (that issue key was issued before), exhausted (total quantity, or `at_most`), limit
    (per member), ended (validity window over), unknown_member. Nothing raises: a batch
    gives what it can, and the template counts exactly what was given."""
    results: list[tuple[Grant, str, UUID | None]] = []
    issued = 0
    for grant in grants:
        coupon_id = Coupon.create_id(template.id, grant.issue_key)
        outcome = ISSUED
        if uow.find(Coupon, coupon_id) is not None:
            outcome = "already"
        elif not _is_member(uow, grant.member_id):
            outcome = "unknown_member"
        elif not template.issuable(now):
            outcome = "ended"
        elif issued >= template.remaining or (at_most is not None and issued >= at_most):
            outcome = "exhausted"
        else:
            member_id = grant.member_id
            pocket = uow.find(CouponPocket, CouponPocket.create_id(member_id))
            if pocket is None:
                pocket = uow.add(CouponPocket(member_id))
            limit = template.per_member_limit
            if limit is not None and pocket.count_of(template.id) >= limit:
                outcome = "limit"
            else:
                valid_from, valid_until = template.window_for(now)
                uow.add(
                    Coupon(
                        template_id=template.id,
                        issue_key=grant.issue_key,
                        member_id=member_id,
                        source=source,
                        terms=template.terms.to_dict(),
                        valid_from=valid_from,
                        valid_until=valid_until,
                    )
                )
                pocket.add(coupon_id, template.id)
                issued += 1
        results.append((grant, outcome, coupon_id if outcome in (ISSUED, "already") else None))
    if issued:
        template.record_issued(issued)
    return results


def order_coupon_ids(order: FuelOrder) -> list[UUID]:
    """The coupons an order uses: one, or several stackable ones joined by '+'."""
    if not order.coupon_id:
        return []
    return [UUID(part) for part in order.coupon_id.split(STACK_SEPARATOR)]


class CouponOrderListener:
    """Locks a coupon with the order that uses it, redeems it when the order is paid,
    releases it when the order expires, restores it when the whole order is refunded."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock

    def on_created(self, uow: UnitOfWork, order: FuelOrder) -> None:
        for coupon_id in order_coupon_ids(order):
            uow.get(Coupon, coupon_id).lock(order.id, order.member_id, self.clock())

    def on_paid(self, uow: UnitOfWork, order: FuelOrder) -> None:
        for coupon_id in order_coupon_ids(order):
            uow.get(Coupon, coupon_id).redeem(order.id)

    def on_expired(self, uow: UnitOfWork, order: FuelOrder) -> None:
        for coupon_id in order_coupon_ids(order):
            uow.get(Coupon, coupon_id).release(order.id)

    def on_refunded(
        self, uow: UnitOfWork, order: FuelOrder, refund_id: UUID, parts: dict[str, int]
    ) -> None:
        if order.status != "refunded":  # a partial refund: the coupon stays used
            return
        now = self.clock()
        for coupon_id in order_coupon_ids(order):
            uow.get(Coupon, coupon_id).restore(order.id, now)


class CouponService:
    def __init__(
        self,
        runner: CommandRunner,
        *,
        clock: Clock = utcnow,
        due: DueFinder | None = None,
        segments: SegmentFn | None = None,
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.due = due
        self.segments = segments
        self.listener = CouponOrderListener(clock)

    # -- templates --------------------------------------------------------------------------

    def create_template(
        self,
        *,
        key: str,
        title: str,
        kind: str,
        total_quantity: int,
        amount_off_fen: int = 0,
        percent_off_bps: int = 0,
        max_discount_fen: int | None = None,
        min_amount_fen: int = 0,
        grades: Sequence[str] = (),
        station_ids: Sequence[UUID] = (),
        funder_station_id: UUID | None = None,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        valid_days: int | None = None,
        per_member_limit: int | None = 1,
        stackable: bool = False,
    ) -> dict[str, Any]:
        """A template; `funder_station_id` None means the platform funds it."""
        funder = acc.station_marketing(funder_station_id) if funder_station_id else None
        terms = CouponTerms(
            title=title,
            kind=kind,
            amount_off_fen=amount_off_fen,
            percent_off_bps=percent_off_bps,
            max_discount_fen=max_discount_fen,
            min_amount_fen=min_amount_fen,
            grades=tuple(grades),
            station_ids=tuple(str(s) for s in station_ids),
            funder_account=funder or acc.PLATFORM_MARKETING,
            stackable=stackable,
        ).validated()
        CouponTemplate.check_rules(
            valid_from, valid_until, valid_days, per_member_limit, total_quantity
        )
        for moment in (valid_from, valid_until):
            if moment is not None and moment.tzinfo is None:
                raise InvalidCouponTemplate("times must carry a time zone")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            for station_id in station_ids:
                if not _exists(uow, Station, station_id):
                    raise NotFound(f"no station {station_id}", station_id=str(station_id))
            template = uow.add(
                CouponTemplate(
                    key=key,
                    terms=terms.to_dict(),
                    valid_from=valid_from,
                    valid_until=valid_until,
                    valid_days=valid_days,
                    per_member_limit=per_member_limit,
                    total_quantity=total_quantity,
                )
            )
            return template_view(template)

        payload = [
            terms.to_dict(),
            valid_from,
            valid_until,
            valid_days,
            per_member_limit,
            total_quantity,
        ]
        return self.runner.run(from_key("coupon-template", key), payload, decide)

    def _template(self, uow: UnitOfWork, template_id: UUID) -> CouponTemplate:
        try:
            template = uow.find(CouponTemplate, template_id)
        except TypeError:
            template = None
        if template is None:
            raise NotFound(f"no coupon template {template_id}", template_id=str(template_id))
        return template

    # -- issuing ----------------------------------------------------------------------------

    def issue(
        self, *, template_id: UUID, member_id: UUID, issue_key: str, source: str = "admin"
    ) -> dict[str, Any]:
        """One coupon to one member, once per issue key; raises when none can be issued."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            template = self._template(uow, template_id)
            [(_, outcome, coupon_id)] = grant_coupons(
                uow, template, [Grant(member_id, issue_key)], source=source, now=self.clock()
            )
            if coupon_id is None:
                raise {
                    "exhausted": CouponsExhausted("every coupon of this template is issued"),
                    "limit": CouponLimitReached("the member holds as many as allowed"),
                }.get(outcome, CouponNotIssuable(f"cannot issue: {outcome}", reason=outcome))
            return {**coupon_view(uow.get(Coupon, coupon_id)), "outcome": outcome}

        command_id = from_key("coupon-issue", f"{template_id}:{issue_key}")
        return self.runner.run(command_id, ["issue", str(member_id), source], decide)

    def issue_many(
        self,
        *,
        template_id: UUID,
        key: str,
        member_ids: Sequence[UUID] | None = None,
        segment: str | None = None,
        source: str = "admin",
    ) -> dict[str, Any]:
        """Issue to a list of members or a named segment (`all_members`), a chunk of
        members per command. Idempotent per `key`: a member's issue key is `key:member`, so
        a repeat issues nothing twice; the same key with another audience is a conflict."""
        if (member_ids is None) == (segment is None):
            raise InvalidCouponTemplate("give member_ids or a segment")
        audience: list[Any] = ["segment", segment]
        if member_ids is not None:
            audience = ["members", sorted(str(m) for m in member_ids)]
        request_id = from_key("coupon-issue-request", f"{template_id}:{key}")
        self.runner.run(request_id, ["issue-many", str(template_id), audience, source], _nothing)
        if segment is not None:
            if self.segments is None:
                raise InvalidCouponTemplate("segments are not available here")
            member_ids = list(self.segments(segment))
        members = list(dict.fromkeys(member_ids or ()))
        counts: dict[str, int] = {}
        results: list[dict[str, Any]] = []
        for start in range(0, len(members), CHUNK):
            chunk = members[start : start + CHUNK]
            for row in self._issue_chunk(template_id, key, chunk, source):
                counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
                results.append(row)
        return {
            "template_id": str(template_id),
            "requested": len(members),
            "counts": counts,
            "results": results if segment is None else [],
        }

    def _issue_chunk(
        self, template_id: UUID, key: str, chunk: list[UUID], source: str
    ) -> list[dict[str, Any]]:
        digest = hashlib.sha256(",".join(m.hex for m in chunk).encode()).hexdigest()

        def decide(uow: UnitOfWork) -> list[dict[str, Any]]:
            template = self._template(uow, template_id)
            grants = [Grant(m, f"{key}:{m}") for m in chunk]
            return [
                {
                    "member_id": str(g.member_id),
                    "outcome": outcome,
                    "coupon_id": str(cid) if cid else None,
                }
                for g, outcome, cid in grant_coupons(
                    uow, template, grants, source=source, now=self.clock()
                )
            ]

        command_id = from_key("coupon-issue-chunk", f"{template_id}:{key}:{digest}")
        return self.runner.run(command_id, ["chunk", digest, source], decide)  # type: ignore[no-any-return]

    # -- the quote --------------------------------------------------------------------------

    def offers(
        self, uow: UnitOfWork, member_id: UUID, station_id: UUID, grade: str, amount_fen: int
    ) -> list[CouponOffer]:
        """The member's held, valid coupons that apply to this order, with their discounts
        (FuelOrderService's `offers=`); the quote picks the best deterministically."""
        pocket = uow.find(CouponPocket, CouponPocket.create_id(member_id))
        if pocket is None:
            return []
        now = self.clock()
        found = []
        for coupon_hex in sorted(pocket.coupons):
            coupon = uow.get(Coupon, UUID(hex=coupon_hex))
            off = coupon.discount(member_id, station_id, grade, amount_fen, now)
            if 0 < off < amount_fen:
                found.append((coupon, off))
        return with_stacks(found, amount_fen)

    # -- expiry -----------------------------------------------------------------------------

    def expire(self, *, coupon_id: UUID, now: datetime | None = None) -> dict[str, Any]:
        """Record that a held coupon's validity is over; a no-op for any other coupon."""
        at = now or self.clock()

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            coupon = uow.find(Coupon, coupon_id)
            if coupon is None:
                raise NotFound(f"no coupon {coupon_id}")
            expired = coupon.expire(at)
            return {"coupon_id": str(coupon_id), "state": coupon.state, "expired": expired}

        # A fresh command id: a call before the coupon is due must not answer later ones.
        return self.runner.run(uuid4(), ["expire", str(coupon_id)], decide)  # type: ignore[no-any-return]

    def expire_due(self, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
        """The scheduled sweep: expire up to `limit` held coupons whose validity is over.
        Candidates come from the read model; each coupon decides for itself, so a lagging
        read model costs a skipped candidate, never a wrong expiry."""
        at = now or self.clock()
        counts = {"expired": 0, "skipped": 0}
        for coupon_id in self.due(at, limit) if self.due else ():
            done = self.expire(coupon_id=coupon_id, now=at)["expired"]
            counts["expired" if done else "skipped"] += 1
        return counts

    # -- the domain's own views (tests, audits; the API reads read models) --------------------

    def template(self, template_id: UUID) -> dict[str, Any]:
        uow = UnitOfWork(self.runner.app, self.runner.locks)
        try:
            return template_view(self._template(uow, template_id))
        finally:
            uow.release()

    def coupon(self, coupon_id: UUID) -> dict[str, Any]:
        uow = UnitOfWork(self.runner.app, self.runner.locks)
        try:
            coupon = uow.find(Coupon, coupon_id)
            if coupon is None:
                raise NotFound(f"no coupon {coupon_id}")
            return coupon_view(coupon)
        finally:
            uow.release()


def _nothing(uow: UnitOfWork) -> dict[str, Any]:
    return {}
