"""Back office: coupon templates, issuing, every issued coupon (A6); campaigns and red
packets (A13, M16). Thin: parse, authorise, call one service method or one query."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import Principal
from api.instants import AwareInstant
from api.orders import IdempotencyKey
from api.permissions import require_permission
from ledger.errors import InvalidCouponTemplate
from projections import coupons as coupon_queries

router = APIRouter(prefix="/v1/admin", tags=["admin: coupons and campaigns"])
Limit = Annotated[int, Query(ge=1, le=200)]
MAX_MEMBERS = 10_000


def admin_may(resource: str, action: str) -> Callable[..., Principal]:
    """The one place these routes decide who may call them: an admin token whose role
    grants `resource:action` in the back-office permission matrix (api.permissions)."""
    return require_permission(resource, action)


CouponsView = Annotated[Principal, Depends(admin_may("coupons", "view"))]
CouponsChange = Annotated[Principal, Depends(admin_may("coupons", "change"))]
CampaignsView = Annotated[Principal, Depends(admin_may("campaigns", "view"))]
CampaignsChange = Annotated[Principal, Depends(admin_may("campaigns", "change"))]


def _core(request: Request) -> Any:
    return request.app.state.core


class Audience(BaseModel):
    """Either a list of member ids or a named segment."""

    model_config = ConfigDict(extra="forbid")
    member_ids: list[UUID] | None = Field(default=None, min_length=1, max_length=MAX_MEMBERS)
    segment: Literal["all_members"] | None = None

    @model_validator(mode="after")
    def _one_audience(self) -> Audience:
        if (self.member_ids is None) == (self.segment is None):
            raise ValueError("send either member_ids or segment")
        return self


class TemplateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=64)
    kind: Literal["fixed", "threshold", "percent"]
    amount_off_fen: int = Field(default=0, ge=0, le=500_000)
    percent_off_bps: int = Field(default=0, ge=0, le=9_999, description="1000 = 10% off")
    max_discount_fen: int | None = Field(default=None, ge=1, le=500_000)
    min_amount_fen: int = Field(default=0, ge=0, le=5_000_000)
    grades: list[str] = Field(default_factory=list, max_length=20, description="empty: all")
    station_ids: list[UUID] = Field(
        default_factory=list, max_length=1_000, description="empty: all"
    )
    funded_by: Literal["platform", "station"] = "platform"
    valid_from: AwareInstant | None = None
    valid_until: AwareInstant | None = None
    valid_days: int | None = Field(default=None, ge=1, le=3_660)
    per_member_limit: int | None = Field(default=1, ge=1, le=10_000, description="null: no limit")
    total_quantity: int = Field(ge=1, le=100_000_000)
    stackable: bool = False


class CampaignRequest(Audience):
    title: str = Field(min_length=1, max_length=64)
    kind: Literal["red_packet", "coupon"]
    amount_fen: int = Field(default=0, ge=0, le=100_000, description="each red packet")
    budget_fen: int = Field(default=0, ge=0, le=1_000_000_000)
    template_id: UUID | None = None
    max_coupons: int = Field(default=0, ge=0, le=10_000_000)


# -- coupon templates and coupons (A6) ---------------------------------------------------------


@router.post("/coupon-templates", status_code=201)
def create_template(
    body: TemplateRequest, admin: CouponsChange, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    fields = body.model_dump(exclude={"funded_by"})
    funder = None
    if body.funded_by == "station":
        if len(body.station_ids) != 1:
            raise InvalidCouponTemplate("a station-funded coupon names exactly that station")
        funder = body.station_ids[0]
    return _core(request).coupons.create_template(key=key, funder_station_id=funder, **fields)


@router.get("/coupon-templates")
def list_templates(
    admin: CouponsView, request: Request, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    return coupon_queries.templates(_core(request).read_pool, limit=limit, cursor=cursor)


@router.post("/coupon-templates/{template_id}/issue")
def issue_coupons(
    template_id: UUID, body: Audience, admin: CouponsChange, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    return _core(request).coupons.issue_many(
        template_id=template_id,
        key=f"admin:{key}",
        member_ids=body.member_ids,
        segment=body.segment,
        source="segment" if body.segment else "admin",
    )


@router.get("/coupons")
def list_coupons(
    admin: CouponsView,
    request: Request,
    state: Literal["held", "locked", "redeemed", "expired"] | None = None,
    template_id: UUID | None = None,
    member_id: UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    return coupon_queries.all_coupons(
        _core(request).read_pool,
        state=state,
        template_id=template_id,
        member_id=member_id,
        limit=limit,
        cursor=cursor,
    )


# -- campaigns and red packets (A13, M16) ------------------------------------------------------


@router.post("/campaigns", status_code=201)
def create_campaign(
    body: CampaignRequest, admin: CampaignsChange, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    return _core(request).campaigns.create(key=key, **body.model_dump())


@router.post("/campaigns/{campaign_id}/publish")
def publish_campaign(campaign_id: UUID, admin: CampaignsChange, request: Request) -> dict:
    """Publish and give to the audience now; repeating it gives nobody a second gift."""
    return _core(request).campaigns.publish(campaign_id=campaign_id)  # type: ignore[no-any-return]


@router.get("/campaigns")
def list_campaigns(
    admin: CampaignsView, request: Request, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    return coupon_queries.campaigns(_core(request).read_pool, limit=limit, cursor=cursor)
