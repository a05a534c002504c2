"""The partner API through HTTP: sign-in with lockout, the station scope on every path,
profile, confirming and refunding orders, prices, promotions, and shift settlement."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.main import create_app
from api.permissions import station_scope
from ledger.services.partner_accounts import PartnerAccountService
from office_support import (
    PASSWORD,
    assert_problem,
    bearer,
    member_token,
    paid_card_order,
    partner_token,
    super_token,
)
from orders_support import make_station
from support import project, read_balances


@pytest.fixture
def client(core) -> Iterator[TestClient]:
    with TestClient(create_app(core=core, providers=object())) as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture
def station(core) -> UUID:
    return make_station(core, rate_bps=100, price=789)


def new_account(core, *stations: UUID) -> str:
    name = f"st-{uuid4().hex[:10]}"
    PartnerAccountService(core.read_pool).create(
        account=name, password=PASSWORD, name="Cashier desk", station_ids=list(stations)
    )
    return name


def sign_in(client: TestClient, account: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/partner/auth/sign-in", json={"account": account, "password": password})


def test_sign_in_scopes_the_token_to_the_accounts_stations(core, client, station) -> None:
    other = make_station(core)
    account = new_account(core, station, other)
    signed = sign_in(client, account)
    assert signed.status_code == 200, signed.text
    tokens = signed.json()
    assert sorted(tokens["account"]["station_ids"]) == sorted([str(station), str(other)])
    project(core)
    me = client.get("/v1/partner/me", headers=bearer(tokens["access_token"])).json()
    assert {s["station_id"] for s in me["stations"]} == {str(station), str(other)}
    renewed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    profile = client.get(
        f"/v1/partner/stations/{other}", headers=bearer(renewed.json()["access_token"])
    )
    assert profile.status_code == 200 and profile.json()["name"] == "Test station"
    assert_problem(sign_in(client, "nobody-here"), 401, "invalid_credentials")
    with core.read_pool.connection() as conn:
        stored = conn.execute(
            "SELECT password_hash FROM office.partner_accounts WHERE account = %s", (account,)
        ).fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_five_wrong_passwords_lock_the_account(core, client, station) -> None:
    account = new_account(core, station)
    for _ in range(4):
        assert_problem(sign_in(client, account, "wrong-password-1"), 401, "invalid_credentials")
    locked = assert_problem(sign_in(client, account, "wrong-password-1"), 429, "account_locked")
    assert locked["locked_until"]
    assert_problem(sign_in(client, account), 429, "account_locked")  # even the right one
    with core.read_pool.connection() as conn:
        conn.execute(
            "UPDATE office.partner_accounts SET locked_until = now() - interval '1 second' "
            "WHERE account = %s",
            (account,),
        )
    assert sign_in(client, account).status_code == 200
    PartnerAccountService(core.read_pool).update(
        PartnerAccountService(core.read_pool).all(station)[0]["account_id"], disabled=True
    )
    assert_problem(sign_in(client, account), 401, "invalid_credentials")


def uses_station_scope(dependant: Any) -> bool:
    return any(d.call is station_scope or uses_station_scope(d) for d in dependant.dependencies)


def partner_station_routes(app: Any) -> list[tuple[str, str, bool]]:
    """(method, path, checked by station_scope) under /v1/partner/stations/{station_id}."""
    routes = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path.startswith(
            "/v1/partner/stations/{station_id}"
        ):
            scoped = uses_station_scope(context.dependant)
            routes += [(m, context.path, scoped) for m in sorted(context.methods)]
    return routes


def test_another_stations_partner_is_refused_everywhere(core, client, station) -> None:
    routes = partner_station_routes(client.app)
    assert len(routes) >= 12
    outsider = partner_token(core, make_station(core))
    callers = {"other station": outsider, "member": member_token(core), "admin": super_token(core)}
    for method, path, scoped in routes:
        url = path.replace("{station_id}", str(station))
        url = re.sub(r"\{grade\}", "92%23", url)
        url = re.sub(r"\{[^}]+\}", lambda _: str(uuid4()), url)
        for who, token in callers.items():
            if who == "admin" and not scoped:
                continue  # the live feed admits operators too (api.station_events)
            kwargs: dict[str, Any] = {"headers": bearer(token)}
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            response = client.request(method, url, **kwargs)
            assert response.status_code == 403, (who, method, path, response.text)
        assert client.request(method, url).status_code == 401


def test_confirm_and_refund_orders(core, client, station) -> None:
    token = partner_token(core, station)
    paid = paid_card_order(core, station, 20_000)
    order_id = paid["order_id"]
    base = f"/v1/partner/stations/{station}/orders/{order_id}"
    confirmed = client.post(base + "/confirm", headers=bearer(token))
    assert confirmed.status_code == 200, confirmed.text
    other = make_station(core)
    elsewhere = client.post(
        f"/v1/partner/stations/{other}/orders/{order_id}/confirm",
        headers=bearer(partner_token(core, other)),
    )
    assert_problem(elsewhere, 403, "forbidden")

    headers = {**bearer(token), "Idempotency-Key": "refund-000001"}
    body = {"amount_fen": 5_000, "reason": "fuel not dispensed at nozzle 1"}
    refund = client.post(base + "/refunds", json=body, headers=headers)
    assert refund.status_code == 201, refund.text
    assert refund.json()["order"]["refunded_fen"] == 5_000
    again = client.post(base + "/refunds", json=body, headers=headers)
    assert again.json() == refund.json()
    for bad in (
        {"amount_fen": 0, "reason": "x"},
        {"amount_fen": 100},
        {"amount_fen": 1, "reason": "x", "extra": 1},
    ):
        assert_problem(
            client.post(base + "/refunds", json=bad, headers=bearer(token)), 422, "invalid_request"
        )
    too_much = client.post(
        base + "/refunds", json={"amount_fen": 90_000, "reason": "x"}, headers=bearer(token)
    )
    assert too_much.status_code in (409, 422), too_much.text
    project(core)
    with core.read_pool.connection() as conn:
        status, refunded = conn.execute(
            "SELECT status, refunded_fen FROM read.fuel_orders WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert (status, refunded) == ("partially_refunded", 5_000)


def test_prices_and_promotions(core, client, station) -> None:
    token = partner_token(core, station)
    url = f"/v1/partner/stations/{station}/prices/92%23"
    changed = client.put(url, json={"price_fen_per_litre": 801}, headers=bearer(token))
    assert changed.status_code == 200, changed.text
    assert changed.json()["previous_fen_per_litre"] == 789
    assert_problem(
        client.put(url, json={"price_fen_per_litre": 0}, headers=bearer(token)),
        422,
        "invalid_request",
    )
    unknown = client.put(
        f"/v1/partner/stations/{station}/prices/98%23",
        json={"price_fen_per_litre": 900},
        headers=bearer(token),
    )
    assert_problem(unknown, 422, "unknown_grade")
    assert core.catalog.get(station)["grades"]["92#"]["price_fen_per_litre"] == 801

    promos = f"/v1/partner/stations/{station}/promotions"
    promo = {
        "title": "10 off 200",
        "discount_fen": 1_000,
        "min_amount_fen": 20_000,
        "starts_at": "2026-12-01T00:00:00+08:00",
        "ends_at": "2026-12-31T00:00:00+08:00",
    }
    added = client.post(promos, json=promo, headers=bearer(token))
    assert added.status_code == 201, added.text
    bad = client.post(
        promos, json={**promo, "ends_at": "2026-11-01T00:00:00+08:00"}, headers=bearer(token)
    )
    assert_problem(bad, 422, "invalid_request")
    template = core.coupons.template(UUID(added.json()["coupon_template_id"]))
    assert template["funder_account"] == f"station:{station}:marketing"
    assert (template["kind"], template["amount_off_fen"]) == ("threshold", 1_000)
    assert template["station_ids"] == [str(station)]
    listed = client.get(promos, headers=bearer(token)).json()["items"]
    assert [p["title"] for p in listed] == ["10 off 200"]
    gone = client.delete(f"{promos}/{added.json()['promotion_id']}", headers=bearer(token))
    assert gone.json()["status"] == "withdrawn"


def test_a_shift_closes_with_its_totals_and_settles_the_station(core, client, station) -> None:
    token = partner_token(core, station)
    shifts = f"/v1/partner/stations/{station}/shifts"
    opened = client.post(shifts, json={"cashier": "Wang"}, headers=bearer(token))
    assert opened.status_code == 201, opened.text
    shift = opened.json()
    assert shift["number"] == 1 and shift["status"] == "open"
    assert_problem(
        client.post(shifts, json={"cashier": "Li"}, headers=bearer(token)), 409, "shift_state"
    )

    first = paid_card_order(core, station, 20_000)
    paid_card_order(core, station, 20_000)
    core.orders.refund(
        order_id=UUID(first["order_id"]),
        out_refund_no=f"R{uuid4().hex[:20]}",
        amount_fen=5_000,
        reason="wrong nozzle",
        requested_by="test",
    )
    project(core)
    close = f"{shifts}/{shift['shift_id']}/close"
    assert_problem(
        client.post(close, json={"counted_fen": {"cash": 1}}, headers=bearer(token)),
        422,
        "invalid_shift",
    )
    counted = {"counted_fen": {"card": 39_000, "wechat": 0, "alipay": 0}}
    closed = client.post(close, json=counted, headers=bearer(token))
    assert closed.status_code == 200, closed.text
    result = closed.json()
    assert result["system_fen"]["card"] == 40_000 and result["order_count"] == 2
    assert (result["refund_count"], result["refunds_fen"]) == (1, 5_000)
    assert result["difference_fen"] == {"card": -1_000, "wechat": 0, "alipay": 0}
    # 2 x (20000 - 1% fee) - (5000 - its 50 fee)
    assert result["settled_fen"] == 34_650 == result["station_available_fen"]
    assert client.post(close, json=counted, headers=bearer(token)).json() == result
    project(core)
    balances = read_balances(core, f"station:{station}")
    assert balances[(f"station:{station}:available", "CNY")] == 34_650
    assert balances[(f"station:{station}:income", "CNY")] == 0

    second = client.post(shifts, json={"cashier": "Li"}, headers=bearer(token)).json()
    assert second["number"] == 2
    project(core)
    listed = client.get(shifts, headers=bearer(token)).json()["items"]
    assert [s["number"] for s in listed] == [2, 1]
    report = client.get(shifts + "/report", headers=bearer(token)).json()
    assert len(report["days"]) == 1
    day = report["days"][0]
    assert (day["shifts"], day["order_count"], day["settled_fen"]) == (1, 2, 34_650)
    one = client.get(f"{shifts}/{shift['shift_id']}", headers=bearer(token)).json()
    assert one["status"] == "closed" and one["counted_fen"]["card"] == 39_000
    bad_days = client.get(shifts + "?since=2026-02-01&until=2026-01-01", headers=bearer(token))
    assert_problem(bad_days, 422, "invalid_request")
