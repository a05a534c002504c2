"""Member commands: sign-in (registration on the first one), profile, phone binding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.member import Member, mask_phone
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
