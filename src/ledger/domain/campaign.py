"""A marketing campaign (M16, A13): red packets or coupons for an audience, within a budget.

A red-packet campaign gives each member `amount_fen` of card bonus, funded by
`platform:marketing`, until `budget_fen` is spent; a coupon campaign issues one coupon of a
template to each member until `max_coupons` are out. The campaign counts what it gave in
the same command that gives it, so its budget is never exceeded, however many gifts race
(the per-aggregate lock and optimistic concurrency serialise them). Each member gets at
most one gift per campaign.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.errors import InvalidCampaign
from ledger.ids import from_key

KINDS = ("red_packet", "coupon")
SEGMENTS = ("all_members",)
MAX_RED_PACKET_FEN = 100_000
MAX_AUDIENCE = 10_000


class Campaign(Aggregate):
    @staticmethod
    def create_id(key: str) -> UUID:
        return from_key("campaign", key)

    @event("Created")
    def __init__(
        self,
        key: str,
        title: str,
        kind: str,
        amount_fen: int,
        budget_fen: int,
        template_id: UUID | None,
        max_coupons: int,
        audience: dict[str, Any],
    ) -> None:
        self.key = key
        self.title = title
        self.kind = kind
        self.amount_fen = amount_fen
        self.budget_fen = budget_fen
        self.template_id = template_id
        self.max_coupons = max_coupons
        self.audience = audience  # {"member_ids": [...]} or {"segment": "all_members"}
        self.status = "draft"
        self.spent_fen = 0
        self.coupons_given = 0
        self.recipients: dict[str, str] = {}  # member id hex -> coupon id hex or ""

    def __deepcopy__(self, memo: dict[int, Any]) -> Campaign:
        clone = copying.clone(self)
        clone.recipients = dict(self.recipients)
        return clone

    @staticmethod
    def check_rules(
        title: str,
        kind: str,
        amount_fen: int,
        budget_fen: int,
        template_id: UUID | None,
        max_coupons: int,
        audience: dict[str, Any],
    ) -> None:
        def bad(message: str) -> InvalidCampaign:
            return InvalidCampaign(message)

        if not isinstance(title, str) or not title.strip() or len(title) > 64:
            raise bad("a title has 1 to 64 characters")
        if kind == "red_packet":
            if not 0 < amount_fen <= MAX_RED_PACKET_FEN or budget_fen < amount_fen:
                raise bad("a red packet is 1..100000 fen and the budget covers at least one")
            if template_id is not None or max_coupons:
                raise bad("a red-packet campaign takes no coupon template")
        elif kind == "coupon":
            if template_id is None or max_coupons < 1:
                raise bad("a coupon campaign takes a template_id and max_coupons >= 1")
            if amount_fen or budget_fen:
                raise bad("a coupon campaign takes no cash budget")
        else:
            raise bad(f"kind is one of {', '.join(KINDS)}")
        members, segment = audience.get("member_ids"), audience.get("segment")
        if (members is None) == (segment is None):
            raise bad("the audience is member_ids or a segment")
        if segment is not None and segment not in SEGMENTS:
            raise bad(f"segment is one of {', '.join(SEGMENTS)}")
        if members is not None and not 0 < len(members) <= MAX_AUDIENCE:
            raise bad(f"member_ids has 1..{MAX_AUDIENCE} members")

    @property
    def remaining_fen(self) -> int:
        return self.budget_fen - self.spent_fen

    @property
    def remaining_coupons(self) -> int:
        return self.max_coupons - self.coupons_given

    def has_given(self, member_id: UUID) -> bool:
        return member_id.hex in self.recipients

    def publish(self) -> bool:
        if self.status == "published":
            return False
        self._published()
        return True

    def record_gifts(self, gifts: dict[str, str]) -> None:
        """Members given a gift by one command: member id hex -> coupon id hex ("" for a red
        packet). Refused beyond the budget, or to a member given one already."""
        if self.status != "published":
            raise InvalidCampaign("the campaign is not published")
        if any(m in self.recipients for m in gifts):
            raise ValueError("a member was given a gift of this campaign already")
        if self.kind == "red_packet" and len(gifts) * self.amount_fen > self.remaining_fen:
            raise ValueError("over the budget")
        if self.kind == "coupon" and len(gifts) > self.remaining_coupons:
            raise ValueError("over the coupon budget")
        if gifts:
            self._given(gifts=gifts)

    @event("Published")
    def _published(self) -> None:
        self.status = "published"

    @event("Given")
    def _given(self, gifts: dict[str, str]) -> None:
        self.recipients.update(gifts)
        if self.kind == "red_packet":
            self.spent_fen += len(gifts) * self.amount_fen
        else:
            self.coupons_given += len(gifts)
