"""Alipay sign-in through HTTP against the simulators: alipay.system.oauth.token exchanges the
mini-program's auth code (RSA2 both ways); the member is found by the Alipay id, joined to
the member holding a verified phone number, or made; racing first sign-ins make one member."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.providers_wiring import build_provider_clients
from ledger.domain.member import Member
from providers.keys import DevKeys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import asgi_http_client
from support import project

PROBLEM = "application/problem+json"


@dataclass
class World:
    api: TestClient
    sims: Simulators
    http: httpx.Client

    def auth_code(self, **ids: str) -> dict[str, Any]:
        return self.sims.alipay.mint_auth_code(**ids)

    def sms_code(self, phone: str) -> str:
        sent = [m for m in self.sims.sms.messages if m.phone == phone]
        return str(sent[-1].params["code"])


@pytest.fixture(scope="module")
def keys() -> DevKeys:
    return DevKeys.generate()


@pytest.fixture
def world(core, keys) -> Iterator[World]:
    s = core.settings
    sims = build_simulators(
        keys,
        merchant_id=s.wechat_pay_mchid,
        appid=s.wechat_appid,
        alipay_app_id=s.alipay_app_id,
        login_secret=s.wechat_app_secret.get_secret_value(),
    )
    http = asgi_http_client(sims.asgi)
    providers = build_provider_clients(s, http, keys)
    with TestClient(create_app(core=core, providers=providers)) as api:
        yield World(api, sims, http)
    http.close()


def alipay_login(w: World, code: str, **extra: Any) -> httpx.Response:
    return w.api.post("/v1/auth/alipay-login", json={"auth_code": code, **extra})


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code, response.text


def new_phone() -> str:
    return f"137{random.randrange(10**8):08d}"


def test_first_sign_in_creates_and_second_finds(core, world) -> None:
    minted = world.auth_code()
    user_id = minted["user_id"]
    assert user_id.startswith("2088") and len(user_id) == 16
    first = alipay_login(world, minted["code"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["created"] is True and body["linked"] is False
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    assert body["member"]["id"] == str(Member.create_id(None, user_id))
    assert body["member"]["alipay_linked"] and not body["member"]["wechat_linked"]

    again = alipay_login(world, world.auth_code(user_id=user_id)["code"]).json()
    assert (again["created"], again["member"]["id"]) == (False, body["member"]["id"])
    # the code is single-use, as Alipay's are
    assert_problem(alipay_login(world, minted["code"]), 400, "invalid_code")
    assert_problem(alipay_login(world, "never-minted"), 400, "invalid_code")

    project(core)
    me = world.api.get("/v1/me", headers=bearer(body)).json()
    assert me["alipay_linked"] is True and me["wechat_linked"] is False
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT openid, alipay_user_id FROM read.members WHERE id = %s",
            (body["member"]["id"],),
        ).fetchone()
    assert row == (None, user_id)


def test_an_app_on_openid_signs_in_by_its_open_id(world) -> None:
    open_id = f"074a{uuid4().hex}"
    body = alipay_login(world, world.auth_code(open_id=open_id)["code"]).json()
    assert body["created"] is True
    assert body["member"]["id"] == str(Member.create_id(None, open_id))


def test_racing_first_sign_ins_make_one_member(world) -> None:
    user_id = world.auth_code()["user_id"]
    codes = [world.auth_code(user_id=user_id)["code"] for _ in range(8)]
    answers: list[dict[str, Any]] = []
    gate = threading.Barrier(len(codes))

    def go(code: str) -> None:
        gate.wait()
        answers.append(alipay_login(world, code).json())

    threads = [threading.Thread(target=go, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["member"]["id"] for a in answers}) == 1
    assert sum(a["created"] for a in answers) == 1


def test_a_verified_phone_joins_the_wechat_member(core, world) -> None:
    wechat = world.api.post(
        "/v1/auth/wechat-login",
        json={"code": world.sims.wechat_login.mint_code(f"o-{uuid4().hex}")},
    ).json()
    member_id, phone = wechat["member"]["id"], new_phone()
    # bound in the WeChat app (its own SMS flow is test_auth's): one code a minute per number
    core.members.bind_phone(UUID(member_id), f"+86{phone}", method="wechat")
    project(core)

    sent = world.api.post("/v1/auth/alipay-login/sms-codes", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    assert sent.json()["phone_masked"] == f"+86{phone[:3]}****{phone[-4:]}"
    code = world.sms_code(f"+86{phone}")
    user_id = world.auth_code()["user_id"]
    wrong = "000000" if code != "000000" else "111111"
    guessed = alipay_login(
        world, world.auth_code(user_id=user_id)["code"], phone=phone, sms_code=wrong
    )
    assert_problem(guessed, 400, "sms_code_invalid")

    joined = alipay_login(
        world, world.auth_code(user_id=user_id)["code"], phone=phone, sms_code=code
    )
    assert joined.status_code == 200, joined.text
    body = joined.json()
    assert (body["member"]["id"], body["linked"], body["created"]) == (member_id, True, False)
    assert body["member"]["alipay_linked"] and body["member"]["wechat_linked"]
    # from now on the Alipay account alone finds the WeChat member
    later = alipay_login(world, world.auth_code(user_id=user_id)["code"]).json()
    assert later["member"]["id"] == member_id and not later["linked"] and not later["created"]


def test_a_new_phone_is_bound_to_the_new_member(world) -> None:
    phone = new_phone()
    world.api.post("/v1/auth/alipay-login/sms-codes", json={"phone": phone})
    code = world.sms_code(f"+86{phone}")
    body = alipay_login(world, world.auth_code()["code"], phone=phone, sms_code=code).json()
    assert body["created"] is True and body["member"]["phone"] == f"+86{phone}"


def test_a_member_with_another_alipay_account_is_not_joined(core, world) -> None:
    first = alipay_login(world, world.auth_code()["code"]).json()
    phone = new_phone()
    core.members.bind_phone(UUID(first["member"]["id"]), f"+86{phone}", method="sms")
    project(core)
    world.api.post("/v1/auth/alipay-login/sms-codes", json={"phone": phone})
    code = world.sms_code(f"+86{phone}")
    other = alipay_login(world, world.auth_code()["code"], phone=phone, sms_code=code)
    assert_problem(other, 409, "alipay_account_conflict")


def test_provider_trouble_and_half_a_phone_are_clear_problems(world) -> None:
    world.sims.alipay.fail_next()
    assert_problem(alipay_login(world, world.auth_code()["code"]), 503, "provider_busy")
    half = alipay_login(world, "x", phone="13700000000")
    assert_problem(half, 422, "invalid_request")
