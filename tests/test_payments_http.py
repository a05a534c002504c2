"""The member journey over HTTP against the provider simulators, in-process: sign in, order,
pay with WeChat Pay or Alipay, the signed notification arrives (once, several times, forged,
stale, late, with the wrong amount), refunds through the provider."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.providers_wiring import build_provider_clients
from orders_support import make_station
from providers.keys import DevKeys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import asgi_http_client
from providers.sim.notifier import asgi_deliver
from support import project


@dataclass
class Journey:
    api: TestClient
    sims: Simulators
    http: httpx.Client

    def run(self, coroutine: Any) -> Any:
        return self.http._transport.run(coroutine)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def keys() -> DevKeys:
    return DevKeys.generate()


@pytest.fixture
def journey(core, keys) -> Iterator[Journey]:
    app_ref: dict[str, FastAPI] = {}

    async def deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return await asgi_deliver(app_ref["app"])(url, headers, body)

    s = core.settings
    sims = build_simulators(
        keys,
        merchant_id=s.wechat_pay_mchid,
        appid=s.wechat_appid,
        alipay_app_id=s.alipay_app_id,
        login_secret=s.wechat_app_secret.get_secret_value(),
        deliver=deliver,
    )
    http = asgi_http_client(sims.asgi)
    providers = build_provider_clients(s, http, keys)
    app = create_app(core=core, providers=providers)
    app_ref["app"] = app
    with TestClient(app) as api:
        yield Journey(api, sims, http)
    http.close()


def sign_in(j: Journey) -> tuple[str, dict[str, str]]:
    code = j.sims.wechat_login.mint_code(f"o-{uuid4().hex}")
    tokens = j.api.post("/v1/auth/wechat-login", json={"code": code}).json()
    return tokens["member"]["id"], {"Authorization": f"Bearer {tokens['access_token']}"}


def sign_in_with_alipay(j: Journey) -> tuple[str, str, dict[str, str]]:
    """An Alipay mini-program sign-in: (member id, Alipay user id, auth header)."""
    minted = j.sims.alipay.mint_auth_code()
    answer = j.api.post("/v1/auth/alipay-login", json={"auth_code": minted["code"]})
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    return tokens["member"]["id"], str(minted["user_id"]), auth


def new_order(j: Journey, core, auth: dict[str, str], amount: int = 20_000) -> dict[str, Any]:
    station = make_station(core)
    body = {"station_id": str(station), "grade": "92#", "nozzle": 1, "amount_fen": amount}
    response = j.api.post("/v1/orders", json=body, headers={**auth, "Idempotency-Key": uuid4().hex})
    assert response.status_code == 201, response.text
    return response.json()


def test_wechat_pay_journey_with_duplicate_notifications_and_refund(core, journey) -> None:
    j = journey
    member, auth = sign_in(j)
    project(core)
    order = new_order(j, core, auth)
    paying = j.api.post(
        f"/v1/orders/{order['order_id']}/pay", json={"method": "wechat"}, headers=auth
    )
    assert paying.status_code == 200, paying.text
    params = paying.json()["payment"]
    assert params["package"].startswith("prepay_id=") and params["signType"] == "RSA"
    assert params["paySign"]

    deliveries = j.run(j.sims.wechatpay.pay(order["out_trade_no"], times=4, shuffle=True))
    assert [d.status for d in deliveries] == [204, 204, 204, 204]
    project(core)
    shown = j.api.get(f"/v1/orders/{order['order_id']}", headers=auth).json()
    assert shown["status"] == "paid" and shown["provider_fen"] == 20_000
    assert j.api.get("/v1/card", headers=auth).json()["points"] == 200  # earned once

    refund = core.orders.refund(
        order_id=shown["order_id"],
        out_refund_no=f"R{uuid4().hex[:20]}",
        amount_fen=5_000,
        reason="fuel not dispensed",
        requested_by="station",
    )
    assert refund["provider_fen"] == 5_000
    providers = j.api.app.state.providers  # type: ignore[attr-defined]
    providers.wechat_pay.refund(order["out_trade_no"], refund["out_refund_no"], 5_000, 20_000)
    answered = j.run(j.sims.wechatpay.settle_refund(refund["out_refund_no"], times=2))
    assert [d.status for d in answered] == [204, 204]
    project(core)
    with core.read_pool.connection() as conn:
        state = conn.execute(
            "SELECT provider_state FROM read.refunds WHERE out_refund_no = %s",
            (refund["out_refund_no"],),
        ).fetchone()
    assert state == ("SUCCESS",)


def test_forged_and_stale_notifications_are_refused_and_change_nothing(core, journey) -> None:
    j = journey
    _, auth = sign_in(j)
    project(core)
    order = new_order(j, core, auth)
    j.api.post(f"/v1/orders/{order['order_id']}/pay", json={"method": "wechat"}, headers=auth)
    forged = j.run(j.sims.wechatpay.pay(order["out_trade_no"], bad_signature=True))
    assert forged[0].status == 401
    project(core)
    assert j.api.get(f"/v1/orders/{order['order_id']}", headers=auth).json()["status"] == "paying"
    # the provider retries with a good signature: now it counts, once
    retried = j.run(j.sims.wechatpay.retry_failed())
    assert [d.status for d in retried] == [204]
    project(core)
    assert j.api.get(f"/v1/orders/{order['order_id']}", headers=auth).json()["status"] == "paid"

    other = new_order(j, core, auth)
    j.api.post(f"/v1/orders/{other['order_id']}/pay", json={"method": "wechat"}, headers=auth)
    stale = j.run(j.sims.wechatpay.pay(other["out_trade_no"], old_timestamp=True))
    assert stale[0].status == 401
    project(core)
    assert j.api.get(f"/v1/orders/{other['order_id']}", headers=auth).json()["status"] == "paying"


def test_wrong_amount_is_flagged_not_accepted(core, journey) -> None:
    j = journey
    _, auth = sign_in(j)
    project(core)
    order = new_order(j, core, auth)
    j.api.post(f"/v1/orders/{order['order_id']}/pay", json={"method": "wechat"}, headers=auth)
    j.run(j.sims.wechatpay.pay(order["out_trade_no"], amount_override=19_999))
    project(core)
    assert j.api.get(f"/v1/orders/{order['order_id']}", headers=auth).json()["status"] == "paying"
    with core.read_pool.connection() as conn:
        flagged = conn.execute(
            "SELECT outcome, amount_fen FROM read.payment_exceptions WHERE out_trade_no = %s",
            (order["out_trade_no"],),
        ).fetchall()
    assert flagged == [("amount_mismatch", 19_999)]


def test_alipay_success_and_finished_are_one_payment(core, journey) -> None:
    j = journey
    _, user_id, auth = sign_in_with_alipay(j)
    project(core)
    order = new_order(j, core, auth, amount=8_800)
    paying = j.api.post(
        f"/v1/orders/{order['order_id']}/pay", json={"method": "alipay"}, headers=auth
    )
    assert paying.status_code == 200, paying.text
    assert paying.json()["payment"]["trade_no"]
    trade = j.sims.alipay.trades.get(order["out_trade_no"])
    assert (trade.buyer_field, trade.buyer) == ("buyer_id", user_id)  # the Alipay user
    deliveries = j.run(j.sims.alipay.pay(order["out_trade_no"], finish=True, times=2))
    assert [(d.status, d.reply) for d in deliveries] == [(200, b"success")] * 4
    project(core)
    shown = j.api.get(f"/v1/orders/{order['order_id']}", headers=auth).json()
    assert shown["status"] == "paid" and shown["method"] == "alipay"
    with core.read_pool.connection() as conn:
        count = conn.execute(
            "SELECT count(*) FROM read.payment_exceptions WHERE out_trade_no = %s",
            (order["out_trade_no"],),
        ).fetchone()
    assert count == (0,)


def test_alipay_needs_an_alipay_sign_in_and_the_order_stays_payable(core, journey) -> None:
    j = journey
    _, auth = sign_in(j)  # WeChat only
    project(core)
    order = new_order(j, core, auth)
    refused = j.api.post(
        f"/v1/orders/{order['order_id']}/pay", json={"method": "alipay"}, headers=auth
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "alipay_account_required"
    assert j.sims.alipay.trades.trades.get(order["out_trade_no"]) is None
    paying = j.api.post(
        f"/v1/orders/{order['order_id']}/pay", json={"method": "wechat"}, headers=auth
    )
    assert paying.status_code == 200, paying.text  # nothing was held by the refusal

    # and an Alipay-only member has nothing to pay with at WeChat
    _, _, alipay_auth = sign_in_with_alipay(j)
    project(core)
    other = new_order(j, core, alipay_auth)
    no_wechat = j.api.post(
        f"/v1/orders/{other['order_id']}/pay", json={"method": "wechat"}, headers=alipay_auth
    )
    assert no_wechat.status_code == 409 and no_wechat.json()["code"] == "wechat_account_required"


def test_card_top_up_through_wechat_with_bonus(core, journey) -> None:
    j = journey
    _, auth = sign_in(j)
    project(core)
    created = j.api.post(
        "/v1/card/top-ups",
        json={"amount_fen": 50_000, "method": "wechat"},
        headers={**auth, "Idempotency-Key": uuid4().hex},
    )
    assert created.status_code == 201, created.text
    top_up = created.json()["top_up"]
    assert top_up["bonus_fen"] == 2_000
    j.run(j.sims.wechatpay.pay(top_up["out_trade_no"], times=2))
    project(core)
    card = j.api.get("/v1/card", headers=auth).json()
    assert (card["card_fen"], card["card_bonus_fen"]) == (50_000, 2_000)
