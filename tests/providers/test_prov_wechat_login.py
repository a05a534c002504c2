"""WeChat mini-program login and phone number against the simulator."""

import pytest

from providers.wechat_login import WeChatLoginClient, WeChatLoginError


def test_code2session_gives_the_openid_and_keeps_the_session_key_out_of_repr(world):
    code = world.sims.wechat_login.mint_code("o-user-1", unionid="u-1")
    session = world.login.code2session(code)
    assert (session.openid, session.unionid) == ("o-user-1", "u-1")
    assert len(session.session_key) == 24
    assert session.session_key not in repr(session)
    assert world.login.code2session(world.sims.wechat_login.mint_code("o-2")).unionid is None


def test_codes_are_single_use(world):
    code = world.sims.wechat_login.mint_code("o-user-1")
    world.login.code2session(code)
    with pytest.raises(WeChatLoginError) as error:
        world.login.code2session(code)
    assert (error.value.code, error.value.errcode) == ("invalid_code", 40163)


def test_codes_live_five_minutes(world):
    code = world.sims.wechat_login.mint_code("o-user-1")
    world.clock.advance(300)
    with pytest.raises(WeChatLoginError) as error:
        world.login.code2session(code)
    assert (error.value.code, error.value.errcode) == ("invalid_code", 40029)


@pytest.mark.parametrize(
    "errcode, code, retryable",
    [
        (40029, "invalid_code", False),
        (45011, "rate_limited", False),
        (40226, "user_blocked", False),
        (-1, "provider_busy", True),
        (40013, "provider_error", False),
    ],
)
def test_errcodes_map_to_stable_codes(world, errcode, code, retryable):
    world.sims.wechat_login.force_error(errcode)
    with pytest.raises(WeChatLoginError) as error:
        world.login.code2session(world.sims.wechat_login.mint_code("o-user-1"))
    assert (error.value.code, error.value.errcode, error.value.retryable) == (
        code,
        errcode,
        retryable,
    )


def test_forced_errors_over_http_control(world):
    world.http.post("/wechat/sim/errors", json={"errcode": 45011})
    code = world.http.post("/wechat/sim/codes", json={"openid": "o-9"}).json()["code"]
    with pytest.raises(WeChatLoginError) as error:
        world.login.code2session(code)
    assert error.value.code == "rate_limited"


def test_wrong_secret_is_a_provider_error(world):
    client = WeChatLoginClient(world.login.appid, "wrong", "http://sim.test/wechat", world.http)
    with pytest.raises(WeChatLoginError) as error:
        client.code2session(world.sims.wechat_login.mint_code("o-user-1"))
    assert (error.value.code, error.value.errcode) == ("provider_error", 40125)


def test_phone_number_with_a_cached_access_token(world):
    sim = world.sims.wechat_login
    phone = world.login.phone_number(sim.mint_phone_code("13800138000"))
    assert (phone.phone, phone.pure, phone.country_code) == ("13800138000", "13800138000", "86")
    world.login.phone_number(sim.mint_phone_code("13900139000"))
    assert sim.token_requests == 1
    world.clock.advance(7200 - 300)  # refreshed ahead of expiry
    world.login.phone_number(sim.mint_phone_code("13900139000"))
    assert sim.token_requests == 2


def test_a_rejected_cached_token_is_refreshed_once(world):
    sim = world.sims.wechat_login
    world.login.phone_number(sim.mint_phone_code("13800138000"))
    sim.expire_tokens()
    assert world.login.phone_number(sim.mint_phone_code("13800138001")).pure == "13800138001"
    assert sim.token_requests == 2


def test_a_caller_supplied_token_is_used_as_is(world):
    sim = world.sims.wechat_login
    token = world.login.access_token()
    assert world.login.phone_number(sim.mint_phone_code("13800138000"), token).pure
    with pytest.raises(WeChatLoginError) as error:
        world.login.phone_number(sim.mint_phone_code("13800138000"), "not-a-token")
    assert (error.value.code, error.value.errcode) == ("provider_error", 40001)


def test_foreign_numbers_keep_their_country_code(world):
    code = world.sims.wechat_login.mint_phone_code("2025550123", country_code="1")
    phone = world.login.phone_number(code)
    assert (phone.phone, phone.pure, phone.country_code) == ("+1 2025550123", "2025550123", "1")


def test_a_phone_number_for_another_app_is_refused(world):
    code = world.sims.wechat_login.mint_phone_code("13800138000", watermark_appid="wxOTHER")
    with pytest.raises(WeChatLoginError) as error:
        world.login.phone_number(code)
    assert error.value.code == "watermark_mismatch"


def test_phone_errcodes(world):
    world.sims.wechat_login.force_error(-1, endpoint="phone")
    with pytest.raises(WeChatLoginError) as error:
        world.login.phone_number(world.sims.wechat_login.mint_phone_code("13800138000"))
    assert (error.value.code, error.value.retryable) == ("provider_busy", True)
