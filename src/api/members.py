"""Member sign-in (WeChat or Alipay), tokens, profile and phone binding: the mini-programs'
/v1 paths.

The WeChat and the Alipay mini-program sign in with their own ids. To be the same member in
both, the Alipay sign-in may carry a phone number verified by SMS (`POST
/v1/auth/alipay-login/sms-codes`, then `phone` and `sms_code` with the auth code): the member
who has that number bound gets the Alipay account. Otherwise the first Alipay sign-in makes
a member of its own (with the verified number bound, when one was sent).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import (
    MEMBER_SCOPE,
    CurrentMember,
    RefreshTokensDep,
    SettingsDep,
    issue_session,
    refreshed_session,
)
from api.errors import ApiError
from api.providers_wiring import Providers
from api.sms_codes import RESEND_AFTER_S, TTL_S, SmsCodes
from ledger.domain.member import mask_phone, normalize_phone
from ledger.services.members import MemberService
from projections.members import member_by_phone, member_row
from providers.errors import ProviderError
from providers.wechat_login import WeChatLoginError

router = APIRouter(prefix="/v1", tags=["members"])

# WeChat's failures, as the mini-program sees them.
WECHAT_ERRORS = {
    "invalid_code": (400, "invalid_code", "The WeChat code is invalid, used or expired"),
    "rate_limited": (429, "rate_limited", "WeChat is rate limiting sign-ins; retry shortly"),
    "user_blocked": (403, "user_blocked", "WeChat has blocked this account as high-risk"),
    "provider_busy": (503, "provider_busy", "WeChat is busy; retry"),
    "watermark_mismatch": (
        400,
        "phone_watermark_mismatch",
        "The phone number was issued to another mini-program",
    ),
}
_OTHER = (502, "provider_error", "WeChat answered with an error")
_CODE_USED = 40163  # "code been used": to the client, one more invalid code


def wechat_problem(exc: WeChatLoginError) -> ApiError:
    key = "invalid_code" if exc.errcode == _CODE_USED else exc.code
    status, code, title = WECHAT_ERRORS.get(key, _OTHER)
    return ApiError(status, code, title)


ALIPAY_CODE_INVALID = ("isv.code-invalid", "invalid-auth-code", "isv.invalid-auth-code")
ALIPAY_LINK = "alipay_link"  # the purpose of the SMS codes an Alipay sign-in verifies


def alipay_problem(exc: ProviderError) -> ApiError:
    if exc.code in ALIPAY_CODE_INVALID:
        return ApiError(400, "invalid_code", "The Alipay auth code is invalid, used or expired")
    if exc.retryable:
        return ApiError(503, "provider_busy", "Alipay is busy; retry")
    return ApiError(502, "provider_error", "Alipay answered with an error", provider_code=exc.code)


def members_of(request: Request) -> MemberService:
    return request.app.state.core.members  # type: ignore[no-any-return]


def sms_codes_of(request: Request) -> SmsCodes:
    return SmsCodes(request.app.state.core.read_pool)


Members = Annotated[MemberService, Depends(members_of)]
Codes = Annotated[SmsCodes, Depends(sms_codes_of)]


class WeChatLogin(BaseModel):
    code: str = Field(min_length=1, max_length=256)
    referral_code: str | None = Field(default=None, max_length=64)


class AlipayLogin(BaseModel):
    """my.getAuthCode()'s code; with a phone number and its SMS code to join the member who
    has that number (the WeChat one, say)."""

    auth_code: str = Field(min_length=1, max_length=256)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    sms_code: str | None = Field(default=None, min_length=1, max_length=16)
    referral_code: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _both_or_neither(self) -> AlipayLogin:
        if (self.phone is None) != (self.sms_code is None):
            raise ValueError("send phone and sms_code together, or neither")
        return self


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class ProfilePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nickname: str | None = None
    avatar_url: str | None = None


class SmsCodeRequest(BaseModel):
    phone: str = Field(min_length=1, max_length=32)


class PhoneBinding(BaseModel):
    """Either a WeChat phone-number code, or a phone number and the SMS code sent to it."""

    model_config = ConfigDict(extra="forbid")
    wechat_code: str | None = Field(default=None, min_length=1, max_length=256)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    sms_code: str | None = Field(default=None, min_length=1, max_length=16)

    @model_validator(mode="after")
    def _one_way(self) -> PhoneBinding:
        by_sms = self.phone is not None and self.sms_code is not None
        half_sms = (self.phone is None) != (self.sms_code is None)
        if (self.wechat_code is not None) == by_sms or half_sms:
            raise ValueError("send either wechat_code, or phone and sms_code")
        return self


@router.post("/auth/wechat-login")
def wechat_login(
    body: WeChatLogin,
    settings: SettingsDep,
    refresh: RefreshTokensDep,
    providers: Providers,
    members: Members,
) -> dict[str, Any]:
    """Exchange a wx.login() code for tokens; the first sign-in makes the member."""
    try:
        # The session key stays in this frame: it is never stored, logged or returned.
        session = providers.wechat_login.code2session(body.code)
    except WeChatLoginError as exc:
        raise wechat_problem(exc) from None
    signed = members.sign_in(session.openid, session.unionid, referral_code=body.referral_code)
    member = members.get(UUID(signed["member_id"]))
    tokens = issue_session(settings, refresh, signed["member_id"], "member", MEMBER_SCOPE)
    return {**tokens, "created": signed["created"], "member": member}


@router.post("/auth/alipay-login")
def alipay_login(
    body: AlipayLogin,
    request: Request,
    settings: SettingsDep,
    refresh: RefreshTokensDep,
    providers: Providers,
    members: Members,
) -> dict[str, Any]:
    """Exchange an Alipay auth code (alipay.system.oauth.token) for tokens, as WeChat login
    does. The member is the one holding this Alipay account; else, with a verified phone
    number, the member who has it bound (`linked`); else a new one (`created`)."""
    alipay = getattr(providers, "alipay", None)
    if alipay is None:
        raise ApiError(503, "provider_unavailable", "Alipay sign-in is not configured")
    try:
        identity = alipay.oauth_token(body.auth_code)
    except ProviderError as exc:
        raise alipay_problem(exc) from None
    link_to, phone = None, None
    if body.phone is not None and body.sms_code is not None:
        phone = normalize_phone(body.phone)
        pool = request.app.state.core.read_pool
        SmsCodes(pool, ALIPAY_LINK).verify(phone, phone, body.sms_code)
        link_to = member_by_phone(pool, phone)
    signed = members.alipay_sign_in(
        identity.buyer_id,
        link_to=link_to,
        phone=phone if link_to is None else None,
        referral_code=body.referral_code,
    )
    tokens = issue_session(settings, refresh, signed["member_id"], "member", MEMBER_SCOPE)
    member = members.get(UUID(signed["member_id"]))
    return {**tokens, "created": signed["created"], "linked": signed["linked"], "member": member}


@router.post("/auth/alipay-login/sms-codes", status_code=202)
def send_alipay_link_code(
    body: SmsCodeRequest, request: Request, providers: Providers, settings: SettingsDep
) -> dict[str, Any]:
    """Text a six-digit code to a phone number, for an Alipay sign-in to prove it (one a
    minute, ten a day per number)."""
    phone = normalize_phone(body.phone)
    codes = SmsCodes(request.app.state.core.read_pool, ALIPAY_LINK)
    code_id, code = codes.issue(phone, phone)
    try:
        providers.sms.send(phone, settings.sms_template_verify_code, {"code": code})
    except ProviderError:
        codes.withdraw(code_id)
        raise ApiError(503, "sms_unavailable", "The SMS could not be sent; retry") from None
    return {"phone_masked": mask_phone(phone), "expires_in": TTL_S, "resend_after": RESEND_AFTER_S}


@router.post("/auth/refresh")
def refresh_tokens(
    body: RefreshRequest, settings: SettingsDep, refresh: RefreshTokensDep
) -> dict[str, Any]:
    """Trade a refresh token for new tokens; each refresh token works once."""
    return refreshed_session(settings, refresh, body.refresh_token)


@router.post("/auth/logout", status_code=204)
def logout(body: RefreshRequest, refresh: RefreshTokensDep) -> Response:
    """Revoke this sign-in (the refresh token's whole family). Unknown tokens are ignored."""
    refresh.revoke(body.refresh_token)
    return Response(status_code=204)


@router.post("/auth/sms-codes", status_code=202)
def send_sms_code(
    body: SmsCodeRequest,
    principal: CurrentMember,
    codes: Codes,
    providers: Providers,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Text a six-digit code to bind this phone number (one a minute, ten a day)."""
    phone = normalize_phone(body.phone)
    code_id, code = codes.issue(phone, principal.subject)
    try:
        providers.sms.send(phone, settings.sms_template_verify_code, {"code": code})
    except ProviderError:
        codes.withdraw(code_id)
        raise ApiError(503, "sms_unavailable", "The SMS could not be sent; retry") from None
    return {"phone_masked": mask_phone(phone), "expires_in": TTL_S, "resend_after": RESEND_AFTER_S}


@router.get("/me")
def me(principal: CurrentMember, request: Request) -> dict[str, Any]:
    row = member_row(request.app.state.core.read_pool, principal.id)
    if row is None:  # signed in a moment ago: the read model has not caught up yet
        raise ApiError(503, "projection_behind", "Your profile is being set up; retry")
    return row


@router.patch("/me")
def update_me(body: ProfilePatch, principal: CurrentMember, members: Members) -> dict[str, Any]:
    return members.update_profile(principal.id, nickname=body.nickname, avatar_url=body.avatar_url)


@router.post("/me/phone")
def bind_phone(
    body: PhoneBinding,
    principal: CurrentMember,
    members: Members,
    codes: Codes,
    providers: Providers,
) -> dict[str, Any]:
    if body.wechat_code is not None:
        try:
            number = providers.wechat_login.phone_number(body.wechat_code)
        except WeChatLoginError as exc:
            raise wechat_problem(exc) from None
        phone = normalize_phone(number.pure, number.country_code)
        return members.bind_phone(principal.id, phone, method="wechat")
    assert body.phone is not None and body.sms_code is not None
    phone = normalize_phone(body.phone)
    codes.verify(phone, principal.subject, body.sms_code)
    return members.bind_phone(principal.id, phone, method="sms")
