"""Referral (M10): signed codes, binding once (never rebound, never self, no cycles), the
coupons both sides receive, sign-up coupons, and the poster, through the service and HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Mount

from api.main import create_app
from api.providers_wiring import build_provider_clients
from api.referral_poster import ascii_safe, render_poster
from coupon_support import new_template
from ledger.errors import ReferralRejected
from ledger.services.members import MemberService
from ledger.services.referrals import (
    ReferralService,
    create_default_template,
    read_code,
    referral_key,
    sign_code,
)
from projections import coupons as coupon_queries
from providers.sim.asgi_client import asgi_http_client
from providers.sim.wechat_login_sim import WeChatLoginSim
from support import project


@pytest.fixture(autouse=True)
def default_template(core) -> UUID:
    """What the demo data creates: the template referral coupons come from by default."""
    return UUID(create_default_template(core.coupons)["template_id"])


def sign_in(core, code: str | None = None) -> UUID:
    return UUID(core.members.sign_in(f"o-{uuid4().hex}", None, referral_code=code)["member_id"])


def referrer_of(core, member_id: UUID) -> str | None:
    return core.members.get(member_id)["referrer"]


def coupons_of(core, member_id: UUID) -> list[dict]:
    project(core)
    return coupon_queries.all_coupons(core.read_pool, member_id=member_id)["items"]


def test_codes_are_signed_and_name_one_member() -> None:
    key, other = referral_key(b"secret"), referral_key(b"another secret")
    member = uuid4()
    code = sign_code(key, member)
    assert len(code) == 35 and code.isascii()
    assert read_code(key, code) == member
    assert read_code(other, code) is None
    flipped = code[:20] + ("A" if code[20] != "A" else "B") + code[21:]
    for bad in (flipped, code[:-1], "", "not a code at all!", code + "AAAA", None):
        assert read_code(key, bad) is None


def test_a_referred_sign_up_binds_once_and_rewards_both(core, default_template) -> None:
    alice = sign_in(core)
    code = core.referrals.code_for(alice)
    bob = sign_in(core, code)
    assert referrer_of(core, bob) == str(alice)
    for member in (alice, bob):
        [coupon] = coupons_of(core, member)
        assert (coupon["template_id"], coupon["source"], coupon["state"]) == (
            default_template,
            "referral",
            "held",
        )

    carol = sign_in(core)
    # bob signs in again, through carol's poster: nothing changes
    bob_openid = core.app.repository.get(bob).openid
    assert (
        core.members.sign_in(bob_openid, None, referral_code=core.referrals.code_for(carol))[
            "created"
        ]
        is False
    )
    assert referrer_of(core, bob) == str(alice)
    with pytest.raises(ReferralRejected) as refused:
        core.referrals.bind(member_id=bob, referral_code=core.referrals.code_for(carol))
    assert refused.value.details["reason"] == "already_bound"
    same = core.referrals.bind(member_id=bob, referral_code=code)
    assert same["bound"] is False
    assert len(coupons_of(core, alice)) == 1 and len(coupons_of(core, bob)) == 1
    project(core)
    with core.read_pool.connection() as conn:
        row = conn.execute("SELECT referrer FROM read.members WHERE id = %s", (bob,)).fetchone()
    assert row == (alice,)


def test_nobody_refers_themselves_and_no_cycles(core) -> None:
    a = sign_in(core)
    with pytest.raises(ReferralRejected) as own:
        core.referrals.bind(member_id=a, referral_code=core.referrals.code_for(a))
    assert own.value.details["reason"] == "self"
    b = sign_in(core, core.referrals.code_for(a))
    c = sign_in(core, core.referrals.code_for(b))
    for below in (b, c):  # a would sit under its own referee
        with pytest.raises(ReferralRejected) as cycle:
            core.referrals.bind(member_id=a, referral_code=core.referrals.code_for(below))
        assert cycle.value.details["reason"] == "cycle"
    assert referrer_of(core, a) is None
    d = sign_in(core)
    assert core.referrals.bind(member_id=d, referral_code=core.referrals.code_for(c))["bound"]
    assert referrer_of(core, d) == str(c)
    assert len(coupons_of(core, d)) == 1


def test_bad_codes_never_stop_a_sign_up(core) -> None:
    a = sign_in(core)
    code = core.referrals.code_for(a)
    forged = code[:-2] + ("AA" if code[-2:] != "AA" else "BB")
    nobody = sign_code(core.referrals.key, uuid4())  # well signed, names no member
    for bad in (forged, nobody, "garbage"):
        m = sign_in(core, bad)
        assert referrer_of(core, m) is None
        assert coupons_of(core, m) == []
    with pytest.raises(ReferralRejected):
        core.referrals.bind(member_id=sign_in(core), referral_code=forged)


def test_every_new_member_gets_the_sign_up_coupons(core) -> None:
    welcome = new_template(core.coupons, title="Welcome", per_member_limit=1)
    referrals = ReferralService(core.runner, secret=b"s", signup_templates=[welcome])
    members = MemberService(core.runner, on_registered=[referrals.on_registered])
    openid = f"o-{uuid4().hex}"
    member = UUID(members.sign_in(openid, None)["member_id"])
    members.sign_in(openid, None)  # the second sign-in registers nothing and gives nothing
    [coupon] = coupons_of(core, member)
    assert (coupon["template_id"], coupon["source"]) == (welcome, "signup")


# -- HTTP, through the WeChat login simulator --------------------------------------------------


@pytest.fixture
def api(core) -> Iterator[tuple[TestClient, WeChatLoginSim]]:
    settings = core.settings
    login = WeChatLoginSim(
        appid=settings.wechat_appid, secret=settings.wechat_app_secret.get_secret_value()
    )
    http: httpx.Client = asgi_http_client(Starlette(routes=[Mount("/wechat", app=login.app)]))
    providers = build_provider_clients(settings, http)
    with TestClient(create_app(core=core, providers=providers)) as client:
        yield client, login
    http.close()


def wechat_login(client: TestClient, login: WeChatLoginSim, **extra) -> dict:
    response = client.post(
        "/v1/auth/wechat-login", json={"code": login.mint_code(f"o-{uuid4().hex}"), **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_signing_in_through_a_poster_binds_the_referrer(core, api) -> None:
    client, login = api
    alice = wechat_login(client, login)
    alice_auth = {"Authorization": f"Bearer {alice['access_token']}"}
    mine = client.get("/v1/me/referral", headers=alice_auth).json()
    assert mine["link"] == core.settings.referral_link_base + mine["referral_code"]

    bob = wechat_login(client, login, referral_code=mine["referral_code"])
    assert bob["created"] is True and bob["member"]["referrer"] == alice["member"]["id"]
    project(core)
    bob_auth = {"Authorization": f"Bearer {bob['access_token']}"}
    assert client.get("/v1/me", headers=bob_auth).json()["referrer"] == alice["member"]["id"]
    for auth in (alice_auth, bob_auth):
        items = client.get("/v1/me/coupons?state=valid", headers=auth).json()["items"]
        assert [c["source"] for c in items] == ["referral"]
    too_long = client.post(
        "/v1/auth/wechat-login", json={"code": login.mint_code("x"), "referral_code": "x" * 65}
    )
    assert too_long.status_code == 422


def test_the_poster_is_a_png_with_the_signed_link(core, api) -> None:
    client, login = api
    member = wechat_login(client, login)
    auth = {"Authorization": f"Bearer {member['access_token']}"}
    code = core.referrals.code_for(UUID(member["member"]["id"]))
    for nickname in (None, "加油小王", "Zoë the driver"):
        if nickname:
            assert (
                client.patch("/v1/me", json={"nickname": nickname}, headers=auth).status_code == 200
            )
        project(core)
        response = client.get("/v1/me/referral-poster", headers=auth)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert (image.format, image.size) == ("PNG", (720, 1080))
        assert image.text["referral_code"] == code
        assert image.text["referral_link"] == core.settings.referral_link_base + code
    assert client.get("/v1/me/referral-poster").status_code == 401


def test_text_the_default_font_cannot_draw_is_folded_to_ascii() -> None:
    assert ascii_safe("Zoë  加油", "x") == "Zoe"
    assert ascii_safe("加油小王", "Member 1A2B3C") == "Member 1A2B3C"
    png = render_poster(
        app_name="加油 App", nickname="加油小王", link="https://x/y?ref=c", code="c"
    )
    assert Image.open(io.BytesIO(png)).size == (720, 1080)
