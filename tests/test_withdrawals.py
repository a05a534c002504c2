"""Withdrawals end to end: request (hold) -> review -> payout through the WeChat Pay simulator
or a bank file -> the provider's final word posts or voids the hold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from distribution_support import give_commission, member, own_core
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.domain.withdrawal import out_bill_no, parse_out_bill_no
from ledger.errors import InsufficientBalance, WithdrawalNotAllowed
from payout_world import World, open_world
from projections.outbox import event_id as outbox_event_id
from providers.errors import ProviderError
from support import journal_sums, nonzero, project, read_balances
from workers import payouts

HELD = acc.held


@pytest.fixture(scope="module")
def core(server_url, settings) -> Iterator[Core]:
    yield from own_core(server_url, settings)


@pytest.fixture
def world(core) -> Iterator[World]:
    yield from open_world(core)


def mine(core, m: UUID) -> dict:
    project(core)
    return nonzero(read_balances(core, f"member:{m}"))


def platform(core) -> dict:
    project(core)
    return read_balances(core)


def test_out_bill_numbers_are_short_alphanumeric_and_carry_the_withdrawal() -> None:
    wid = uuid4()
    for attempt in (1, 2, 99):
        number = out_bill_no(wid, attempt)
        assert len(number) == 25 and number.isalnum()
        assert parse_out_bill_no(number) == (wid, attempt)
    assert parse_out_bill_no("nope") is None
    assert parse_out_bill_no("W" + "z" * 22 + "01") is None  # beyond 128 bits


def test_approved_withdrawal_is_paid_out_once(core, world: World) -> None:
    r = member(core, "r")
    give_commission(core, r, 10_000)
    before = platform(core)
    me = world.auth(r, "member")
    created = world.api.post(
        "/v1/me/withdrawals",
        json={"amount_fen": 6_000},
        headers={**me, "Idempotency-Key": "withdraw-0001"},
    )
    assert created.status_code == 201, created.text
    w = created.json()
    assert (w["state"], w["amount_fen"], w["net_fen"]) == ("requested", 6_000, 6_000)
    again = world.api.post(
        "/v1/me/withdrawals",
        json={"amount_fen": 6_000},
        headers={**me, "Idempotency-Key": "withdraw-0001"},
    )
    assert again.json() == w
    assert mine(core, r) == {
        (acc.member_commission_available(r), "CNY"): 4_000,
        (HELD(acc.member_commission_available(r)), "CNY"): 6_000,
    }

    admin = world.auth(uuid4(), "admin")
    approved = world.api.post(f"/v1/admin/withdrawals/{w['withdrawal_id']}/approve", headers=admin)
    assert approved.status_code == 200, approved.text
    number = approved.json()["out_bill_no"]
    assert number == out_bill_no(UUID(w["withdrawal_id"]), 1)
    project(core)
    with core.read_pool.connection() as conn:
        [(payload,)] = conn.execute(
            "SELECT payload FROM read.outbox WHERE actor = 'send_payout' AND event_id = %s",
            (outbox_event_id(UUID(w["withdrawal_id"]), 2),),
        ).fetchall()
    assert payload == {"withdrawal_id": w["withdrawal_id"], "out_bill_no": number}

    # the actor sends it: WeChat waits for the member to confirm in the mini-program
    assert payouts.send_payout(world.ctx, **payload) == "WAIT_USER_CONFIRM"
    assert payouts.send_payout(world.ctx, **payload) == "WAIT_USER_CONFIRM"  # redelivered
    assert list(world.sims.wechatpay.transfers.transfers) == [number]
    project(core)
    [listed] = world.api.get("/v1/me/withdrawals", headers=me).json()["items"]
    assert listed["state"] == "sent" and listed["confirm"]["package"]
    assert listed["confirm"]["mchId"] == core.settings.wechat_pay_mchid

    # the member confirms; WeChat reports SUCCESS three times: posted once
    world.sims.wechatpay.confirm_transfer(number)
    deliveries = world.run(world.sims.wechatpay.finish_transfer(number, True, times=3))
    assert [d.status for d in deliveries] == [204, 204, 204]
    assert mine(core, r) == {(acc.member_commission_available(r), "CNY"): 4_000}
    after = platform(core)
    moved = {
        k: after.get(k, 0) - before.get(k, 0)
        for k in ((acc.PROVIDER_WECHAT, "CNY"), (acc.PAYOUTS_IN_TRANSIT, "CNY"))
    }
    assert moved == {(acc.PROVIDER_WECHAT, "CNY"): 6_000, (acc.PAYOUTS_IN_TRANSIT, "CNY"): 0}
    [listed] = world.api.get("/v1/me/withdrawals", headers=me).json()["items"]
    assert (listed["state"], listed["provider_state"], listed["confirm"]) == (
        "paid",
        "SUCCESS",
        None,
    )
    assert payouts.send_payout(world.ctx, **payload) == "SUCCESS"  # nothing sent again
    assert set(journal_sums(core).values()) == {0}


def test_rejected_withdrawal_releases_the_hold(core, world: World) -> None:
    r = member(core, "r")
    give_commission(core, r, 3_000)
    w = core.withdrawals.request_for_member(member_id=r, key="k", amount_fen=3_000)
    admin = world.auth(uuid4(), "admin")
    bad = world.api.post(
        f"/v1/admin/withdrawals/{w['withdrawal_id']}/reject", json={}, headers=admin
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    rejected = world.api.post(
        f"/v1/admin/withdrawals/{w['withdrawal_id']}/reject",
        json={"reason": "account under review"},
        headers=admin,
    )
    assert rejected.json()["state"] == "rejected"
    assert mine(core, r) == {(acc.member_commission_available(r), "CNY"): 3_000}
    late = world.api.post(f"/v1/admin/withdrawals/{w['withdrawal_id']}/approve", headers=admin)
    assert (late.status_code, late.json()["code"]) == (409, "withdrawal_not_allowed")
    listed = world.api.get(
        "/v1/admin/withdrawals", params={"state": "rejected"}, headers=admin
    ).json()["items"]
    assert w["withdrawal_id"] in {i["withdrawal_id"] for i in listed}
    assert [i["reason"] for i in listed if i["withdrawal_id"] == w["withdrawal_id"]] == [
        "account under review"
    ]


def test_payout_failed_then_retried_with_the_same_number(core, world: World) -> None:
    r = member(core, "r")
    give_commission(core, r, 5_000)
    w = core.withdrawals.request_for_member(member_id=r, key="k", amount_fen=5_000)
    wid = UUID(w["withdrawal_id"])
    number = core.withdrawals.approve(withdrawal_id=wid, by="admin:x")["out_bill_no"]
    sim = world.sims.wechatpay

    # WeChat is busy: nothing was created; dramatiq will send again
    sim.fail_next(500, "SYSTEM_ERROR", times=2)  # the create, and the query after it
    with pytest.raises(ProviderError):
        payouts.send_payout(world.ctx, withdrawal_id=str(wid), out_bill_no=number)
    assert core.withdrawals.get(wid)["state"] == "approved"
    assert number not in sim.transfers.transfers
    # the resend reaches WeChat, which makes the bill, but the answer is lost (a timeout):
    # the next resend is refused as busy, and the query by the same number finds the bill
    openid = core.withdrawals.get(wid)["payee"]["openid"]
    world.wechat.create_transfer(number, openid, 5_000, "佣金提现")
    sim.fail_next(500, "SYSTEM_ERROR")
    sent = payouts.send_payout(world.ctx, withdrawal_id=str(wid), out_bill_no=number)
    assert sent == "WAIT_USER_CONFIRM" and list(sim.transfers.transfers) == [number]
    assert core.withdrawals.get(wid)["out_bill_no"] == number  # the same number all along

    # the member never confirms: the bill closes after 24 h, the hold is voided
    world.run(sim.finish_transfer(number, False, "OVERDUE_CLOSE"))
    failed = core.withdrawals.get(wid)
    assert (failed["state"], failed["provider_state"], failed["reason"]) == (
        "failed",
        "FAIL",
        "OVERDUE_CLOSE",
    )
    assert mine(core, r) == {(acc.member_commission_available(r), "CNY"): 5_000}

    # only now a new number: the admin retries, the amount is held again and sent again
    retried = core.withdrawals.retry(withdrawal_id=wid, by="admin:x")
    assert retried["attempt"] == 2 and retried["out_bill_no"] == out_bill_no(wid, 2)
    assert mine(core, r) == {(HELD(acc.member_commission_available(r)), "CNY"): 5_000}
    second = retried["out_bill_no"]
    stale = payouts.send_payout(world.ctx, withdrawal_id=str(wid), out_bill_no=number)
    assert stale == "SUPERSEDED"
    assert (
        payouts.send_payout(world.ctx, withdrawal_id=str(wid), out_bill_no=second)
        == "WAIT_USER_CONFIRM"
    )
    world.run(sim.finish_transfer(second, True))
    assert core.withdrawals.get(wid)["state"] == "paid"
    # a late word about the first bill changes nothing
    late = core.withdrawals.record_payout_result(out_bill_no=number, state="SUCCESS")
    assert late["applied"] is False
    assert mine(core, r) == {}


def test_a_refused_bill_fails_at_once_and_the_sweep_finds_lost_notifications(
    core, world: World
) -> None:
    r = member(core, "r")
    give_commission(core, r, 4_000)
    sim = world.sims.wechatpay
    w = core.withdrawals.request_for_member(member_id=r, key="refused", amount_fen=1_000)
    number = core.withdrawals.approve(withdrawal_id=UUID(w["withdrawal_id"]), by="a")["out_bill_no"]
    sim.fail_next(400, "NO_AUTH", "merchant transfer not enabled")
    assert (
        payouts.send_payout(world.ctx, withdrawal_id=w["withdrawal_id"], out_bill_no=number)
        == "FAIL"
    )
    assert core.withdrawals.get(UUID(w["withdrawal_id"]))["reason"] == "NO_AUTH"

    # the notification of this one is lost; the sweep asks WeChat
    w = core.withdrawals.request_for_member(member_id=r, key="lost", amount_fen=2_000)
    number = core.withdrawals.approve(withdrawal_id=UUID(w["withdrawal_id"]), by="a")["out_bill_no"]
    payouts.send_payout(world.ctx, withdrawal_id=w["withdrawal_id"], out_bill_no=number)
    sim.configure_delivery(hold=True)
    sim.confirm_transfer(number)
    world.run(sim.finish_transfer(number, True))
    project(core)
    checked = payouts.check_payouts(world.ctx, datetime.now(UTC) + timedelta(hours=26))
    assert checked["asked"] >= 1
    assert core.withdrawals.get(UUID(w["withdrawal_id"]))["state"] == "paid"
    assert mine(core, r) == {(acc.member_commission_available(r), "CNY"): 2_000}


def test_a_station_withdraws_settled_income_by_bank_transfer(core, world: World) -> None:
    station = uuid4()
    core.stations.settle(station_id=station, amount=50_000, up_to_position=1)
    partner = world.auth(uuid4(), "partner", [f"station:{station}"])
    body = {
        "amount_fen": 30_000,
        "bank": {
            "bank_name": "ICBC",
            "account_name": "Test Station",
            "account_no": "6222020000001234",
        },
    }
    url = f"/v1/partner/stations/{station}/withdrawals"
    stranger = world.auth(uuid4(), "partner", [f"station:{uuid4()}"])
    refused = world.api.post(url, json=body, headers={**stranger, "Idempotency-Key": "bank-001"})
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    no_bank = world.api.post(
        url, json={"amount_fen": 30_000}, headers={**partner, "Idempotency-Key": "bank-000"}
    )
    assert (no_bank.status_code, no_bank.json()["code"]) == (422, "invalid_amount")
    created = world.api.post(url, json=body, headers={**partner, "Idempotency-Key": "bank-001"})
    assert created.status_code == 201, created.text
    wid = created.json()["withdrawal_id"]
    admin = world.auth(uuid4(), "admin")
    number = world.api.post(f"/v1/admin/withdrawals/{wid}/approve", headers=admin).json()[
        "out_bill_no"
    ]
    assert payouts.send_payout(world.ctx, withdrawal_id=wid, out_bill_no=number) == "EXPORTED"
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT account_no, amount_fen FROM read.bank_transfers WHERE out_bill_no = %s",
            (number,),
        ).fetchone()
    assert row == ("6222020000001234", 30_000)
    project(core)
    listed = world.api.get(url, headers=partner).json()["items"]
    assert [(i["state"], i["payee"]) for i in listed] == [("sent", "ICBC ****1234 Test Station")]
    paid = world.api.post(
        f"/v1/admin/withdrawals/{wid}/bank-result", json={"state": "SUCCESS"}, headers=admin
    )
    assert paid.json()["state"] == "paid"
    project(core)
    assert nonzero(read_balances(core, f"station:{station}")) == {
        (acc.station_income(station), "CNY"): -50_000,
        (acc.station_available(station), "CNY"): 20_000,
    }


def test_fee_minimum_and_daily_limit(core) -> None:
    from ledger.services.withdrawals import WithdrawalRules, WithdrawalService

    service = WithdrawalService(
        core.runner, rules=WithdrawalRules(min_fen=500, fee_bps=60, daily_limit_fen=10_000)
    )
    r = member(core, "r")
    give_commission(core, r, 20_000)
    with pytest.raises(WithdrawalNotAllowed):
        service.request_for_member(member_id=r, key="small", amount_fen=499)
    w = service.request_for_member(member_id=r, key="a", amount_fen=8_333)
    assert (w["fee_fen"], w["net_fen"]) == (49, 8_284)  # 0.6% of 83.33 yuan, rounded down
    with pytest.raises(WithdrawalNotAllowed) as over:
        service.request_for_member(member_id=r, key="b", amount_fen=2_000)
    assert over.value.details["used_fen"] == 8_333
    service.reject(withdrawal_id=UUID(w["withdrawal_id"]), by="a", reason="try again")
    service.request_for_member(member_id=r, key="c", amount_fen=10_000)  # the day's share back


def test_100_concurrent_requests_on_one_balance_never_overdraw(core) -> None:
    r = member(core, "r")
    give_commission(core, r, 10_000)
    outcomes: list[str] = []
    lock = threading.Lock()

    def request(i: int) -> None:
        try:
            core.withdrawals.request_for_member(member_id=r, key=f"c{i}", amount_fen=150)
            outcome = "ok"
        except InsufficientBalance:
            outcome = "insufficient"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 66 and outcomes.count("insufficient") == 34
    wallet = core.app.repository.get(open_wallet_id(r))
    assert wallet.commission_available == 100 and len(wallet.holds) == 66
    assert mine(core, r) == {
        (acc.member_commission_available(r), "CNY"): 100,
        (HELD(acc.member_commission_available(r)), "CNY"): 9_900,
    }


def open_wallet_id(m: UUID) -> UUID:
    from ledger.domain.wallet import Wallet

    return Wallet.create_id(m)


def test_http_refusals_are_problem_json(core, world: World) -> None:
    r = member(core, "r")
    me = world.auth(r, "member")
    cases = [
        ({"amount_fen": 0}, 422, "invalid_request"),
        ({"amount_fen": 50}, 409, "withdrawal_not_allowed"),
        ({"amount_fen": 500}, 422, "insufficient_balance"),
        ({"amount_fen": 500, "channel": "alipay"}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        answer = world.api.post(
            "/v1/me/withdrawals", json=body, headers={**me, "Idempotency-Key": uuid4().hex}
        )
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert (
        world.api.post("/v1/me/withdrawals", json={"amount_fen": 500}, headers=me).status_code
        == 422
    )  # no Idempotency-Key
    for path in (
        "/v1/admin/withdrawals",
        "/v1/admin/distribution/referrals",
        "/v1/admin/distribution/commissions",
    ):
        refused = world.api.get(path, headers=me)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert world.api.get("/v1/me/commissions").status_code == 401
    missing = world.api.post(
        f"/v1/admin/withdrawals/{uuid4()}/approve", headers=world.auth(uuid4(), "admin")
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_an_approval_reaches_wechat_through_the_outbox_and_a_real_worker(fresh_core) -> None:
    """Withdrawal.Approved -> outbox row -> relay -> Redis -> the send_payout actor."""
    import os

    import dramatiq
    import redis

    from infra.settings import get_settings
    from workers.broker import build_broker, close_broker
    from workers.context import use_context
    from workers.relay import relay

    url = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    saved = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = url
    get_settings.cache_clear()
    try:
        from workers import actors
    finally:
        if saved is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = saved
        get_settings.cache_clear()
    broker = build_broker(url)
    broker.namespace = f"ledger-test-{uuid4().hex[:12]}"
    for actor in actors.broker.actors.values():
        broker.declare_actor(actor)
    core = fresh_core
    for w in open_world(core):
        previous = use_context(w.ctx)
        try:
            r = member(core, "r")
            give_commission(core, r, 2_000)
            wd = core.withdrawals.request_for_member(member_id=r, key="k", amount_fen=2_000)
            number = core.withdrawals.approve(withdrawal_id=UUID(wd["withdrawal_id"]), by="a")[
                "out_bill_no"
            ]
            project(core)
            with core.read_pool.connection() as conn:
                assert relay(conn, broker) == 1
            worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
            worker.start()
            try:
                broker.join("default", timeout=30_000)
                worker.join()
            finally:
                worker.stop()
            assert list(w.sims.wechatpay.transfers.transfers) == [number]
            assert core.withdrawals.get(UUID(wd["withdrawal_id"]))["state"] == "sent"
        finally:
            use_context(previous)
            broker.flush_all()
            close_broker(broker)


def test_an_alipay_only_member_is_refused_a_wechat_payout_before_any_hold(core) -> None:
    signed = core.members.alipay_sign_in(f"2088{uuid4().int % 10**12:012d}")
    r = UUID(signed["member_id"])
    give_commission(core, r, 5_000)
    with pytest.raises(WithdrawalNotAllowed):
        core.withdrawals.request_for_member(member_id=r, key="wx", amount_fen=1_000)
    assert mine(core, r) == {(acc.member_commission_available(r), "CNY"): 5_000}
