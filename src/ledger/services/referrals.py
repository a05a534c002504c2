"""Referral (M10): signed referral codes, binding a new member to their referrer, and the
coupons both sides (and every new member) receive.

A referral code is the referrer's member id and an HMAC-SHA256 tag over it (80 bits),
base64url without padding: 35 characters, so it fits in a QR code and in the sign-in
request. Codes cannot be forged without the key, and one member's code names only them.

Binding happens inside the registration command (`on_registered`): the new member, the
referral, and the coupons are one atomic save, so a crash never leaves one without the
others. A referrer is bound once and never changes; nobody refers themselves; and nobody is
bound below their own referee, at any depth (no cycles). A bad or forged code never stops a
sign-in: the member simply has no referrer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.coupon_template import CouponTemplate
from ledger.domain.member import Member
from ledger.errors import ReferralRejected
from ledger.ids import from_key
from ledger.services.coupons import Clock, Grant, grant_coupons
from ledger.services.fuel_orders import utcnow

log = logging.getLogger("ledger.referrals")

TAG_BYTES = 10
# The template the demo data creates; referral coupons come from it unless configured.
DEFAULT_REFERRAL_TEMPLATE_KEY = "default-referral"
MAX_CHAIN = 10_000  # a referral chain longer than this is refused as if it were a cycle


def create_default_template(coupons: Any) -> dict[str, Any]:
    """The default referral coupon (10 off 100, valid 30 days, no per-member limit), created
    by the demo data; a CouponService is passed in."""
    return coupons.create_template(  # type: ignore[no-any-return]
        key=DEFAULT_REFERRAL_TEMPLATE_KEY,
        title="Referral: 10 off 100",
        kind="threshold",
        amount_off_fen=10_00,
        min_amount_fen=100_00,
        valid_days=30,
        per_member_limit=None,
        total_quantity=1_000_000,
    )


def template_refs(text: str, default: Sequence[str] = ()) -> list[UUID]:
    """Templates named in a setting: ids, or the keys they were created with."""
    refs = [part.strip() for part in text.split(",") if part.strip()] or list(default)
    out = []
    for ref in refs:
        try:
            out.append(UUID(ref))
        except ValueError:
            out.append(CouponTemplate.create_id(ref))
    return out


def referral_key(secret: bytes) -> bytes:
    """A key of its own, derived from a configured secret (the JWT secret by default), so
    no token signature is ever a valid referral tag or the other way round."""
    return hmac.new(secret, b"fuel-ledger referral code v1", hashlib.sha256).digest()


def sign_code(key: bytes, member_id: UUID) -> str:
    tag = hmac.new(key, member_id.bytes, hashlib.sha256).digest()[:TAG_BYTES]
    return base64.urlsafe_b64encode(member_id.bytes + tag).decode().rstrip("=")


def read_code(key: bytes, code: str | None) -> UUID | None:
    """The referrer a code names, or None when it is malformed or its tag does not verify."""
    if not code or len(code) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 + TAG_BYTES:
        return None
    member_id = UUID(bytes=raw[:16])
    expected = hmac.new(key, member_id.bytes, hashlib.sha256).digest()[:TAG_BYTES]
    return member_id if hmac.compare_digest(raw[16:], expected) else None


class ReferralService:
    def __init__(
        self,
        runner: CommandRunner,
        *,
        secret: bytes,
        referral_templates: Sequence[UUID] = (),
        signup_templates: Sequence[UUID] = (),
        clock: Clock = utcnow,
    ) -> None:
        self.runner = runner
        self.key = referral_key(secret)
        self.referral_templates = list(referral_templates)
        self.signup_templates = list(signup_templates)
        self.clock = clock

    def code_for(self, member_id: UUID) -> str:
        return sign_code(self.key, member_id)

    def referrer_in(self, code: str | None) -> UUID | None:
        return read_code(self.key, code)

    # -- inside the registration command ----------------------------------------------------

    def on_registered(self, uow: UnitOfWork, member: Member) -> None:
        """MemberService calls this in the command that registers `member`."""
        self._give(uow, member.id, self.signup_templates, "signup", f"signup:{member.id}")
        referrer = self.referrer_in(member.referral_code)
        if referrer is None:
            if member.referral_code:
                log.info("member %s signed up with an invalid referral code", member.id)
            return
        try:
            # No cycle is possible: nobody can hold a code naming a member who did not exist.
            self._bind(uow, member, referrer, check_cycle=False)
        except ReferralRejected as exc:
            log.info("referral of %s by %s refused: %s", member.id, referrer, exc)

    # -- an explicit binding (back office, or a member who was not bound at sign-up) -------

    def bind(self, *, member_id: UUID, referral_code: str) -> dict[str, Any]:
        referrer = self.referrer_in(referral_code)
        if referrer is None:
            raise ReferralRejected("the referral code is not valid", reason="invalid_code")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            member = self._member(uow, member_id)
            if member is None:
                raise ReferralRejected("no such member", reason="unknown_member")
            bound = self._bind(uow, member, referrer)
            return {"member_id": str(member_id), "referrer": str(referrer), "bound": bound}

        command_id = from_key("referral-bind", f"{member_id}:{referrer}")
        return self.runner.run(command_id, ["bind", str(member_id), str(referrer)], decide)  # type: ignore[no-any-return]

    # -- rules ------------------------------------------------------------------------------

    def _bind(
        self, uow: UnitOfWork, member: Member, referrer_id: UUID, *, check_cycle: bool = True
    ) -> bool:
        if referrer_id == member.id:
            raise ReferralRejected("a member cannot refer themselves", reason="self")
        referrer = self._member(uow, referrer_id)
        if referrer is None:
            raise ReferralRejected("the referrer is not a member", reason="unknown_referrer")
        if member.referrer is None and check_cycle:
            self._refuse_cycle(uow, member.id, referrer)
        if not member.bind_referrer(referrer_id):
            return False  # bound to this referrer already: nothing more to give
        self._give(
            uow, member.id, self.referral_templates, "referral", f"referral:{member.id}:referee"
        )
        self._give(
            uow, referrer_id, self.referral_templates, "referral", f"referral:{member.id}:referrer"
        )
        return True

    def _refuse_cycle(self, uow: UnitOfWork, member_id: UUID, referrer: Member) -> None:
        """Walk up from the referrer; meeting the member means they would refer their own
        referrer (directly or further up)."""
        seen: set[UUID] = set()
        current: Member | None = referrer
        while current is not None and current.referrer is not None:
            if current.referrer == member_id or current.id in seen or len(seen) > MAX_CHAIN:
                raise ReferralRejected("the referrer was referred by this member", reason="cycle")
            seen.add(current.id)
            current = self._member(uow, current.referrer)

    def _give(
        self, uow: UnitOfWork, member_id: UUID, templates: Sequence[UUID], source: str, key: str
    ) -> None:
        for template_id in templates:
            try:
                template = uow.find(CouponTemplate, template_id)
            except TypeError:  # a misconfigured id naming another aggregate
                template = None
            if template is None:
                log.warning("%s coupon template %s does not exist", source, template_id)
                continue
            [(_, outcome, _)] = grant_coupons(
                uow, template, [Grant(member_id, key)], source=source, now=self.clock()
            )
            if outcome not in ("issued", "already"):
                log.info("%s coupon for %s not issued: %s", source, member_id, outcome)

    @staticmethod
    def _member(uow: UnitOfWork, member_id: UUID) -> Member | None:
        try:
            return uow.find(Member, member_id)
        except TypeError:
            return None
