"""The points mall end to end: the back office stocks and publishes goods, members redeem with
points or points + cash (WeChat Pay simulator), orders are shipped, picked up or cancelled
with everything returned; stock is never oversold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from distribution_support import bind, card_order, give_commission, member, orders_of, own_core
from distribution_support import station as shared_station
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.domain.wallet import Wallet
from ledger.errors import OutOfStock
from ledger.services.mall import MallService
from orders_support import Clock
from payout_world import World, open_world
from support import journal_sums, nonzero, project, read_balances
from workers import effects

IMAGE = "https://img.fuel-ledger.example/goods/mug.png"


@pytest.fixture(scope="module")
def core(server_url, settings) -> Iterator[Core]:
    yield from own_core(server_url, settings)


@pytest.fixture
def world(core) -> Iterator[World]:
    yield from open_world(core)


def stock_goods(
    world: World, *, points: int, cash: int = 0, stock: int = 5, publish: bool = True
) -> str:
    admin = world.auth(uuid4(), "admin")
    category = world.api.post("/v1/admin/mall/categories", json={"name": "Car care"}, headers=admin)
    assert category.status_code == 201, category.text
    goods = world.api.post(
        "/v1/admin/mall/goods",
        headers=admin,
        json={
            "category_id": category.json()["category_id"],
            "name": "Travel mug",
            "images": [IMAGE],
            "description": "Keeps tea hot for 6 hours",
            "points_price": points,
            "cash_price_fen": cash,
            "stock": stock,
        },
    )
    assert goods.status_code == 201, goods.text
    goods_id = goods.json()["goods_id"]
    if publish:
        published = world.api.post(f"/v1/admin/mall/goods/{goods_id}/publish", headers=admin)
        assert published.json()["published"] is True
    return goods_id


def points_of(core, m: UUID) -> dict:
    project(core)
    return nonzero(read_balances(core, f"member:{m}"))


def test_redeem_with_points_then_ship(core, world: World) -> None:
    goods_id = stock_goods(world, points=1_200, stock=3)
    m = member(core)
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=3_000)
    me = world.auth(m, "member")
    project(core)
    listed = world.api.get("/v1/mall/goods").json()["items"]
    [mug] = [g for g in listed if g["goods_id"] == goods_id]
    assert (mug["name"], mug["images"], mug["stock"], mug["points_price"]) == (
        "Travel mug",
        [IMAGE],
        3,
        1_200,
    )

    body = {"goods_id": goods_id, "quantity": 2, "delivery": "ship", "address": "1 Road"}
    redeemed = world.api.post(
        "/v1/mall/orders", json=body, headers={**me, "Idempotency-Key": "mall-0001"}
    )
    assert redeemed.status_code == 201, redeemed.text
    order = redeemed.json()["order"]
    assert (order["status"], order["points"], redeemed.json()["payment"]) == ("paid", 2_400, None)
    assert (
        world.api.post(
            "/v1/mall/orders", json=body, headers={**me, "Idempotency-Key": "mall-0001"}
        ).json()
        == redeemed.json()
    )
    assert points_of(core, m) == {(acc.member_points(m), "PTS"): 600}
    more = world.api.post(
        "/v1/mall/orders",
        json={**body, "quantity": 2},
        headers={**me, "Idempotency-Key": "mall-0002"},
    )
    assert (more.status_code, more.json()["code"]) == (409, "out_of_stock")
    poor = world.api.post(
        "/v1/mall/orders",
        json={**body, "quantity": 1},
        headers={**me, "Idempotency-Key": "mall-0003"},
    )
    assert (poor.status_code, poor.json()["code"]) == (422, "insufficient_balance")

    project(core)
    mine = world.api.get("/v1/me/mall-orders", headers=me).json()["items"]
    assert [(o["order_id"], o["status"]) for o in mine] == [(order["order_id"], "paid")]
    admin = world.auth(uuid4(), "admin")
    wrong = world.api.post(f"/v1/admin/mall/orders/{order['order_id']}/pickup", headers=admin)
    assert (wrong.status_code, wrong.json()["code"]) == (409, "mall_order_not_allowed")
    shipped = world.api.post(
        f"/v1/admin/mall/orders/{order['order_id']}/ship",
        json={"tracking_no": "SF1234567"},
        headers=admin,
    )
    assert shipped.json()["status"] == "shipped"
    project(core)
    [row] = world.api.get(
        "/v1/admin/mall/orders", params={"member_id": str(m)}, headers=admin
    ).json()["items"]
    assert (row["status"], row["tracking_no"]) == ("shipped", "SF1234567")
    assert [
        g["stock"]
        for g in world.api.get("/v1/mall/goods").json()["items"]
        if g["goods_id"] == goods_id
    ] == [1]


def test_points_and_cash_through_wechat_pay_then_cancelled(core, world: World) -> None:
    goods_id = stock_goods(world, points=500, cash=1_990, stock=2)
    m = member(core)
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=800)
    project(core)  # the member's openid is read from read.members for the prepay
    me = world.auth(m, "member")
    before = read_balances(core)
    redeemed = world.api.post(
        "/v1/mall/orders",
        headers={**me, "Idempotency-Key": "cash-0001"},
        json={"goods_id": goods_id, "delivery": "pickup"},
    )
    assert redeemed.status_code == 201, redeemed.text
    order, payment = redeemed.json()["order"], redeemed.json()["payment"]
    assert (order["status"], order["cash_fen"], payment["amount_fen"]) == (
        "awaiting_payment",
        1_990,
        1_990,
    )
    assert payment["package"].startswith("prepay_id=")
    assert points_of(core, m) == {
        (acc.member_points(m), "PTS"): 300,
        (acc.held(acc.member_points(m)), "PTS"): 500,
    }

    [delivery] = world.run(world.sims.wechatpay.pay(order["out_trade_no"]))
    assert delivery.status == 204, delivery.reply
    assert core.mall.order(UUID(order["order_id"]))["status"] == "paid"
    assert points_of(core, m) == {(acc.member_points(m), "PTS"): 300}

    admin = world.auth(uuid4(), "admin")
    cancelled = world.api.post(
        f"/v1/admin/mall/orders/{order['order_id']}/cancel",
        json={"reason": "out of colour"},
        headers=admin,
    )
    assert cancelled.status_code == 200, cancelled.text
    out_refund_no = cancelled.json()["out_refund_no"]
    assert points_of(core, m) == {(acc.member_points(m), "PTS"): 800}
    wallet = core.app.repository.get(Wallet.create_id(m))
    assert wallet.points_lots.total == 800  # back into the lot it came from
    # the cash goes back through WeChat Pay: the shared refund effect sends it
    assert (
        effects.send_provider_refund(world.ctx, out_refund_no=out_refund_no, event_id=str(uuid4()))
        == "PROCESSING"
    )
    [note] = world.run(world.sims.wechatpay.settle_refund(out_refund_no))
    assert note.status == 204
    project(core)
    after = read_balances(core)
    for account in (acc.PROVIDER_WECHAT, acc.PLATFORM_REVENUE):
        assert after.get((account, "CNY"), 0) == before.get((account, "CNY"), 0)
    with core.read_pool.connection() as conn:
        state = conn.execute(
            "SELECT provider_state FROM read.refunds WHERE out_refund_no = %s", (out_refund_no,)
        ).fetchone()
    assert state == ("SUCCESS",)
    assert set(journal_sums(core).values()) == {0}


def test_an_unpaid_order_expires_and_lets_go(core, world: World) -> None:
    goods_id = stock_goods(world, points=100, cash=500, stock=1)
    clock = Clock()
    mall = MallService(core.runner, clock=clock, ttl=timedelta(minutes=15))
    m = member(core)
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=100)
    order = mall.redeem(member_id=m, key="x", goods_id=UUID(goods_id))
    other = member(core)
    try:
        mall.redeem(member_id=other, key="y", goods_id=UUID(goods_id))
        raise AssertionError("sold the last one twice")
    except OutOfStock:
        pass
    clock.advance(minutes=16)
    assert mall.expire(order_id=UUID(order["order_id"]))["status"] == "expired"
    assert points_of(core, m) == {(acc.member_points(m), "PTS"): 100}
    core.wallets.earn_points(key=f"{other}-e", member_id=other, points=100)
    assert mall.redeem(member_id=other, key="y", goods_id=UUID(goods_id))["status"] == (
        "awaiting_payment"
    )


def test_100_concurrent_buyers_of_the_last_10(core, world: World) -> None:
    goods_id = UUID(stock_goods(world, points=10, stock=10))
    buyers = [member(core, f"b{i}") for i in range(100)]
    for b in buyers:
        core.wallets.earn_points(key=f"{b}-e", member_id=b, points=10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def buy(b: UUID) -> None:
        try:
            core.mall.redeem(member_id=b, key="last", goods_id=goods_id)
            outcome = "bought"
        except OutOfStock:
            outcome = "sold out"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=buy, args=(b,)) for b in buyers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("bought") == 10 and outcomes.count("sold out") == 90
    stock = core.app.repository.get(core.app.repository.get(goods_id).stock_id)
    assert stock.available == 0
    project(core)
    with core.read_pool.connection() as conn:
        (sold,) = conn.execute(
            "SELECT count(*) FROM read.mall_orders WHERE goods_id = %s", (goods_id,)
        ).fetchone()
        (left,) = conn.execute(
            "SELECT stock FROM read.mall_goods WHERE goods_id = %s", (goods_id,)
        ).fetchone()
    assert (sold, left) == (10, 0)


def test_the_back_office_guards_the_mall(core, world: World) -> None:
    hidden = stock_goods(world, points=100, publish=False)
    m = member(core)
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=1_000)
    me = world.auth(m, "member")
    refused = world.api.post(
        "/v1/mall/orders", json={"goods_id": hidden}, headers={**me, "Idempotency-Key": uuid4().hex}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "goods_not_available")
    project(core)
    assert hidden not in {g["goods_id"] for g in world.api.get("/v1/mall/goods").json()["items"]}
    for method, path in (
        ("GET", "/v1/admin/mall/orders"),
        ("POST", "/v1/admin/mall/categories"),
        ("POST", f"/v1/admin/mall/goods/{hidden}/publish"),
    ):
        answer = world.api.request(method, path, headers=me, json={"name": "x"})
        assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    admin = world.auth(uuid4(), "admin")
    bad = world.api.post(
        "/v1/admin/mall/goods",
        headers=admin,
        json={"name": "Mug", "points_price": -1, "images": ["not a url"]},
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_request")
    assert bad.headers["content-type"] == "application/problem+json"
    edited = world.api.patch(
        f"/v1/admin/mall/goods/{hidden}", headers=admin, json={"stock": 7, "points_price": 150}
    )
    assert (edited.json()["stock"], edited.json()["points_price"]) == (7, 150)
    no_price = world.api.post(f"/v1/admin/mall/goods/{uuid4()}/publish", headers=admin)
    assert (no_price.status_code, no_price.json()["code"]) == (409, "goods_not_available")


def test_the_read_models_equal_a_fresh_replay(core) -> None:
    """DESIGN.md invariant 5 for the mall, commission, withdrawal and points-lot tables."""
    from projections.distribution import DistributionProjector
    from projections.framework import ProjectionRunner
    from projections.mall import MallProjector

    projectors = [DistributionProjector(), MallProjector()]
    tables = [t for p in projectors for t in p.tables()]

    def snapshot() -> dict[str, list[str]]:
        with core.read_pool.connection() as conn:
            return {
                t: [
                    r[0]
                    for r in conn.execute(
                        f"SELECT row_to_json(x)::text FROM {t} x ORDER BY 1"
                    ).fetchall()
                ]
                for t in tables
            }

    # something in every table, whatever ran before
    r, e = member(core, "r"), member(core, "e")
    bind(core, e, r)
    core.wallets.top_up(key=f"{e}-t", member_id=e, amount=20_000)
    card_order(orders_of(core, Clock()), e, shared_station(core), 20_000)
    give_commission(core, r, 1_000)
    core.withdrawals.request_for_member(member_id=r, key="w", amount_fen=1_000)
    category = core.mall.create_category(key=uuid4().hex, name="Hats")
    goods = core.mall.create_goods(
        key=uuid4().hex, name="Cap", points_price=10, stock=1, category_id=category["category_id"]
    )
    core.mall.set_published(UUID(goods["goods_id"]), True)
    core.mall.redeem(member_id=e, key="cap", goods_id=UUID(goods["goods_id"]))
    project(core)
    before = snapshot()
    assert all(before.values())
    with core.read_pool.connection() as conn:
        conn.execute(f"TRUNCATE {', '.join(tables)}")
        conn.execute(
            "DELETE FROM read.tracking WHERE projection = ANY(%s)", ([p.name for p in projectors],)
        )
    for projector in projectors:
        ProjectionRunner(core.app, core.read_pool, projector).run_until_caught_up()
    assert snapshot() == before


def test_a_member_without_wechat_is_refused_the_cash_part_before_any_hold(
    core, world: World
) -> None:
    goods_id = stock_goods(world, points=500, cash=1_990, stock=2)
    m = UUID(core.members.alipay_sign_in(f"2088{uuid4().int % 10**12:012d}")["member_id"])
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=800)
    refused = world.api.post(
        "/v1/mall/orders",
        headers={**world.auth(m, "member"), "Idempotency-Key": "cash-alipay-only"},
        json={"goods_id": goods_id, "delivery": "pickup"},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "wechat_account_required"
    assert points_of(core, m) == {(acc.member_points(m), "PTS"): 800}
