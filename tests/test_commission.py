"""Worked examples of one-level commission: earn, release, clawback from pending and from
available into a recorded debt; every account of the referrer after each step."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from distribution_support import DAY, bind, card_order, member, orders_of, own_core
from distribution_support import station as shared_station
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.domain.commission import Commission
from ledger.domain.loyalty_book import commission_debt_account
from ledger.domain.wallet import Wallet
from ledger.errors import CommissionDebtOutstanding
from ledger.services.commission import CommissionListener, CommissionPolicy
from orders_support import Clock, make_station
from projections import distribution_queries as dq
from support import journal_sums, nonzero, project, read_balances


@pytest.fixture(scope="module")
def core(server_url, settings) -> Iterator[Core]:
    yield from own_core(server_url, settings)


def referrer_accounts(core, r: UUID) -> dict:
    project(core)
    found = nonzero(read_balances(core, f"member:{r}"))
    debt = read_balances(core, "platform").get((commission_debt_account(r), "CNY"), 0)
    if debt:
        found[(commission_debt_account(r), "CNY")] = debt
    return found


def pending(r: UUID) -> tuple[str, str]:
    return (acc.member_commission_pending(r), "CNY")


def available(r: UUID) -> tuple[str, str]:
    return (acc.member_commission_available(r), "CNY")


def test_earn_release_claw_back_into_debt_and_repay(core) -> None:
    clock = Clock()
    orders = orders_of(core, clock)
    station = shared_station(core)
    r, e = member(core, "referrer"), member(core, "referee")
    bind(core, e, r)
    core.wallets.top_up(key=f"{e}-t", member_id=e, amount=30_000, bonus=2_000)

    # 200 yuan paid from the card's cash: 1% commission, pending for 7 days
    order = card_order(orders, e, station, 20_000)
    assert referrer_accounts(core, r) == {pending(r): 200}
    [row] = dq.commissions(core.read_pool, referrer=r)["items"]
    assert (row["order_id"], row["amount_fen"], row["state"]) == (order, 200, "pending")
    assert row["due_at"] == clock.now + 7 * DAY

    # the release job: not before the refund window closes, then in one event
    assert core.commission.release_commission(clock.now + 7 * DAY - DAY / 24)["orders"] == 0
    wallet_id = Wallet.create_id(r)
    version = core.app.repository.get(wallet_id).version
    released = core.commission.release_commission(clock.now + 7 * DAY)
    assert released == {"referrers": 1, "released_fen": 200, "repaid_fen": 0, "orders": 1}
    assert core.app.repository.get(wallet_id).version == version + 1
    assert referrer_accounts(core, r) == {available(r): 200}
    assert dq.commissions(core.read_pool, referrer=r)["items"][0]["state"] == "available"
    # a second run finds nothing more to do
    assert core.commission.release_commission(clock.now + 8 * DAY)["orders"] == 0

    # a quarter refunded: a quarter of the commission comes back from available
    orders.refund(
        order_id=order,
        out_refund_no=f"{e}-r1",
        amount_fen=5_000,
        reason="fuel not dispensed",
        requested_by="station",
    )
    assert referrer_accounts(core, r) == {available(r): 150}

    # the referrer withdraws it all; then the rest of the order is refunded: what is held for
    # the withdrawal is not touched, the clawback becomes a debt
    w = core.withdrawals.request_for_member(member_id=r, key="w1", amount_fen=150)
    orders.refund(
        order_id=order,
        out_refund_no=f"{e}-r2",
        amount_fen=15_000,
        reason="fuel not dispensed",
        requested_by="station",
    )
    assert referrer_accounts(core, r) == {
        (acc.held(acc.member_commission_available(r)), "CNY"): 150,
        (commission_debt_account(r), "CNY"): -150,
    }
    assert core.app.repository.get(wallet_id).commission_debt == 150
    assert core.app.repository.get(Commission.create_id(order)).outstanding == 0
    with pytest.raises(CommissionDebtOutstanding):
        core.withdrawals.approve(withdrawal_id=UUID(w["withdrawal_id"]), by="admin")
    with pytest.raises(CommissionDebtOutstanding):
        core.withdrawals.request_for_member(member_id=r, key="w2", amount_fen=100)
    totals = dq.commission_totals(core.read_pool, r)
    assert (totals["debt_fen"], totals["held_fen"], totals["earned_fen"]) == (150, 150, 0)

    # rejected: the held commission comes back and pays the debt first
    core.withdrawals.reject(
        withdrawal_id=UUID(w["withdrawal_id"]), by="admin", reason="commission clawed back"
    )
    assert referrer_accounts(core, r) == {}
    assert core.app.repository.get(wallet_id).commission_debt == 0
    assert [c["state"] for c in dq.commissions(core.read_pool, referrer=r)["items"]] == [
        "clawed_back"
    ]
    assert set(journal_sums(core).values()) == {0}


def test_clawback_from_pending_and_debt_repaid_by_new_commission(core) -> None:
    clock = Clock()
    orders = orders_of(core, clock)
    station = shared_station(core)
    r, e = member(core, "referrer"), member(core, "referee")
    bind(core, e, r)
    core.wallets.top_up(key=f"{e}-t", member_id=e, amount=80_000)

    first = card_order(orders, e, station, 20_000)  # 200 pending
    orders.refund(
        order_id=first,
        out_refund_no=f"{e}-p",
        amount_fen=8_000,
        reason="partial",
        requested_by="station",
    )
    assert referrer_accounts(core, r) == {pending(r): 120}
    [row] = dq.commissions(core.read_pool, referrer=r)["items"]
    assert (row["clawed_fen"], row["debt_fen"], row["state"]) == (80, 0, "pending")
    core.commission.release_commission(clock.now + 7 * DAY)
    assert referrer_accounts(core, r) == {available(r): 120}

    # the rest refunded after the referrer has withdrawn (and been paid) everything
    w = core.withdrawals.request_for_member(member_id=r, key="all", amount_fen=120)
    core.withdrawals.approve(withdrawal_id=UUID(w["withdrawal_id"]), by="admin")
    core.withdrawals.record_payout_result(
        out_bill_no=core.withdrawals.get(UUID(w["withdrawal_id"]))["out_bill_no"],
        state="SUCCESS",
    )
    orders.refund(
        order_id=first,
        out_refund_no=f"{e}-q",
        amount_fen=12_000,
        reason="rest",
        requested_by="station",
    )
    assert referrer_accounts(core, r) == {(commission_debt_account(r), "CNY"): -120}

    # the next commission repays the debt first when it is released
    clock.advance(days=1)
    card_order(orders, e, station, 30_000)  # 300 pending
    project(core)  # the job finds referrers with commission due in the read model
    released = core.commission.release_commission(clock.now + 7 * DAY)
    assert (released["released_fen"], released["repaid_fen"]) == (300, 120)
    assert referrer_accounts(core, r) == {available(r): 180}
    assert set(journal_sums(core).values()) == {0}


def test_what_earns_commission(core) -> None:
    """Cash only (provider and card; not the card bonus, points or coupons), rounded down; a
    station's own rate; no referrer, no commission."""
    clock = Clock()
    station = shared_station(core)
    special = make_station(core)
    listener = CommissionListener(
        CommissionPolicy(rate_bps=100, station_rates_bps={str(special): 250})
    )
    orders = orders_of(core, clock, listeners=[listener])
    r, e, loner = member(core, "r"), member(core, "e"), member(core, "loner")
    bind(core, e, r)
    core.wallets.top_up(key=f"{e}-t", member_id=e, amount=10_000, bonus=5_000)
    core.wallets.top_up(key=f"{loner}-t", member_id=loner, amount=10_000)

    card_order(orders, e, station, 12_345)  # 10,000 cash + 2,345 bonus: 1% of 10,000
    assert referrer_accounts(core, r) == {pending(r): 100}
    core.wallets.top_up(key=f"{e}-t2", member_id=e, amount=9_999)
    card_order(orders, e, special, 9_999)  # 2.5% of 9,999 = 249.975 -> 249
    assert referrer_accounts(core, r) == {pending(r): 349}
    card_order(orders, loner, station, 10_000)
    assert dq.commissions(core.read_pool, referrer=loner)["items"] == []
    assert referrer_accounts(core, r) == {pending(r): 349}


