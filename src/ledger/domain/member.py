"""A member: who signed in through the mini-program, their profile and bound mobile number.

A member signs in from WeChat (an openid) or from Alipay (a user id); one person can be both.
The Alipay id belongs to exactly one member, which an AlipayAccount (keyed by the Alipay id)
records: two members can never claim it, as creating it twice collides in the store. The
link to an existing member is made by its bound phone number (see MemberService).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.errors import (
    DomainError,
    InvalidAvatarUrl,
    InvalidNickname,
    InvalidPhone,
    ReferralRejected,
)
from ledger.ids import from_key

NICKNAME_MAX = 32
AVATAR_URL_MAX = 512
PROFILE_FIELDS = ("nickname", "avatar_url")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAINLAND_MOBILE = re.compile(r"1[3-9]\d{9}")
_INTERNATIONAL = re.compile(r"\+[1-9]\d{6,14}")


def valid_nickname(nickname: str) -> str:
    cleaned = nickname.strip() if isinstance(nickname, str) else ""
    if not cleaned or len(cleaned) > NICKNAME_MAX or _CONTROL.search(cleaned):
        raise InvalidNickname(
            f"a nickname has 1 to {NICKNAME_MAX} printable characters", max_length=NICKNAME_MAX
        )
    return cleaned


def valid_avatar_url(url: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or len(url) > AVATAR_URL_MAX
        or _CONTROL.search(url)
        or any(c.isspace() for c in url)
    ):
        raise InvalidAvatarUrl(f"an avatar URL is https and at most {AVATAR_URL_MAX} characters")
    return url


def normalize_phone(phone: str, country_code: str = "86") -> str:
    """E.164: a bare 11-digit mainland mobile number gets +86; others must carry their +code."""
    raw = re.sub(r"[\s-]", "", phone) if isinstance(phone, str) else ""
    if _MAINLAND_MOBILE.fullmatch(raw) and country_code == "86":
        return "+86" + raw
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if not raw.startswith("+") and raw.isdigit() and country_code.isdigit():
        raw = f"+{country_code}{raw}"
    if not _INTERNATIONAL.fullmatch(raw) or (
        raw.startswith("+86") and not _MAINLAND_MOBILE.fullmatch(raw[3:])
    ):
        raise InvalidPhone("not a mobile number")
    return raw


class AlipayAccountTaken(DomainError):
    """The member already has another Alipay account."""

    code = "alipay_account_conflict"
    status = 409


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"


class Member(Aggregate):
    # Members registered before Alipay sign-in existed replay without it (class default).
    alipay_user_id: str | None = None

    @staticmethod
    def create_id(openid: str | None, alipay_user_id: str | None = None) -> UUID:
        # Two first sign-ins of one WeChat (or Alipay) user collide on version 1: one wins.
        if openid:
            return from_key("member", openid)
        if not alipay_user_id:
            raise ValueError("a member signs up with a WeChat openid or an Alipay user id")
        return from_key("member_alipay", alipay_user_id)

    @event("Registered")
    def __init__(
        self,
        openid: str | None,
        unionid: str | None,
        referral_code: str | None = None,
        alipay_user_id: str | None = None,
    ) -> None:
        self.openid = openid  # None for a member who signed up from Alipay
        self.alipay_user_id = alipay_user_id
        self.unionid = unionid
        # The code the member arrived with; the referral issue resolves it to a referrer.
        self.referral_code = referral_code
        self.referrer: UUID | None = None
        self.nickname: str | None = None
        self.avatar_url: str | None = None
        self.phone: str | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Member:
        return copying.clone(self)  # every attribute is an immutable value

    @property
    def joined_at(self) -> Any:
        return self.created_on

    def update_profile(self, **fields: str | None) -> dict[str, str | None]:
        """Validate what was given and record only what changed; returns the changes."""
        unknown = set(fields) - set(PROFILE_FIELDS)
        if unknown:
            raise TypeError(f"not profile fields: {sorted(unknown)}")
        wanted: dict[str, str | None] = {}
        if fields.get("nickname") is not None:
            wanted["nickname"] = valid_nickname(str(fields["nickname"]))
        if fields.get("avatar_url") is not None:
            wanted["avatar_url"] = valid_avatar_url(str(fields["avatar_url"]))
        changes = {k: v for k, v in wanted.items() if getattr(self, k) != v}
        if changes:
            self._profile_updated(changes=changes)
        return changes

    def bind_phone(self, phone: str, method: str) -> bool:
        """Bind a verified number (already normalised); False when it was bound already."""
        phone = normalize_phone(phone)
        if phone == self.phone:
            return False
        self._phone_bound(phone=phone, method=method)
        return True

    def link_alipay(self, user_id: str) -> bool:
        """Add the Alipay account; False when it is this one already. A member has at most
        one (the caller has claimed the AlipayAccount for it in the same command)."""
        if self.alipay_user_id == user_id:
            return False
        if self.alipay_user_id is not None:
            raise AlipayAccountTaken("this member already has another Alipay account")
        self._alipay_linked(user_id=user_id)
        return True

    def bind_referrer(self, referrer: UUID) -> bool:
        """Bind who referred this member, once and for good: never rebound, never self.
        False when it is that referrer already. (Cycles are refused by the caller, which
        can see the referrer's own chain.)"""
        if self.referrer == referrer:
            return False
        if self.referrer is not None:
            raise ReferralRejected("the member has a referrer already", reason="already_bound")
        if referrer == self.id:
            raise ReferralRejected("a member cannot refer themselves", reason="self")
        self._referrer_bound(referrer=referrer)
        return True

    @event("ProfileUpdated")
    def _profile_updated(self, changes: dict[str, str | None]) -> None:
        for name, value in changes.items():
            setattr(self, name, value)

    @event("PhoneBound")
    def _phone_bound(self, phone: str, method: str) -> None:
        self.phone = phone

    @event("ReferrerBound")
    def _referrer_bound(self, referrer: UUID) -> None:
        self.referrer = referrer

    @event("AlipayLinked")
    def _alipay_linked(self, user_id: str) -> None:
        self.alipay_user_id = user_id


class AlipayAccount(Aggregate):
    """Which member an Alipay user id belongs to: the uniqueness of that id, in the store."""

    @staticmethod
    def create_id(user_id: str) -> UUID:
        return from_key("alipay_account", user_id)

    @event("Claimed")
    def __init__(self, user_id: str, member_id: UUID) -> None:
        self.user_id = user_id
        self.member_id = member_id
