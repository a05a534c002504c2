"""Worked examples of fuel orders: every account after each step."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from ledger import accounts as acc
from ledger.domain.refund import Refund
from ledger.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    OrderNotPayable,
    RefundNotAllowed,
)
from orders_support import Clock, make_station, order_service
from support import journal_sums, nonzero, project, read_balances


def balances_of(core, *owners: str) -> dict:
    project(core)
    out: dict = {}
    for owner in owners:
        out.update(nonzero(read_balances(core, owner)))
    return out


def test_card_payment_with_points_then_partial_and_full_refund(core) -> None:
    clock = Clock()
    orders = order_service(core, clock)
    station = make_station(core, rate_bps=100, price=789)
    m = uuid4()
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=30_000, bonus=1_000)
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=500)
    before = balances_of(core, f"member:{m}")

    q = orders.quote(
        member_id=m, station_id=station, grade="92#", nozzle=2, amount_fen=20_000, points=300
    )
    assert q["volume_ml"] == 25_348 and q["points_used"] == 300 and q["points_fen"] == 300
    assert q["payable_fen"] == 19_700 and q["points_to_earn"] == 197

    order = orders.create(
        member_id=m,
        key="k1",
        station_id=station,
        grade="92#",
        nozzle=2,
        amount_fen=20_000,
        points=300,
    )
    assert (
        orders.create(
            member_id=m,
            key="k1",
            station_id=station,
            grade="92#",
            nozzle=2,
            amount_fen=20_000,
            points=300,
        )
        == order
    )
    with pytest.raises(IdempotencyConflict):
        orders.create(
            member_id=m,
            key="k1",
            station_id=station,
            grade="92#",
            nozzle=2,
            amount_fen=20_001,
            points=300,
        )
    order_id = UUID(order["order_id"])
    paid = orders.pay_with_card(order_id=order_id, member_id=m)
    assert paid["status"] == "paid"
    # 19,700 from 30,000 cash; 300 points; earned 197 points
    assert balances_of(core, f"member:{m}") == {
        (acc.member_card(m), "CNY"): 10_300,
        (acc.member_card_bonus(m), "CNY"): 1_000,
        (acc.member_points(m), "PTS"): 500 - 300 + 197,
    }
    # the station earns the gross 200 yuan less the 1% fee
    assert balances_of(core, f"station:{station}") == {(acc.station_income(station), "CNY"): 19_800}

    # refund 50 yuan of undispensed fuel: card and points parts in proportion
    r1 = orders.refund(
        order_id=order_id,
        out_refund_no=f"{m}-r1",
        amount_fen=5_000,
        reason="fuel not dispensed",
        requested_by="station",
    )
    assert r1["parts"] == {"card": 4_925, "points": 75}
    assert (
        orders.refund(
            order_id=order_id,
            out_refund_no=f"{m}-r1",
            amount_fen=5_000,
            reason="fuel not dispensed",
            requested_by="station",
        )
        == r1
    )
    # fee shares come back rounded down (49 of the card part's 197, 0 of the points' 3), so
    # the station gives back 4,951 of its 19,800; a full refund later squares it exactly
    assert balances_of(core, f"station:{station}")[(acc.station_income(station), "CNY")] == 14_849
    # the rest: everything is back as it was before the payment
    orders.refund(
        order_id=order_id,
        out_refund_no=f"{m}-r2",
        amount_fen=15_000,
        reason="fuel not dispensed",
        requested_by="station",
    )
    with pytest.raises(RefundNotAllowed):
        orders.refund(
            order_id=order_id,
            out_refund_no=f"{m}-r3",
            amount_fen=1,
            reason="again",
            requested_by="station",
        )
    assert balances_of(core, f"member:{m}") == before
    assert balances_of(core, f"station:{station}") == {}
    assert set(journal_sums(core).values()) == {0}


def test_wechat_payment_with_card_part_is_held_until_the_notification(core) -> None:
    clock = Clock()
    orders = order_service(core, clock)
    station = make_station(core)
    m = uuid4()
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=5_000)
    order = orders.create(
        member_id=m, key="w1", station_id=station, grade="92#", nozzle=1, amount_fen=20_000
    )
    order_id = UUID(order["order_id"])
    started = orders.start_provider_payment(
        order_id=order_id, member_id=m, method="wechat", card_fen=5_000
    )
    assert started["provider_fen"] == 15_000
    assert balances_of(core, f"member:{m}") == {(acc.held(acc.member_card(m)), "CNY"): 5_000}
    with pytest.raises(InsufficientBalance):  # the held card value is not spendable twice
        core.wallets.pay_with_card(
            key=f"{m}-x", member_id=m, amount=1, destinations=[(acc.PLATFORM_REVENUE, 1)]
        )

    wechat_before = balances_of(core, "provider").get((acc.PROVIDER_WECHAT, "CNY"), 0)
    notification = dict(
        provider="wechat",
        transaction_id=f"wx-{m}",
        out_trade_no=started["out_trade_no"],
        amount_fen=15_000,
    )
    first = orders.confirm_provider_payment(**notification)
    assert first["outcome"] == "applied"
    for _ in range(3):  # duplicates: one effect
        assert orders.confirm_provider_payment(**notification)["outcome"] == "applied"
    assert balances_of(core, f"member:{m}") == {(acc.member_points(m), "PTS"): 200}
    wechat_after = balances_of(core, "provider")[(acc.PROVIDER_WECHAT, "CNY")]
    assert wechat_after - wechat_before == -15_000

    # full refund: the WeChat part goes back through the provider, the card part to the card
    result = orders.refund(
        order_id=order_id,
        out_refund_no=f"{m}-r",
        amount_fen=20_000,
        reason="wrong nozzle",
        requested_by="admin",
    )
    assert result["parts"] == {"provider": 15_000, "card": 5_000}
    assert result["provider_state"] == "pending"
    assert balances_of(core, f"member:{m}") == {(acc.member_card(m), "CNY"): 5_000}
    answered = orders.record_refund_result(out_refund_no=f"{m}-r", state="SUCCESS")
    assert answered["changed"] and answered["provider_state"] == "SUCCESS"
    # a duplicate notification answers the same and records nothing more
    version = core.app.repository.get(Refund.create_id(f"{m}-r")).version
    assert orders.record_refund_result(out_refund_no=f"{m}-r", state="SUCCESS") == answered
    assert core.app.repository.get(Refund.create_id(f"{m}-r")).version == version


def test_late_mismatched_and_duplicate_payments_go_to_suspense(core) -> None:
    clock = Clock()
    orders = order_service(core, clock)
    station = make_station(core)
    m = uuid4()
    a = orders.create(
        member_id=m, key="a", station_id=station, grade="92#", nozzle=1, amount_fen=10_000
    )
    b = orders.create(
        member_id=m, key="b", station_id=station, grade="92#", nozzle=1, amount_fen=10_000
    )
    for o in (a, b):
        orders.start_provider_payment(order_id=UUID(o["order_id"]), member_id=m, method="wechat")
    wrong = orders.confirm_provider_payment(
        provider="wechat", transaction_id=f"{m}-1", out_trade_no=a["out_trade_no"], amount_fen=9_999
    )
    assert wrong["outcome"] == "amount_mismatch"
    clock.advance(minutes=16)
    expired = orders.expire(order_id=UUID(b["order_id"]))
    assert expired["status"] == "expired"
    with pytest.raises(OrderNotPayable):
        orders.pay_with_card(order_id=UUID(b["order_id"]), member_id=m)
    late = orders.confirm_provider_payment(
        provider="wechat",
        transaction_id=f"{m}-2",
        out_trade_no=b["out_trade_no"],
        amount_fen=10_000,
    )
    assert late["outcome"] == "late"
    refund = orders.refund_suspense_payment(payment_id=UUID(late["payment_id"]))
    assert refund["state"] == "requested"
    assert orders.refund_suspense_payment(payment_id=UUID(late["payment_id"]))["state"] == (
        "requested"
    )
    project(core)
    assert set(journal_sums(core).values()) == {0}