def test_a_provider_payment_earns_commission_in_the_same_command(core) -> None:
    clock = Clock()
    orders = orders_of(core, clock)
    station = shared_station(core)
    r, e = member(core, "r"), member(core, "e")
    bind(core, e, r)
    order = orders.create(
        member_id=e, key="wx", station_id=station, grade="92#", nozzle=1, amount_fen=8_888
    )
    started = orders.start_provider_payment(
        order_id=UUID(order["order_id"]), member_id=e, method="wechat"
    )
    note = dict(
        provider="wechat",
        transaction_id=f"tx-{uuid4().hex}",
        out_trade_no=started["out_trade_no"],
        amount_fen=8_888,
    )
    for _ in range(3):  # one payment, one commission
        assert orders.confirm_provider_payment(**note)["outcome"] == "applied"
    assert referrer_accounts(core, r) == {pending(r): 88}


def test_commission_read_models_through_http(core) -> None:
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from api.main import create_app
    from payout_world import bearer
    from workers import payouts

    clock = Clock()
    orders = orders_of(core, clock)
    station = shared_station(core)
    r, e = member(core, "r"), member(core, "e")
    bind(core, e, r)
    core.wallets.top_up(key=f"{e}-t", member_id=e, amount=50_000)
    order = card_order(orders, e, station, 25_000)
    project(core)
    with TestClient(create_app(core=core, providers=SimpleNamespace())) as api:
        auth = bearer(core, r, "member")
        mine = api.get("/v1/me/commissions", headers=auth).json()
        assert mine["totals"] == {
            "pending_fen": 250,
            "available_fen": 0,
            "held_fen": 0,
            "debt_fen": 0,
            "earned_fen": 250,
            "withdrawn_fen": 0,
        }
        assert [(i["order_id"], i["state"]) for i in mine["items"]] == [(str(order), "pending")]
        admin = bearer(core, uuid4(), "admin")
        [rel] = api.get(
            "/v1/admin/distribution/referrals", params={"referrer": str(r)}, headers=admin
        ).json()["items"]
        assert (rel["member_id"], rel["orders"], rel["commission_fen"]) == (str(e), 1, 250)
        listed = api.get(
            "/v1/admin/distribution/commissions", params={"referrer": str(r)}, headers=admin
        ).json()["items"]
        assert [i["amount_fen"] for i in listed] == [250]

        # the scheduled sweep releases it once the refund window has closed
        ctx = SimpleNamespace(core=core, wechat_pay=None)
        swept = payouts.loyalty_sweep(ctx, clock.now + 8 * DAY)  # type: ignore[arg-type]
        assert swept["commission"]["released_fen"] >= 250
        project(core)
        totals = api.get("/v1/me/commissions", headers=auth).json()["totals"]
        assert (totals["pending_fen"], totals["available_fen"]) == (0, 250)
        points = api.get("/v1/me/points", headers=bearer(core, e, "member")).json()
        assert points["points"] == 250 and points["items"][0]["kind"] == "points_earned"
        assert points["expiring"] == [{"expires_on": "2027-11-30", "points": 250}]
