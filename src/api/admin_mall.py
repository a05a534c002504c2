"""Back office for the points mall (A1, A5): categories, goods, stock, orders."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field, HttpUrl

from api.admin_log import ChangeLog
from api.auth import Principal
from api.mall import MallOrderStatus
from api.permissions import require_permission
from projections import mall as mall_queries

router = APIRouter(prefix="/v1/admin/mall", tags=["admin: mall"])

ViewMall = Annotated[Principal, Depends(require_permission("mall", "view"))]
ChangeMall = Annotated[Principal, Depends(require_permission("mall", "change"))]
OptionalKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        description="Optional: a retry with the same key creates nothing twice",
    ),
]


class CategoryIn(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    sort: int = Field(default=0, ge=0, le=10_000)


class CategoryPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=40)
    sort: int | None = Field(default=None, ge=0, le=10_000)
    active: bool | None = None


class GoodsIn(BaseModel):
    category_id: UUID | None = None
    name: str = Field(min_length=1, max_length=80)
    images: list[HttpUrl] = Field(default_factory=list, max_length=12)
    description: str = Field(default="", max_length=4_000)
    points_price: int = Field(ge=0, le=100_000_000)
    cash_price_fen: int = Field(default=0, ge=0, le=10_000_000)
    stock: int = Field(default=0, ge=0, le=1_000_000)


class GoodsPatch(BaseModel):
    category_id: UUID | None = None
    name: str | None = Field(default=None, min_length=1, max_length=80)
    images: list[HttpUrl] | None = Field(default=None, max_length=12)
    description: str | None = Field(default=None, max_length=4_000)
    points_price: int | None = Field(default=None, ge=0, le=100_000_000)
    cash_price_fen: int | None = Field(default=None, ge=0, le=10_000_000)
    stock: int | None = Field(default=None, ge=0, le=1_000_000, description="what is on hand")


class Shipment(BaseModel):
    tracking_no: str = Field(min_length=4, max_length=40)


class Cancellation(BaseModel):
    reason: str = Field(min_length=2, max_length=200)


def _mall(request: Request) -> Any:
    return request.app.state.core.mall


def _by(admin: Principal) -> str:
    return f"admin:{admin.subject}"


def _goods_fields(body: BaseModel) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    if "images" in fields and fields["images"] is not None:
        fields["images"] = [str(u) for u in fields["images"]]
    if fields.get("category_id") is not None:
        fields["category_id"] = str(fields["category_id"])
    return fields


@router.get("/categories")
def categories(admin: ViewMall, request: Request) -> dict[str, Any]:
    return {"items": mall_queries.categories(request.app.state.core.read_pool, active_only=False)}


@router.post("/categories", status_code=201)
def create_category(
    body: CategoryIn, admin: ChangeMall, request: Request, log: ChangeLog, key: OptionalKey = None
) -> dict[str, Any]:
    after = _mall(request).create_category(key=key or uuid4().hex, name=body.name, sort=body.sort)
    log.change("mall", "create_category", target=after["category_id"], after=after)
    return after


@router.patch("/categories/{category_id}")
def edit_category(
    category_id: UUID, body: CategoryPatch, admin: ChangeMall, request: Request, log: ChangeLog
) -> dict[str, Any]:
    after = _mall(request).update_category(category_id, **body.model_dump(exclude_unset=True))
    log.change("mall", "edit_category", target=str(category_id), after=after)
    return after


@router.get("/goods")
def goods(
    admin: ViewMall,
    request: Request,
    category_id: UUID | None = None,
    limit: int = Query(50, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> dict[str, Any]:
    items = mall_queries.goods_list(
        request.app.state.core.read_pool,
        published_only=False,
        category_id=category_id,
        limit=limit,
        offset=offset,
    )
    return {"items": items}


@router.post("/goods", status_code=201)
def create_goods(
    body: GoodsIn, admin: ChangeMall, request: Request, log: ChangeLog, key: OptionalKey = None
) -> dict[str, Any]:
    after = _mall(request).create_goods(key=key or uuid4().hex, **_goods_fields(body))
    log.change("mall", "create_goods", target=after["goods_id"], after=after)
    return after


@router.patch("/goods/{goods_id}")
def edit_goods(
    goods_id: UUID, body: GoodsPatch, admin: ChangeMall, request: Request, log: ChangeLog
) -> dict[str, Any]:
    after = _mall(request).update_goods(goods_id, **_goods_fields(body))
    log.change("mall", "edit_goods", target=str(goods_id), after=after)
    return after


@router.post("/goods/{goods_id}/{action}")
def publish_or_withdraw(
    goods_id: UUID,
    action: Literal["publish", "withdraw"],
    admin: ChangeMall,
    request: Request,
    log: ChangeLog,
) -> dict[str, Any]:
    after = _mall(request).set_published(goods_id, action == "publish")
    log.change("mall", action, target=str(goods_id), after=after)
    return after


@router.get("/orders")
def orders(
    admin: ViewMall,
    request: Request,
    status: MallOrderStatus | None = None,
    member_id: UUID | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    return mall_queries.orders(
        request.app.state.core.read_pool,
        member_id=member_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.post("/orders/{order_id}/ship")
def ship(
    order_id: UUID, body: Shipment, admin: ChangeMall, request: Request, log: ChangeLog
) -> dict[str, Any]:
    after = _mall(request).ship(order_id=order_id, by=_by(admin), tracking_no=body.tracking_no)
    log.change("mall", "ship", target=str(order_id), after=after)
    return after


@router.post("/orders/{order_id}/pickup")
def pick_up(order_id: UUID, admin: ChangeMall, request: Request, log: ChangeLog) -> dict[str, Any]:
    after = _mall(request).pick_up(order_id=order_id, by=_by(admin))
    log.change("mall", "pickup", target=str(order_id), after=after)
    return after


@router.post("/orders/{order_id}/cancel")
def cancel(
    order_id: UUID, body: Cancellation, admin: ChangeMall, request: Request, log: ChangeLog
) -> dict[str, Any]:
    """Points back to the member's lots, cash refunded through WeChat Pay, stock back."""
    after = _mall(request).cancel(order_id=order_id, by=_by(admin), reason=body.reason)
    log.change("mall", "cancel", target=str(order_id), after=after)
    return after
