"""The member's journey through HTTP with the fuel card: quote, order, pay, list, refund."""

from __future__ import annotations

from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from api.auth import MEMBER_SCOPE, issue_access_token
from api.main import create_app
from orders_support import make_station
from support import project


@pytest.fixture
def member_client(core):
    member = uuid4()
    token, _ = issue_access_token(core.settings, member, "member", MEMBER_SCOPE)
    with TestClient(create_app(core=core, providers=object())) as client:  # type: ignore[arg-type]
        client.headers["Authorization"] = f"Bearer {token}"
        yield member, client


def test_card_journey(core, member_client) -> None:
    member, client = member_client
    station = make_station(core, price=789)
    core.wallets.top_up(key=f"{member}-t", member_id=member, amount=50_000, bonus=2_000)
    body = {"station_id": str(station), "grade": "92#", "nozzle": 3, "amount_fen": 20_000}

    quote = client.post("/v1/orders/quote", json=body)
    assert quote.status_code == 200, quote.text
    assert quote.json()["payable_fen"] == 20_000 and quote.json()["volume_ml"] == 25_348

    missing_key = client.post("/v1/orders", json=body)
    assert missing_key.status_code == 422
    created = client.post("/v1/orders", json=body, headers={"Idempotency-Key": "order-0001"})
    assert created.status_code == 201, created.text
    order = created.json()
    again = client.post("/v1/orders", json=body, headers={"Idempotency-Key": "order-0001"})
    assert again.json() == order
    other = client.post(
        "/v1/orders", json={**body, "amount_fen": 30_000}, headers={"Idempotency-Key": "order-0001"}
    )
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_conflict"

    paid = client.post(f"/v1/orders/{order['order_id']}/pay", json={"method": "card"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["order"]["status"] == "paid"
    assert set(paid.json()) == {"order"}  # a card payment has no provider part
    twice = client.post(f"/v1/orders/{order['order_id']}/pay", json={"method": "card"})
    assert twice.json() == paid.json()

    project(core)
    listing = client.get("/v1/orders").json()
    assert [o["order_id"] for o in listing["items"]] == [order["order_id"]]
    assert listing["items"][0]["status"] == "paid"
    card = client.get("/v1/card").json()
    assert card == {
        "card_fen": 30_000,
        "card_bonus_fen": 2_000,
        "held_fen": 0,
        "points": 200,
        "points_held": 0,
    }
    history = client.get("/v1/card/transactions").json()["items"]
    assert [(h["kind"], h["card_fen"]) for h in history] == [
        ("fuel_card_payment", -20_000),
        ("card_top_up", 50_000),
    ]


def test_bad_input_is_problem_json_and_changes_nothing(core, member_client) -> None:
    member, client = member_client
    station = make_station(core)
    cases = [
        (
            {"station_id": str(station), "grade": "92#", "nozzle": 1, "amount_fen": 50},
            422,
            "invalid_request",
        ),
        (
            {"station_id": str(station), "grade": "99#", "nozzle": 1, "amount_fen": 5_000},
            422,
            "unknown_grade",
        ),
        (
            {"station_id": str(station), "grade": "92#", "nozzle": 9, "amount_fen": 5_000},
            422,
            "unknown_nozzle",
        ),
        (
            {"station_id": str(uuid4()), "grade": "92#", "nozzle": 1, "amount_fen": 5_000},
            404,
            "not_found",
        ),
    ]
    for body, status, code in cases:
        response = client.post("/v1/orders", json=body, headers={"Idempotency-Key": uuid4().hex})
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    order = client.post(
        "/v1/orders",
        json={"station_id": str(station), "grade": "92#", "nozzle": 1, "amount_fen": 5_000},
        headers={"Idempotency-Key": uuid4().hex},
    ).json()
    broke = client.post(f"/v1/orders/{order['order_id']}/pay", json={"method": "card"})
    assert (broke.status_code, broke.json()["code"]) == (422, "insufficient_balance")
    project(core)
    assert client.get(f"/v1/orders/{order['order_id']}").json()["status"] == "created"
    assert client.get(f"/v1/orders/{uuid4()}").status_code == 404
    assert client.get("/v1/orders", headers={"Authorization": "Bearer nope"}).status_code == 401
