"""Campaigns (M16, A13): create, publish, and give red packets or coupons within a budget.

A red packet is cash value on the member's card bonus, funded by `platform:marketing`: the
wallet's `RedPacketReceived` event carries that journal entry. The campaign counts every
gift in the same command, so its budget holds under any number of racing gifts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.campaign import Campaign
from ledger.domain.coupon_template import CouponTemplate
from ledger.errors import InvalidCampaign, NotFound
from ledger.ids import child, from_key
from ledger.services.coupons import (
    CHUNK,
    ISSUED,
    Clock,
    Grant,
    SegmentFn,
    _exists,
    _is_member,
    grant_coupons,
)
from ledger.services.fuel_orders import utcnow
from ledger.services.wallets import open_wallet


def campaign_view(c: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": str(c.id),
        "key": c.key,
        "title": c.title,
        "kind": c.kind,
        "status": c.status,
        "amount_fen": c.amount_fen,
        "budget_fen": c.budget_fen,
        "spent_fen": c.spent_fen,
        "template_id": str(c.template_id) if c.template_id else None,
        "max_coupons": c.max_coupons,
        "coupons_given": c.coupons_given,
        "recipients": len(c.recipients),
        "audience": c.audience,
    }


class CampaignService:
    def __init__(
        self, runner: CommandRunner, *, clock: Clock = utcnow, segments: SegmentFn | None = None
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.segments = segments

    def create(
        self,
        *,
        key: str,
        title: str,
        kind: str,
        member_ids: Sequence[UUID] | None = None,
        segment: str | None = None,
        amount_fen: int = 0,
        budget_fen: int = 0,
        template_id: UUID | None = None,
        max_coupons: int = 0,
    ) -> dict[str, Any]:
        audience: dict[str, Any] = (
            {"segment": segment}
            if segment is not None
            else {"member_ids": [str(m) for m in dict.fromkeys(member_ids)]}
            if member_ids is not None
            else {}
        )
        Campaign.check_rules(
            title, kind, amount_fen, budget_fen, template_id, max_coupons, audience
        )

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            if template_id is not None and not _exists(uow, CouponTemplate, template_id):
                raise NotFound(f"no coupon template {template_id}")
            campaign = uow.add(
                Campaign(
                    key=key,
                    title=title.strip(),
                    kind=kind,
                    amount_fen=amount_fen,
                    budget_fen=budget_fen,
                    template_id=template_id,
                    max_coupons=max_coupons,
                    audience=audience,
                )
            )
            return campaign_view(campaign)

        payload = [title, kind, amount_fen, budget_fen, str(template_id), max_coupons, audience]
        return self.runner.run(from_key("campaign", key), payload, decide)  # type: ignore[no-any-return]

    def publish(self, *, campaign_id: UUID) -> dict[str, Any]:
        """Publish and give to the whole audience, a chunk of members per command. Safe to
        repeat: a member gets one gift per campaign, and the budget caps the rest."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            campaign = self._campaign(uow, campaign_id)
            campaign.publish()
            return campaign_view(campaign)

        view = self.runner.run(from_key("campaign-publish", str(campaign_id)), ["publish"], decide)
        audience = view["audience"]
        if "segment" in audience:
            if self.segments is None:
                raise InvalidCampaign("segments are not available here")
            members = list(self.segments(audience["segment"]))
        else:
            members = [UUID(m) for m in audience["member_ids"]]
        counts: dict[str, int] = {}
        for start in range(0, len(members), CHUNK):
            given = self.give(campaign_id=campaign_id, member_ids=members[start : start + CHUNK])
            for row in given["results"]:
                counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
        return {**self.get(campaign_id), "audience_size": len(members), "counts": counts}

    def give(self, *, campaign_id: UUID, member_ids: Sequence[UUID]) -> dict[str, Any]:
        """One command: a gift to each of these members, as far as the budget goes.
        Outcomes: issued, already, budget_exhausted, unknown_member (and, for coupons, what
        the template says: exhausted, limit, ended)."""
        members = list(dict.fromkeys(member_ids))
        digest = hashlib.sha256(",".join(m.hex for m in members).encode()).hexdigest()

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            campaign = self._campaign(uow, campaign_id)
            if campaign.status != "published":
                raise InvalidCampaign("publish the campaign first")
            outcomes: dict[UUID, tuple[str, str | None]] = {}
            fresh = []
            for m in members:
                if campaign.has_given(m):
                    outcomes[m] = ("already", campaign.recipients[m.hex] or None)
                elif not _is_member(uow, m):
                    outcomes[m] = ("unknown_member", None)
                else:
                    fresh.append(m)
            gifts: dict[str, str] = {}
            if campaign.kind == "red_packet":
                affordable = campaign.remaining_fen // campaign.amount_fen
                for m in fresh:
                    if len(gifts) >= affordable:
                        outcomes[m] = ("budget_exhausted", None)
                        continue
                    open_wallet(uow, m).receive_red_packet(
                        child(campaign.id, f"red-packet:{m}"),
                        campaign.amount_fen,
                        campaign_id=str(campaign.id),
                    )
                    gifts[m.hex] = ""
                    outcomes[m] = (ISSUED, None)
            else:
                assert campaign.template_id is not None
                template = uow.get(CouponTemplate, campaign.template_id)
                grants = [Grant(m, f"campaign:{campaign.id}:{m}") for m in fresh]
                for grant, outcome, coupon_id in grant_coupons(
                    uow,
                    template,
                    grants,
                    source="campaign",
                    now=self.clock(),
                    at_most=campaign.remaining_coupons,
                ):
                    if outcome == "exhausted" and campaign.remaining_coupons <= len(gifts):
                        outcome = "budget_exhausted"
                    if coupon_id is not None:
                        gifts[grant.member_id.hex] = coupon_id.hex
                        outcome = ISSUED
                    outcomes[grant.member_id] = (outcome, str(coupon_id) if coupon_id else None)
            campaign.record_gifts(gifts)
            return {
                "campaign_id": str(campaign.id),
                "results": [
                    {"member_id": str(m), "outcome": outcomes[m][0], "coupon_id": outcomes[m][1]}
                    for m in members
                ],
            }

        command_id = from_key("campaign-give", f"{campaign_id}:{digest}")
        return self.runner.run(command_id, ["give", digest], decide)  # type: ignore[no-any-return]

    def get(self, campaign_id: UUID) -> dict[str, Any]:
        """The domain's own view (command replies, tests)."""
        uow = UnitOfWork(self.runner.app, self.runner.locks)
        try:
            return campaign_view(self._campaign(uow, campaign_id))
        finally:
            uow.release()

    @staticmethod
    def _campaign(uow: UnitOfWork, campaign_id: UUID) -> Campaign:
        try:
            campaign = uow.find(Campaign, campaign_id)
        except TypeError:
            campaign = None
        if campaign is None:
            raise NotFound(f"no campaign {campaign_id}", campaign_id=str(campaign_id))
        return campaign
