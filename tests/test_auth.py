"""Member sign-in, tokens, profile and phone binding, through HTTP, against the simulators.

The WeChat login and SMS simulators run in-process (no sockets) under the same path prefixes
as in `make run`, so the API's provider clients are built from the default settings.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from api.auth import LEEWAY_S, issue_access_token
from api.main import create_app
from api.providers_wiring import build_provider_clients
from providers.sim.asgi_client import asgi_http_client
from providers.sim.sms_sim import SmsSim
from providers.sim.wechat_login_sim import WeChatLoginSim
from support import project

PROBLEM = "application/problem+json"


class RecordingLoginSim(WeChatLoginSim):
    """Remembers every session_key it hands out, so tests can look for leaks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_keys: list[str] = []

    def jscode2session(self, query: dict[str, str]) -> dict[str, Any]:
        answer = super().jscode2session(query)
        if "session_key" in answer:
            self.session_keys.append(answer["session_key"])
        return answer


class RecordingClient(TestClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bodies: list[str] = []

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = super().request(*args, **kwargs)
        self.bodies.append(response.text)
        return response


@dataclass
class Sims:
    login: RecordingLoginSim
    sms: SmsSim
    http: httpx.Client

    def sms_code(self, phone: str) -> str:
        return [m for m in self.sms.messages if m.phone == phone][-1].params["code"]


@pytest.fixture(scope="module")
def sims(settings) -> Iterator[Sims]:
    login = RecordingLoginSim(
        appid=settings.wechat_appid, secret=settings.wechat_app_secret.get_secret_value()
    )
    sms = SmsSim(
        credentials={settings.sms_access_key_id: settings.sms_access_key_secret.get_secret_value()}
    )
    asgi = Starlette(routes=[Mount("/wechat", app=login.app), Mount("/sms", app=sms.app)])
    http = asgi_http_client(asgi)
    yield Sims(login, sms, http)
    http.close()


@pytest.fixture
def api(core, sims, caplog) -> Iterator[RecordingClient]:
    caplog.set_level(logging.DEBUG)
    providers = build_provider_clients(core.settings, sims.http)
    with RecordingClient(create_app(core=core, providers=providers)) as client:
        yield client
    # Whatever a test did, no session key reached a response or a log line.
    secret = core.settings.wechat_app_secret.get_secret_value()
    logged = [r.getMessage() for phase in ("setup", "call") for r in caplog.get_records(phase)]
    for text in [*client.bodies, *logged]:
        assert "session_key" not in text
        assert not any(key in text for key in sims.login.session_keys)
        assert secret not in text


def sign_in(api: TestClient, sims: Sims, openid: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/auth/wechat-login", json={"code": sims.login.mint_code(openid), **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()


def auth(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def new_openid() -> str:
    return f"o-{uuid4().hex}"


def new_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == code, body
    return body


def me(api: TestClient, core, tokens: dict[str, Any]) -> dict[str, Any]:
    project(core)
    response = api.get("/v1/me", headers=auth(tokens))
    assert response.status_code == 200, response.text
    return response.json()


# -- sign-in ---------------------------------------------------------------------------------


def test_first_sign_in_creates_the_member_and_the_second_finds_it(api, sims, core) -> None:
    openid = new_openid()
    first = sign_in(api, sims, openid)
    assert first["created"] is True
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == core.settings.access_token_minutes * 60
    assert first["refresh_token"] and first["access_token"]
    member_id = first["member"]["id"]

    second = sign_in(api, sims, openid)
    assert (second["created"], second["member"]["id"]) == (False, member_id)
    assert me(api, core, second)["id"] == member_id
    assert sims.login.session_keys  # the simulator did hand out session keys


def test_concurrent_first_sign_ins_create_exactly_one_member(api, sims, core) -> None:
    openid = new_openid()
    codes = [sims.login.mint_code(openid) for _ in range(8)]
    answers: list[httpx.Response] = []
    start = threading.Barrier(len(codes))

    def go(code: str) -> None:
        start.wait()
        answers.append(api.post("/v1/auth/wechat-login", json={"code": code}))

    threads = [threading.Thread(target=go, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * len(codes)
    bodies = [a.json() for a in answers]
    assert sum(b["created"] for b in bodies) == 1
    assert len({b["member"]["id"] for b in bodies}) == 1
    member_id = UUID(bodies[0]["member"]["id"])
    assert len(core.app.recorder.select_events(member_id)) == 1  # one Registered event
    project(core)
    with core.read_pool.connection() as conn:
        rows = conn.execute("SELECT count(*) FROM read.members WHERE openid = %s", (openid,))
        assert rows.fetchone()[0] == 1


@pytest.mark.parametrize(
    ("errcode", "status", "code"),
    [
        (40029, 400, "invalid_code"),
        (45011, 429, "rate_limited"),
        (40226, 403, "user_blocked"),
        (-1, 503, "provider_busy"),
        (40163, 400, "invalid_code"),
        (99999, 502, "provider_error"),
    ],
)
def test_wechat_errors_become_problems(api, sims, errcode, status, code) -> None:
    sims.login.force_error(errcode)
    response = api.post("/v1/auth/wechat-login", json={"code": sims.login.mint_code(new_openid())})
    assert_problem(response, status, code)


def test_a_code_works_once(api, sims) -> None:
    code = sims.login.mint_code(new_openid())
    assert api.post("/v1/auth/wechat-login", json={"code": code}).status_code == 200
    again = api.post("/v1/auth/wechat-login", json={"code": code})
    assert_problem(again, 400, "invalid_code")
    assert_problem(api.post("/v1/auth/wechat-login", json={"code": "nope"}), 400, "invalid_code")


# -- access and refresh tokens ---------------------------------------------------------------


def test_a_token_seen_before_still_expires(api, sims, core, monkeypatch) -> None:
    """Verified tokens are remembered, but not past their expiry."""
    member_id = sign_in(api, sims, new_openid())["member"]["id"]
    project(core)
    token, lifetime = issue_access_token(core.settings, member_id, "member", ["member"])
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/v1/me", headers=headers).status_code == 200
    assert api.get("/v1/me", headers=headers).status_code == 200  # the remembered one
    later = time.time() + lifetime + LEEWAY_S + 1
    monkeypatch.setattr("api.auth.time.time", lambda: later)
    answer = api.get("/v1/me", headers=headers)
    assert "expired" in assert_problem(answer, 401, "unauthenticated")["title"]


def test_access_tokens_are_checked(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    member_id = tokens["member"]["id"]
    settings = core.settings
    expired, _ = issue_access_token(
        settings, member_id, "member", ["member"], now=time.time() - 3600
    )
    partner, _ = issue_access_token(settings, uuid4(), "partner", ["station:x"])
    forged = settings.model_copy(update={"jwt_secret": SecretStr("x" * 40)})
    forged_token, _ = issue_access_token(forged, member_id, "member", ["member"])

    for headers in (
        {},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged_token}"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Basic {tokens['access_token']}"},
    ):
        response = api.get("/v1/me", headers=headers)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
    expired_answer = api.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert "expired" in expired_answer.json()["title"]

    wrong_role = api.get("/v1/me", headers={"Authorization": f"Bearer {partner}"})
    assert_problem(wrong_role, 403, "forbidden")
    assert 'error="insufficient_scope"' in wrong_role.headers["www-authenticate"]
    assert me(api, core, tokens)["id"] == member_id


def test_refresh_rotates_and_reuse_revokes_the_family(api, sims, core) -> None:
    first = sign_in(api, sims, new_openid())
    second = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert me(api, core, second)["id"] == first["member"]["id"]

    # The first token comes back (stolen and replayed): refused, and the family dies.
    reused = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert assert_problem(reused, 401, "invalid_refresh_token")["reason"] == "reused"
    after = api.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert assert_problem(after, 401, "invalid_refresh_token")["reason"] == "revoked"

    # Another sign-in is another family, untouched.
    other = sign_in(api, sims, new_openid())
    assert api.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}).is_success
    unknown = api.post("/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert assert_problem(unknown, 401, "invalid_refresh_token")["reason"] == "unknown"

    with core.read_pool.connection() as conn:
        stored = conn.execute("SELECT token_hash FROM auth.refresh_tokens").fetchall()
    assert all(bytes(h) != other["refresh_token"].encode() for (h,) in stored)


def test_refresh_tokens_expire(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 second' "
            "WHERE owner = %s",
            (tokens["member"]["id"],),
        )
    response = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert assert_problem(response, 401, "invalid_refresh_token")["reason"] == "expired"


def test_logout_revokes_the_refresh_token(api, sims) -> None:
    tokens = sign_in(api, sims, new_openid())
    assert (
        api.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 204
    )
    response = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert assert_problem(response, 401, "invalid_refresh_token")["reason"] == "revoked"
    assert api.post("/v1/auth/logout", json={"refresh_token": "unknown"}).status_code == 204


# -- profile ---------------------------------------------------------------------------------


def test_profile_update_and_validation(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    fresh = me(api, core, tokens)
    assert (fresh["nickname"], fresh["avatar_url"], fresh["phone"]) == (None, None, None)

    good = {"nickname": "  Li Wei  ", "avatar_url": "https://img.example.com/a.png"}
    response = api.patch("/v1/me", json=good, headers=auth(tokens))
    assert response.status_code == 200, response.text
    assert response.json()["nickname"] == "Li Wei"

    for body, code in [
        ({"nickname": "x" * 33}, "invalid_nickname"),
        ({"nickname": "   "}, "invalid_nickname"),
        ({"nickname": "bad\nname"}, "invalid_nickname"),
        ({"avatar_url": "http://img.example.com/a.png"}, "invalid_avatar_url"),
        ({"avatar_url": "javascript:alert(1)"}, "invalid_avatar_url"),
        ({"nickname": "Fine", "avatar_url": "ftp://img.example.com/a.png"}, "invalid_avatar_url"),
        ({"nickname": "Fine", "openid": "steal"}, "invalid_request"),
        ({"nickname": 42}, "invalid_request"),
    ]:
        answer = api.patch("/v1/me", json=body, headers=auth(tokens))
        assert_problem(answer, 422, code)

    after = me(api, core, tokens)
    assert (after["nickname"], after["avatar_url"]) == ("Li Wei", good["avatar_url"])
    assert api.patch("/v1/me", json={"nickname": "Li Wei"}, headers=auth(tokens)).is_success
    events = core.app.recorder.select_events(UUID(after["id"]))
    assert [e.topic.rsplit(".", 1)[1] for e in events] == ["Registered", "ProfileUpdated"]


# -- phone binding ---------------------------------------------------------------------------


def test_bind_phone_with_a_wechat_code(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    phone = new_phone()
    code = sims.login.mint_phone_code(phone)
    response = api.post("/v1/me/phone", json={"wechat_code": code}, headers=auth(tokens))
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == f"+86{phone}"
    assert me(api, core, tokens)["phone_masked"] == f"+86{phone[:3]}****{phone[-4:]}"
    used = api.post("/v1/me/phone", json={"wechat_code": code}, headers=auth(tokens))
    assert_problem(used, 400, "invalid_code")

    abroad = sims.login.mint_phone_code("91234567", country_code="852")
    response = api.post("/v1/me/phone", json={"wechat_code": abroad}, headers=auth(tokens))
    assert response.json()["phone"] == "+85291234567"


def test_a_phone_code_for_another_mini_program_is_refused(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    code = sims.login.mint_phone_code(new_phone(), watermark_appid="wx9999999999999999")
    response = api.post("/v1/me/phone", json={"wechat_code": code}, headers=auth(tokens))
    assert_problem(response, 400, "phone_watermark_mismatch")
    assert me(api, core, tokens)["phone"] is None


def test_bind_phone_needs_one_way_of_proving_it(api, sims) -> None:
    tokens = sign_in(api, sims, new_openid())
    for body in ({}, {"phone": new_phone()}, {"wechat_code": "c", "sms_code": "123456"}):
        response = api.post("/v1/me/phone", json=body, headers=auth(tokens))
        assert_problem(response, 422, "invalid_request")
    assert_problem(api.post("/v1/me/phone", json={"wechat_code": "c"}), 401, "unauthenticated")


def request_sms(api: TestClient, tokens: dict[str, Any], phone: str) -> httpx.Response:
    return api.post("/v1/auth/sms-codes", json={"phone": phone}, headers=auth(tokens))


def bind_by_sms(api: TestClient, tokens: dict[str, Any], phone: str, code: str) -> httpx.Response:
    return api.post("/v1/me/phone", json={"phone": phone, "sms_code": code}, headers=auth(tokens))


def test_bind_phone_with_an_sms_code(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    phone = new_phone()
    sent = request_sms(api, tokens, phone)
    assert sent.status_code == 202, sent.text
    assert sent.json()["expires_in"] == 300
    code = sims.sms_code(f"+86{phone}")
    assert len(code) == 6 and code.isdigit()

    with core.read_pool.connection() as conn:
        salt, digest = conn.execute(
            "SELECT salt, code_hash FROM auth.sms_codes WHERE phone = %s", (f"+86{phone}",)
        ).fetchone()
    assert len(bytes(salt)) == 16 and code.encode() not in bytes(digest)

    # Someone else's account cannot use the code sent for this one.
    thief = sign_in(api, sims, new_openid())
    assert_problem(bind_by_sms(api, thief, phone, code), 400, "sms_code_invalid")

    wrong = bind_by_sms(api, tokens, phone, f"{(int(code) + 1) % 10**6:06d}")
    assert assert_problem(wrong, 400, "sms_code_invalid")["attempts_left"] == 4
    bound = bind_by_sms(api, tokens, phone, code)
    assert bound.status_code == 200, bound.text
    assert bound.json()["phone"] == f"+86{phone}"
    assert me(api, core, tokens)["phone"] == f"+86{phone}"
    assert_problem(bind_by_sms(api, tokens, phone, code), 400, "sms_code_invalid")  # used


def test_an_expired_sms_code_is_refused(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    phone = new_phone()
    assert request_sms(api, tokens, phone).status_code == 202
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE auth.sms_codes SET expires_at = now() - interval '1 second' WHERE phone = %s",
            (f"+86{phone}",),
        )
    response = bind_by_sms(api, tokens, phone, sims.sms_code(f"+86{phone}"))
    assert_problem(response, 400, "sms_code_expired")
    assert me(api, core, tokens)["phone"] is None


def test_five_wrong_guesses_kill_the_code(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    phone = new_phone()
    assert request_sms(api, tokens, phone).status_code == 202
    code = sims.sms_code(f"+86{phone}")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        answer = bind_by_sms(api, tokens, phone, wrong)
        assert assert_problem(answer, 400, "sms_code_invalid")["attempts_left"] == left
    assert_problem(bind_by_sms(api, tokens, phone, wrong), 429, "sms_code_attempts_exceeded")
    assert_problem(bind_by_sms(api, tokens, phone, code), 429, "sms_code_attempts_exceeded")
    assert me(api, core, tokens)["phone"] is None


def test_sms_codes_are_rate_limited(api, sims, core) -> None:
    tokens = sign_in(api, sims, new_openid())
    phone = new_phone()

    def age(seconds: int) -> None:
        with psycopg.connect(core.owner_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE auth.sms_codes SET created_at = created_at - make_interval(secs => %s) "
                "WHERE phone = %s",
                (seconds, f"+86{phone}"),
            )

    assert request_sms(api, tokens, phone).status_code == 202
    too_soon = assert_problem(request_sms(api, tokens, phone), 429, "sms_rate_limited")
    assert too_soon["retry_after"] == 60
    for _ in range(9):
        age(61)
        assert request_sms(api, tokens, phone).status_code == 202
    age(61)
    daily = assert_problem(request_sms(api, tokens, phone), 429, "sms_rate_limited")
    assert 0 < daily["retry_after"] <= 86_400
    sent = [m for m in sims.sms.messages if m.phone == f"+86{phone}"]
    assert len(sent) == 10
    age(86_400)
    assert request_sms(api, tokens, phone).status_code == 202


def test_a_failed_sms_does_not_count(api, sims) -> None:
    tokens = sign_in(api, sims, new_openid())
    phone = new_phone()
    sims.sms.fail_next()
    assert_problem(request_sms(api, tokens, phone), 503, "sms_unavailable")
    assert request_sms(api, tokens, phone).status_code == 202
    assert_problem(request_sms(api, tokens, "12345"), 422, "invalid_phone")
    assert_problem(api.post("/v1/auth/sms-codes", json={"phone": phone}), 401, "unauthenticated")
