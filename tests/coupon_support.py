"""Building blocks for coupon, campaign and referral tests: members, services on one clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from uuid import UUID, uuid4

from infra.bootstrap import Core
from ledger.services.coupons import CouponService
from ledger.services.fuel_orders import FuelOrderService
from orders_support import Clock
from projections.coupons import due_coupons, segment_members


def register(core: Core, count: int = 1) -> list[UUID]:
    """Members that exist (issuing refuses ids that are not members)."""
    return [UUID(core.members.sign_in(f"o-{uuid4().hex}", None)["member_id"]) for _ in range(count)]


def coupon_services(core: Core, clock: Clock) -> tuple[CouponService, FuelOrderService]:
    """A coupon service and an order service wired to it, both on the test's clock."""
    coupons = CouponService(
        core.runner,
        clock=clock,
        due=partial(due_coupons, core.read_pool),
        segments=partial(segment_members, core.read_pool),
    )
    orders = FuelOrderService(
        core.runner, clock=clock, offers=coupons.offers, listeners=[coupons.listener]
    )
    return coupons, orders


def new_template(coupons: CouponService, **terms) -> UUID:
    defaults = {
        "title": "10 off",
        "kind": "fixed",
        "amount_off_fen": 1_000,
        "valid_days": 3,
        "total_quantity": 1_000,
    }
    if terms.get("kind") == "percent":
        defaults["amount_off_fen"] = 0
    created = coupons.create_template(key=f"t-{uuid4().hex}", **{**defaults, **terms})
    return UUID(created["template_id"])


def give(coupons: CouponService, template_id: UUID, member_id: UUID) -> UUID:
    issued = coupons.issue(
        template_id=template_id, member_id=member_id, issue_key=f"k-{uuid4().hex}"
    )
    return UUID(issued["coupon_id"])


def race(calls: list[Callable[[], object]]) -> list[object]:
    """Run every call at once; each result or the exception it raised."""
    results: list[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
