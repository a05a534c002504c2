"""The member's coupons (M9): valid, used and expired, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from api.auth import CurrentMember
from projections import coupons as coupon_queries

router = APIRouter(prefix="/v1/me", tags=["coupons"])


@router.get("/coupons")
def my_coupons(
    member: CurrentMember,
    request: Request,
    state: Literal["valid", "used", "expired"] | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    """`display_state` says valid, used or expired; `state` is the coupon's own state
    (held, locked by an unpaid order, redeemed, expired)."""
    return coupon_queries.member_coupons(
        request.app.state.core.read_pool,
        member.id,
        now=datetime.now(UTC),
        state=state,
        limit=limit,
        cursor=cursor,
    )
