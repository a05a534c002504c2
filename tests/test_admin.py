"""The back office through HTTP: super-admin from the CLI, sign-in with lockout and log,
stations with login accounts and income, members, fuel orders, admins and roles, settings
with encrypted secrets and an SMS test send, and the append-only admin log."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount
from typer.testing import CliRunner

import cli.main
from api.main import create_app
from api.providers_wiring import build_provider_clients
from office_support import (
    PASSWORD,
    admin_with,
    assert_problem,
    bearer,
    paid_card_order,
    super_token,
)
from orders_support import make_station
from providers.sim.asgi_client import asgi_http_client
from providers.sim.sms_sim import SmsSim
from support import project


@pytest.fixture
def sms(core) -> Iterator[tuple[SmsSim, Any]]:
    settings = core.settings
    sim = SmsSim(
        credentials={
            settings.sms_access_key_id: settings.sms_access_key_secret.get_secret_value(),
            "stored-key-id": "stored-key-secret-123456",
        }
    )
    http = asgi_http_client(Starlette(routes=[Mount("/sms", app=sim.app)]))
    yield sim, build_provider_clients(settings, http)
    http.close()


@pytest.fixture
def client(core, sms) -> Iterator[TestClient]:
    with TestClient(create_app(core=core, providers=sms[1])) as c:
        yield c


@pytest.fixture
def root(core) -> dict[str, str]:
    return bearer(super_token(core))


def log_lines(core, **where: Any) -> list[dict[str, Any]]:
    clauses = " AND ".join(f"{k} = %s" for k in where) or "TRUE"
    with core.read_pool.connection() as conn:
        cur = conn.execute(
            f"SELECT action, outcome, ip, before, after, admin_name, target FROM office.admin_log "
            f"WHERE {clauses} ORDER BY log_id",
            list(where.values()),
        )
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def run_cli(core, monkeypatch, *args: str) -> Any:
    @contextlib.contextmanager
    def owner_url() -> Iterator[str]:
        yield core.owner_url

    monkeypatch.setattr(cli.main, "owner_url", owner_url)
    return CliRunner().invoke(cli.main.app, list(args))


def test_super_admin_from_the_cli_signs_in_and_is_locked_out(core, client, monkeypatch) -> None:
    name = f"root-{uuid4().hex[:8]}"
    weak = run_cli(core, monkeypatch, "admin", "create", "--name", name, "--password", "admin123")
    assert weak.exit_code == 2 and "refused" in weak.output
    made = run_cli(core, monkeypatch, "admin", "create", "--name", name, "--password", PASSWORD)
    assert made.exit_code == 0, made.output
    twice = run_cli(core, monkeypatch, "admin", "create", "--name", name, "--password", PASSWORD)
    assert twice.exit_code == 1

    signed = client.post("/v1/admin/auth/sign-in", json={"name": name, "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    token = signed.json()["access_token"]
    assert signed.json()["admin"]["is_super"] is True
    me = client.get("/v1/admin/auth/me", headers=bearer(token)).json()
    assert me["is_super"] and me["name"] == name
    for _ in range(4):
        assert_problem(
            client.post("/v1/admin/auth/sign-in", json={"name": name, "password": "nope-nope-1"}),
            401,
            "invalid_credentials",
        )
    assert_problem(
        client.post("/v1/admin/auth/sign-in", json={"name": name, "password": "nope-nope-1"}),
        429,
        "account_locked",
    )
    assert_problem(
        client.post("/v1/admin/auth/sign-in", json={"name": name, "password": PASSWORD}),
        429,
        "account_locked",
    )
    outcomes = [(line["action"], line["outcome"]) for line in log_lines(core, admin_name=name)]
    assert (
        outcomes
        == [("admins.create_super", "ok"), ("admin.sign_in", "ok")]
        + [("admin.sign_in", "bad_credentials")] * 4
        + [("admin.sign_in", "locked")] * 2
    )
    assert {line["ip"] for line in log_lines(core, admin_name=name, action="admin.sign_in")} == {
        "testclient"
    }
    unknown = client.post("/v1/admin/auth/sign-in", json={"name": "ghost", "password": "x"})
    assert_problem(unknown, 401, "invalid_credentials")


def test_stations_with_login_accounts_and_income(core, client, root) -> None:
    code = f"S{uuid4().hex[:8]}"
    body = {
        "code": code,
        "name": "East Gate",
        "address": "9 East Rd",
        "phone": "+861088880000",
        "lat_e6": 39_910_000,
        "lng_e6": 116_410_000,
        "settlement_rate_bps": 150,
        "grades": {"92#": {"nozzles": [1, 2], "price_fen_per_litre": 780}},
        "login": {"account": f"east-{code}", "password": PASSWORD, "name": "East desk"},
    }
    weak = client.post(
        "/v1/admin/stations",
        json={**body, "login": {**body["login"], "password": "short1"}},
        headers=root,
    )
    assert_problem(weak, 422, "weak_password")
    assert client.get(f"/v1/admin/stations?q={code}", headers=root).json()["items"] == []
    added = client.post("/v1/admin/stations", json=body, headers=root)
    assert added.status_code == 201, added.text
    station_id = UUID(added.json()["station_id"])
    assert added.json()["grades"]["92#"]["price_fen_per_litre"] == 780
    signed = client.post(
        "/v1/partner/auth/sign-in", json={"account": f"east-{code}", "password": PASSWORD}
    )
    assert signed.json()["account"]["station_ids"] == [str(station_id)]

    edited = client.patch(
        f"/v1/admin/stations/{station_id}",
        json={"settlement_rate_bps": 100, "phone": "+861088880001"},
        headers=root,
    )
    assert edited.status_code == 200 and edited.json()["changed"] == [
        "phone",
        "settlement_rate_bps",
    ]
    assert_problem(
        client.patch(
            f"/v1/admin/stations/{station_id}", json={"settlement_rate_bps": 9_999}, headers=root
        ),
        422,
        "invalid_request",
    )
    assert_problem(
        client.patch(f"/v1/admin/stations/{station_id}", json={"colour": "red"}, headers=root),
        422,
        "invalid_request",
    )
    change = log_lines(core, action="stations.edit", target=str(station_id))[-1]
    assert change["before"] == {"phone": "+861088880000", "settlement_rate_bps": 150}
    assert change["after"] == {"phone": "+861088880001", "settlement_rate_bps": 100}

    paid_card_order(core, station_id, 20_000)
    project(core)
    listed = client.get(f"/v1/admin/stations?q={code}", headers=root).json()["items"]
    assert len(listed) == 1
    row = listed[0]
    assert row["settlement_rate_bps"] == 100
    assert (row["income_unsettled_fen"], row["income_total_fen"]) == (19_800, 19_800)
    detail = client.get(f"/v1/admin/stations/{station_id}", headers=root).json()
    assert [a["account"] for a in detail["accounts"]] == [f"east-{code}"]
    assert "password_hash" not in detail["accounts"][0]


def test_partner_accounts_are_managed_and_signed_out(core, client, root) -> None:
    first, second = make_station(core), make_station(core)
    project(core)
    account = f"acct-{uuid4().hex[:8]}"
    made = client.post(
        "/v1/admin/partner-accounts",
        headers=root,
        json={"account": account, "password": PASSWORD, "station_ids": [str(first)]},
    )
    assert made.status_code == 201, made.text
    dup = client.post(
        "/v1/admin/partner-accounts",
        headers=root,
        json={"account": account, "password": PASSWORD, "station_ids": [str(first)]},
    )
    assert_problem(dup, 409, "account_exists")
    missing = client.post(
        "/v1/admin/partner-accounts",
        headers=root,
        json={"account": f"x{account}", "password": PASSWORD, "station_ids": [str(uuid4())]},
    )
    assert_problem(missing, 404, "not_found")
    tokens = client.post(
        "/v1/partner/auth/sign-in", json={"account": account, "password": PASSWORD}
    ).json()
    account_id = made.json()["account_id"]
    moved = client.patch(
        f"/v1/admin/partner-accounts/{account_id}",
        headers=root,
        json={"station_ids": [str(second)]},
    )
    assert moved.json()["station_ids"] == [str(second)]
    stale = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert stale.status_code == 401
    again = client.post(
        "/v1/partner/auth/sign-in", json={"account": account, "password": PASSWORD}
    ).json()
    assert again["account"]["station_ids"] == [str(second)]


def test_members_and_fuel_orders_filtered_with_cursors(core, client, root) -> None:
    station = make_station(core)
    other = make_station(core)
    orders = [paid_card_order(core, station, amount) for amount in (10_000, 20_000, 30_000)]
    paid_card_order(core, other, 40_000)
    project(core)
    url = f"/v1/admin/fuel-orders?station_id={station}&limit=2"
    page = client.get(url, headers=root).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(url + f"&cursor={page['next_cursor']}", headers=root).json()
    seen = [o["order_id"] for o in page["items"] + rest["items"]]
    assert sorted(seen) == sorted(o["order_id"] for o in orders) and rest["next_cursor"] is None
    big = client.get(
        f"/v1/admin/fuel-orders?station_id={station}&min_amount_fen=15000"
        "&max_amount_fen=25000&status=paid&method=card",
        headers=root,
    ).json()
    assert [o["amount_fen"] for o in big["items"]] == [20_000]
    one = client.get(f"/v1/admin/fuel-orders/{orders[0]['order_id']}", headers=root).json()
    assert one["station_id"] == str(station)
    assert_problem(
        client.get("/v1/admin/fuel-orders?status=lost", headers=root), 422, "invalid_request"
    )
    assert_problem(
        client.get("/v1/admin/fuel-orders?cursor=garbage", headers=root), 400, "invalid_cursor"
    )

    member = orders[1]["member_id"]
    with core.read_pool.connection() as conn:
        conn.execute(
            "INSERT INTO read.members (id, openid, nickname, joined_at, updated_at, position) "
            "VALUES (%s, %s, 'Driver Zhang', now(), now(), 0) ON CONFLICT DO NOTHING",
            (member, f"o-{member}"),
        )
    found = client.get("/v1/admin/members?q=Zhang", headers=root).json()["items"]
    assert member in [m["id"] for m in found]
    view = client.get(f"/v1/admin/members/{member}", headers=root).json()
    assert view["orders"]["orders"] == 1 and view["balances"]["card"] == 20_000
    assert_problem(client.get(f"/v1/admin/members/{uuid4()}", headers=root), 404, "not_found")
    lines = client.get(f"/v1/admin/journal-lines?owner=station:{station}", headers=root).json()
    assert sum(line["amount"] for line in lines["items"]) == 59_400


def test_admins_and_roles_are_managed_and_logged(core, client, root) -> None:
    admin_id, token = admin_with(core, "admins:view", "admins:change", "roles:change")
    me = bearer(token)
    role = f"support-{uuid4().hex[:6]}"
    bad = client.put(
        f"/v1/admin/roles/{role}", headers=me, json={"permissions": ["tickets:view", "tickets:fly"]}
    )
    assert_problem(bad, 422, "invalid_request")
    made = client.put(
        f"/v1/admin/roles/{role}",
        headers=me,
        json={"permissions": ["tickets:view", "tickets:change"], "description": "customer service"},
    )
    assert made.status_code == 200 and made.json()["permissions"] == [
        "tickets:change",
        "tickets:view",
    ]
    staff = client.post(
        "/v1/admin/admins",
        headers=me,
        json={"name": f"s-{uuid4().hex[:8]}", "password": PASSWORD, "role": role},
    )
    assert staff.status_code == 201, staff.text
    staff_id = staff.json()["admin_id"]
    assert_problem(
        client.post(
            "/v1/admin/admins",
            headers=me,
            json={"name": f"s-{uuid4().hex[:8]}", "password": PASSWORD, "role": "no-such-role"},
        ),
        422,
        "unknown_role",
    )
    assert_problem(client.delete(f"/v1/admin/roles/{role}", headers=me), 409, "role_in_use")
    assert_problem(
        client.patch(f"/v1/admin/admins/{admin_id}", headers=me, json={"disabled": True}),
        409,
        "cannot_disable_self",
    )
    off = client.patch(f"/v1/admin/admins/{staff_id}", headers=me, json={"disabled": True})
    assert off.json()["disabled"] is True
    assert client.delete(f"/v1/admin/admins/{staff_id}", headers=me).status_code == 200
    assert client.delete(f"/v1/admin/roles/{role}", headers=me).status_code == 200
    actions = [line["action"] for line in log_lines(core, admin_id=admin_id)]
    assert actions == ["roles.put", "admins.add", "admins.edit", "admins.delete", "roles.delete"]
    edit = log_lines(core, admin_id=admin_id, action="admins.edit")[0]
    assert (edit["before"]["disabled"], edit["after"]["disabled"]) == (False, True)
    listed = client.get(f"/v1/admin/log?admin_id={admin_id}&resource=roles", headers=root)
    assert [i["action"] for i in listed.json()["items"]] == ["roles.delete", "roles.put"]
    paged = client.get(f"/v1/admin/log?admin_id={admin_id}&limit=2", headers=root).json()
    more = client.get(
        f"/v1/admin/log?admin_id={admin_id}&limit=2&cursor={paged['next_cursor']}", headers=root
    ).json()
    assert len(paged["items"]) == 2 and paged["items"][-1]["log_id"] > more["items"][0]["log_id"]


def test_the_admin_log_is_append_only(core) -> None:
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        for sql in (
            "UPDATE office.admin_log SET outcome = 'ok'",
            "DELETE FROM office.admin_log",
            "TRUNCATE office.admin_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    with (
        core.read_pool.connection() as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("UPDATE office.admin_log SET outcome = 'ok'")


def test_settings_keep_secrets_encrypted_and_masked(core, client, root, sms) -> None:
    secret = "stored-key-secret-123456"
    put = client.put(
        "/v1/admin/settings/sms",
        headers=root,
        json={"access_key_id": "stored-key-id", "access_key_secret": secret, "enabled": True},
    )
    assert put.status_code == 200, put.text
    assert put.json()["access_key_secret"] == {"set": True, "masked": "****3456"}
    assert secret not in client.get("/v1/admin/settings", headers=root).text
    with core.read_pool.connection() as conn:
        raw = conn.execute(
            "SELECT value::text, secrets FROM office.settings WHERE key = 'sms'"
        ).fetchone()
    assert secret not in raw[0] and secret.encode() not in bytes(raw[1])
    logged = log_lines(core, action="settings.put", target="sms")[-1]
    assert secret not in str(logged)
    wechat = client.put(
        "/v1/admin/settings/wechat",
        headers=root,
        json={"appid": "wx123", "app_secret": "a-very-long-app-secret-xyz"},
    )
    assert wechat.json()["app_secret"]["masked"] == "****-xyz"
    assert_problem(
        client.put("/v1/admin/settings/wechat", headers=root, json={"colour": 1}),
        422,
        "invalid_request",
    )
    assert_problem(
        client.put("/v1/admin/settings/sms", headers=root, json={"enabled": "yes"}),
        422,
        "invalid_request",
    )
    assert client.get("/v1/admin/settings/nothing", headers=root).status_code == 422

    sim, _ = sms
    test = {"phone": "+8613800000000", "template_code": "SMS_HELLO", "params": {"name": "Li"}}
    assert_problem(
        client.post("/v1/admin/settings/sms/test", headers=root, json=test), 404, "not_found"
    )
    template = {"name": "Hello", "content": "Hello ${name}", "enabled": False}
    assert (
        client.put(
            "/v1/admin/settings/sms/templates/SMS_HELLO", headers=root, json=template
        ).status_code
        == 200
    )
    assert_problem(
        client.post("/v1/admin/settings/sms/test", headers=root, json=test),
        409,
        "template_disabled",
    )
    client.put(
        "/v1/admin/settings/sms/templates/SMS_HELLO",
        headers=root,
        json={**template, "enabled": True},
    )
    sent = client.post("/v1/admin/settings/sms/test", headers=root, json=test)
    assert sent.status_code == 200, sent.text
    assert sim.messages[-1].template_code == "SMS_HELLO" and sim.messages[-1].params == {
        "name": "Li"
    }
    client.put("/v1/admin/settings/sms", headers=root, json={"access_key_secret": "wrong-one"})
    failed = client.post("/v1/admin/settings/sms/test", headers=root, json=test)
    assert_problem(failed, 502, "sms_failed")
    client.put("/v1/admin/settings/sms", headers=root, json={"access_key_secret": secret})


def test_production_refuses_the_dev_secrets_key() -> None:
    from cryptography.fernet import Fernet

    from infra.settings import Settings

    real = {
        "environment": "production",
        "jwt_secret": "j" * 48,
        "wechat_app_secret": "w" * 32,
        "sms_access_key_secret": "s" * 32,
        "database_url": "postgresql://db/ledger",
        "redis_url": "redis://cache",
    }
    with pytest.raises(ValueError, match="SECRETS_KEY"):
        Settings(**real)
    assert Settings(**real, secrets_key=Fernet.generate_key().decode()).environment == (
        "production"
    )
