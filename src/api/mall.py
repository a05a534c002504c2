"""The points mall for members (M13) and the member's points (M9)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import CurrentMember
from api.orders import IdempotencyKey
from api.payments_gateway import payer_id, provider_pay_params
from projections import distribution_queries as dq
from projections import mall as mall_queries

router = APIRouter(tags=["mall"])

MallOrderStatus = Literal[
    "awaiting_payment", "paid", "shipped", "picked_up", "cancelled", "expired"
]


class RedeemRequest(BaseModel):
    goods_id: UUID
    quantity: int = Field(default=1, ge=1, le=99)
    delivery: Literal["ship", "pickup"] = "pickup"
    address: str = Field(default="", max_length=200)


def _pool(request: Request) -> Any:
    return request.app.state.core.read_pool


@router.get("/v1/mall/categories")
def categories(request: Request) -> dict[str, Any]:
    return {"items": mall_queries.categories(_pool(request), active_only=True)}


@router.get("/v1/mall/goods")
def goods(
    request: Request,
    category_id: UUID | None = None,
    limit: int = Query(50, ge=1, le=100),
    offset: int = Query(0, ge=0, le=10_000),
) -> dict[str, Any]:
    items = mall_queries.goods_list(
        _pool(request), published_only=True, category_id=category_id, limit=limit, offset=offset
    )
    return {"items": items}


@router.post("/v1/mall/orders", status_code=201)
def redeem(
    body: RedeemRequest, member: CurrentMember, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    """Points only: paid at once. Points + cash: the points are held and the stock kept for
    the order's lifetime; the answer carries WeChat Pay's parameters for the cash part."""
    if request.app.state.core.mall.needs_cash(body.goods_id, body.quantity):
        payer_id(request, "wechat", member.id)  # refused before the points are held
    order = request.app.state.core.mall.redeem(member_id=member.id, key=key, **body.model_dump())
    if order["status"] != "awaiting_payment":
        return {"order": order, "payment": None}
    payment = provider_pay_params(
        request,
        "wechat",
        order["out_trade_no"],
        order["cash_fen"],
        f"Mall {order['goods_name']}"[:127],
        member.id,
    )
    return {"order": order, "payment": payment}


@router.get("/v1/me/mall-orders")
def my_mall_orders(
    member: CurrentMember,
    request: Request,
    status: MallOrderStatus | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    return mall_queries.orders(
        _pool(request), member_id=member.id, status=status, limit=limit, cursor=cursor
    )


@router.get("/v1/me/points")
def my_points(
    member: CurrentMember,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    """The balance, which lots expire when, and every movement of points, newest first."""
    return dq.member_points(_pool(request), member.id, limit=limit, cursor=cursor)
