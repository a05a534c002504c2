"""Member commands: sign-in from WeChat or Alipay (registration on the first one), profile,
phone binding.

One person, two apps: the WeChat and the Alipay mini-program each sign in with their own
id. The link between them is the bound phone number: an Alipay sign-in that brings a phone
number verified by SMS joins the member who already has that number bound (the API finds
it), and that member then pays with Alipay too. Without one, the first Alipay sign-in
registers a member of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.member import AlipayAccount, AlipayAccountTaken, Member, mask_phone
from ledger.errors import MemberNotFound
from ledger.ids import from_key

PHONE_METHODS = ("wechat", "sms")
# Runs inside the registration command (sign-up coupons, referral binding): one atomic save.
RegistrationHook = Callable[[UnitOfWork, Member], None]


def member_view(member: Member) -> dict[str, Any]:
    return {
        "id": str(member.id),
        "nickname": member.nickname,
        "avatar_url": member.avatar_url,
        "phone": member.phone,
        "phone_masked": mask_phone(member.phone),
        "joined_at": member.joined_at.isoformat(),
        "referrer": str(member.referrer) if member.referrer else None,
        "wechat_linked": member.openid is not None,
        "alipay_linked": member.alipay_user_id is not None,
    }


class MemberService:
    def __init__(
        self, runner: CommandRunner, *, on_registered: Sequence[RegistrationHook] = ()
    ) -> None:
        self.runner = runner
        self.on_registered = list(on_registered)

    def sign_in(
        self, openid: str, unionid: str | None, *, referral_code: str | None = None
    ) -> dict[str, Any]:
        """The member for this WeChat user, registered on the first sign-in.

        `created` is True for exactly one caller, however many first sign-ins race.
        """
        member_id = Member.create_id(openid)
        if self._exists(member_id):
            return {"member_id": str(member_id), "created": False}
        # Every racing first sign-in runs the same command; the loser gets the winner's
        # receipt back, and only the winner's attempt token is in it.
        attempt = uuid4().hex

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            if uow.find(Member, member_id) is None:
                member = uow.add(
                    Member(openid=openid, unionid=unionid, referral_code=referral_code)
                )
                for hook in self.on_registered:
                    hook(uow, member)
            return {"member_id": str(member_id), "attempt": attempt}

        result = self.runner.run(from_key("member_registration", openid), ["register"], decide)
        return {"member_id": str(member_id), "created": result["attempt"] == attempt}

    def alipay_sign_in(
        self,
        user_id: str,
        *,
        link_to: UUID | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> dict[str, Any]:
        """The member holding this Alipay user id; else `link_to` (the member the caller
        found by a verified phone number) takes it; else a new member is registered with it
        (and with `phone` bound, when the caller verified one).

        `created` / `linked` are True for exactly one caller, however many sign-ins race:
        they all claim one AlipayAccount, and the store lets one claim win.
        """
        holder = self._alipay_holder(user_id)
        if holder is not None:
            return {"member_id": str(holder), "created": False, "linked": False}
        attempt = uuid4().hex

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            account = uow.find(AlipayAccount, AlipayAccount.create_id(user_id))
            if account is not None:
                return {"member_id": str(account.member_id), "attempt": None, "how": "held"}
            if link_to is not None:
                member, how = self._existing(uow, link_to), "linked"
                member.link_alipay(user_id)
            else:
                member, how = self._register_alipay(uow, user_id, phone, referral_code), "created"
            uow.add(AlipayAccount(user_id=user_id, member_id=member.id))
            return {"member_id": str(member.id), "attempt": attempt, "how": how}

        request = ["alipay_sign_in", user_id, str(link_to or ""), phone or ""]
        result = self.runner.run(from_key("alipay_sign_in", ":".join(request)), request, decide)
        mine = result["attempt"] == attempt
        return {
            "member_id": result["member_id"],
            "created": mine and result["how"] == "created",
            "linked": mine and result["how"] == "linked",
        }

    def link_alipay(self, member_id: UUID, user_id: str) -> dict[str, Any]:
        """Give a member an Alipay account directly (demo data, the back office)."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            member = self._existing(uow, member_id)
            account = uow.find(AlipayAccount, AlipayAccount.create_id(user_id))
            if account is not None and account.member_id != member_id:
                raise AlipayAccountTaken("this Alipay account belongs to another member")
            if account is None:
                member.link_alipay(user_id)
                uow.add(AlipayAccount(user_id=user_id, member_id=member_id))
            return member_view(member)

        command_id = from_key("alipay_link", f"{member_id}:{user_id}")
        return self.runner.run(command_id, ["alipay_link", str(member_id), user_id], decide)

    def payer_ids(self, member_id: UUID) -> dict[str, str | None]:
        """Who the member is at each payment provider ({"wechat": openid, "alipay": user
        id}, None where they never signed in), from the store: a link made a moment ago
        counts."""
        try:
            member: Any = self.runner.app.repository.get(member_id)
        except AggregateNotFoundError:
            raise MemberNotFound(f"no member {member_id}") from None
        if not isinstance(member, Member):
            raise MemberNotFound(f"no member {member_id}")
        return {"wechat": member.openid, "alipay": member.alipay_user_id}

    def _register_alipay(
        self, uow: UnitOfWork, user_id: str, phone: str | None, referral_code: str | None
    ) -> Member:
        member = uow.add(
            Member(openid=None, unionid=None, referral_code=referral_code, alipay_user_id=user_id)
        )
        if phone:
            member.bind_phone(phone, "sms")
        for hook in self.on_registered:
            hook(uow, member)
        return member

    def _alipay_holder(self, user_id: str) -> UUID | None:
        try:
            account: Any = self.runner.app.repository.get(AlipayAccount.create_id(user_id))
        except AggregateNotFoundError:
            return None
        return account.member_id if isinstance(account, AlipayAccount) else None

    def update_profile(
        self,
        member_id: UUID,
        *,
        nickname: str | None = None,
        avatar_url: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Fields left None are unchanged. Returns the member after the change."""
        command_id = from_key("member_profile", key) if key else uuid4()

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            member = self._existing(uow, member_id)
            member.update_profile(nickname=nickname, avatar_url=avatar_url)
            return member_view(member)

        payload = ["profile", str(member_id), nickname, avatar_url]
        return self.runner.run(command_id, payload, decide)

    def bind_phone(
        self, member_id: UUID, phone: str, *, method: str, key: str | None = None
    ) -> dict[str, Any]:
        """Bind a number the caller has verified (WeChat phone code or SMS one-time code)."""
        if method not in PHONE_METHODS:
            raise ValueError(f"unknown phone verification method {method!r}")
        command_id = from_key("member_phone", key) if key else uuid4()

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            member = self._existing(uow, member_id)
            member.bind_phone(phone, method)
            return member_view(member)

        return self.runner.run(command_id, ["phone", str(member_id), phone, method], decide)

    def get(self, member_id: UUID) -> dict[str, Any]:
        """The domain's own view (command replies, audits, tests; the API lists read models)."""
        try:
            member: Any = self.runner.app.repository.get(member_id)
        except AggregateNotFoundError:
            raise MemberNotFound(f"no member {member_id}") from None
        if not isinstance(member, Member):
            raise MemberNotFound(f"no member {member_id}")
        return member_view(member)

    def _exists(self, member_id: UUID) -> bool:
        try:
            self.runner.app.repository.get(member_id)
        except AggregateNotFoundError:
            return False
        return True

    @staticmethod
    def _existing(uow: UnitOfWork, member_id: UUID) -> Member:
        try:
            member = uow.find(Member, member_id)
        except TypeError:  # the id names another kind of aggregate
            member = None
        if member is None:
            raise MemberNotFound(f"no member {member_id}")
        return member
