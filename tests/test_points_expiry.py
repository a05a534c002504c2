"""Points lots: earning rules with multipliers, expiry at the end of the month N months on,
spending first-in-first-out, and refunds that put back exactly the lots they took from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest

from distribution_support import member, orders_of, own_core
from distribution_support import station as shared_station
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.domain.wallet import Wallet
from ledger.ids import from_key
from ledger.loyalty import PointsCampaign, PointsRules, lot_expiry, parse_campaigns
from ledger.services.wallets import open_wallet
from orders_support import Clock
from projections import distribution_queries as dq
from support import journal_sums, project

CST_MORNING = 0  # 08:00 in Shanghai is 00:00 UTC


@pytest.fixture(scope="module")
def core(server_url, settings) -> Iterator[Core]:
    yield from own_core(server_url, settings)


def at(y: int, m: int, d: int, hour: int = CST_MORNING) -> datetime:
    return datetime(y, m, d, hour, tzinfo=UTC)


def earn(core, m: UUID, points: int, earned_at: datetime) -> None:
    key = uuid4().hex

    def decide(uow):
        open_wallet(uow, m).earn_points(
            from_key("test-earn", key), points, expires_on=lot_expiry(earned_at).isoformat()
        )

    core.runner.run(from_key("test-earn", key), ["earn"], decide)


def lots(core, m: UUID) -> list[tuple[str, int]]:
    wallet = core.app.repository.get(Wallet.create_id(m))
    assert wallet.points_lots.total == wallet.points  # the lots always add up
    return [(lot["expires_on"], lot["points"]) for lot in wallet.points_lots.view()]


def test_lot_expiry_is_the_end_of_the_month_n_months_on() -> None:
    assert lot_expiry(at(2026, 11, 24)) == date(2027, 11, 30)
    # 23:30 UTC on 31 January is already 1 February in Shanghai
    assert lot_expiry(datetime(2026, 1, 31, 23, 30, tzinfo=UTC)) == date(2027, 2, 28)
    assert lot_expiry(at(2027, 2, 15)) == date(2028, 2, 29)
    assert lot_expiry(at(2026, 12, 1), months=1) == date(2027, 1, 31)


def test_multipliers_multiply_exactly_and_round_down_once() -> None:
    rules = PointsRules(
        grade_multipliers_bps={"95#": 15_000},
        station_multipliers_bps={"s1": 11_000},
        campaigns=parse_campaigns("2026-12-01/2026-12-31:12000,2026-12-24/2026-12-26:20000"),
    )
    assert rules.points_earned(30_099) == 300  # x1 until a sale binds its multipliers
    plain = rules.for_sale(station_id="s0", grade="92#", at=at(2026, 11, 30))
    assert plain.points_earned(30_099) == 300
    sale = rules.for_sale(station_id="s1", grade="95#", at=at(2026, 12, 2))
    assert sale.points_earned(30_000) == 594  # 300 x 1.5 x 1.1 x 1.2 = 594
    assert sale.points_earned(1_700) == 33  # 17 x 1.98 = 33.66, rounded down once
    christmas = rules.for_sale(station_id="s0", grade="92#", at=at(2026, 12, 25))
    assert christmas.points_earned(10_000) == 200  # the best campaign running, not both
    assert parse_campaigns("") == ()
    assert PointsCampaign(date(2026, 1, 1), date(2026, 1, 1), 1).runs_on(date(2026, 1, 1))


def test_points_expire_fifo_one_event_per_member(core) -> None:
    m = member(core)
    earn(core, m, 100, at(2026, 1, 10))  # last day 2027-01-31
    earn(core, m, 200, at(2026, 3, 5))  # 2027-03-31
    earn(core, m, 300, at(2026, 6, 1))  # 2027-06-30
    core.wallets.spend_points(key=f"{m}-s", member_id=m, points=150)
    assert lots(core, m) == [("2027-03-31", 150), ("2027-06-30", 300)]

    project(core)
    wallet_id = Wallet.create_id(m)
    version = core.app.repository.get(wallet_id).version
    core.points_expiry.expire_points(at(2027, 3, 31, 15))  # 23:00 in Shanghai: not yet
    assert core.app.repository.get(wallet_id).version == version
    ran = core.points_expiry.expire_points(at(2027, 4, 1))
    assert ran["members"] >= 1 and ran["points"] >= 150
    assert core.app.repository.get(wallet_id).version == version + 1  # one event
    assert lots(core, m) == [("2027-06-30", 300)]
    project(core)
    core.points_expiry.expire_points(at(2027, 4, 1, 5))  # the same day again: nothing
    assert core.app.repository.get(wallet_id).version == version + 1
    assert core.points_expiry.expire_for(m, date(2027, 4, 2))["expired"] == 0
    points = dq.member_points(core.read_pool, m)
    assert (points["points"], points["expiring"]) == (
        300,
        [{"expires_on": "2027-06-30", "points": 300}],
    )
    assert [(i["kind"], i["points"]) for i in points["items"]][:2] == [
        ("points_expired", -150),
        ("points_spent", -150),
    ]
    assert set(journal_sums(core).values()) == {0}


def test_a_refund_puts_points_back_into_the_lots_they_came_from(core) -> None:
    clock = Clock()
    orders = orders_of(core, clock)
    station = shared_station(core)
    m = member(core)
    earn(core, m, 100, at(2026, 1, 10))  # 2027-01-31
    earn(core, m, 100, at(2026, 6, 1))  # 2027-06-30
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=20_000)
    before = lots(core, m)

    # card payment with 120 points: 100 from the older lot, 20 from the newer; 98 earned
    order = orders.create(
        member_id=m,
        key="p",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=10_000,
        points=120,
    )
    orders.pay_with_card(order_id=UUID(order["order_id"]), member_id=m)
    assert lots(core, m) == [("2027-06-30", 80), ("2027-11-30", 98)]
    orders.refund(
        order_id=UUID(order["order_id"]),
        out_refund_no=f"{m}-r",
        amount_fen=10_000,
        reason="not dispensed",
        requested_by="station",
    )
    assert lots(core, m) == before

    # the same through WeChat Pay: the points are held (and taken from the lots) until paid
    order = orders.create(
        member_id=m,
        key="w",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=10_000,
        points=150,
    )
    started = orders.start_provider_payment(
        order_id=UUID(order["order_id"]), member_id=m, method="wechat"
    )
    assert lots(core, m) == [("2027-06-30", 50)]
    orders.confirm_provider_payment(
        provider="wechat",
        transaction_id=f"tx-{uuid4().hex}",
        out_trade_no=started["out_trade_no"],
        amount_fen=started["provider_fen"],
    )
    orders.refund(
        order_id=UUID(order["order_id"]),
        out_refund_no=f"{m}-r2",
        amount_fen=5_000,
        reason="half",
        requested_by="station",
    )
    # half of the 150 points back: the latest-expiring slices first
    assert lots(core, m) == [("2027-01-31", 25), ("2027-06-30", 100), ("2027-11-30", 49)]
    orders.refund(
        order_id=UUID(order["order_id"]),
        out_refund_no=f"{m}-r3",
        amount_fen=5_000,
        reason="rest",
        requested_by="station",
    )
    assert lots(core, m) == before

    # an order that expires unpaid releases its hold into the same lots
    clock.advance(minutes=1)
    order = orders.create(
        member_id=m,
        key="x",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=10_000,
        points=130,
    )
    orders.start_provider_payment(order_id=UUID(order["order_id"]), member_id=m, method="wechat")
    clock.advance(minutes=16)
    orders.expire(order_id=UUID(order["order_id"]))
    assert lots(core, m) == before
    project(core)
    with core.read_pool.connection() as conn:
        read_lots, taken = conn.execute(
            "SELECT lots, taken FROM read.points_lots WHERE member_id = %s", (m,)
        ).fetchone()
    wallet = core.app.repository.get(Wallet.create_id(m))
    assert read_lots == wallet.points_lots.lots and taken == wallet.points_lots.taken
    assert wallet.balance(acc.member_points(m), "PTS") == 200
