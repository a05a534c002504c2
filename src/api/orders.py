"""Member fuel orders (M4, M5, M7): quote, create with the price locked, pay, list."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field

from api.auth import CurrentMember
from api.commands_thread import run_command
from api.errors import ApiError
from api.payments_gateway import payer_id, provider_pay_params
from projections import order_queries

router = APIRouter(prefix="/v1/orders", tags=["orders"])

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        description="Client-chosen key: a retry with the same key and body is the same order",
    ),
]


class OrderRequest(BaseModel):
    station_id: UUID
    grade: str = Field(min_length=1, max_length=8, examples=["92#"])
    nozzle: int = Field(ge=1, le=99)
    amount_fen: int = Field(ge=100, le=500_000, description="gross amount of fuel, in fen")
    coupon_id: str | None = None
    points: int = Field(default=0, ge=0, description="points the member wants to use")


class PayRequest(BaseModel):
    method: Literal["card", "wechat", "alipay"]
    card_fen: int = Field(default=0, ge=0, description="with wechat/alipay: part paid by card")


class PayAnswer(BaseModel):
    order: dict[str, Any]
    payment: dict[str, Any] | None = Field(
        default=None, description="wechat/alipay only: what the mini-program's pay call takes"
    )


def _core(request: Request) -> Any:
    return request.app.state.core


@router.post("/quote")
def quote_order(body: OrderRequest, member: CurrentMember, request: Request) -> dict[str, Any]:
    return _core(request).orders.quote(member_id=member.id, **body.model_dump())


@router.post("", status_code=201, response_model=dict[str, Any])
async def create_order(
    body: OrderRequest, member: CurrentMember, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    return await run_command(
        _core(request).orders.create, member_id=member.id, key=key, **body.model_dump()
    )


# The hottest write route. A response model puts the answer through pydantic's JSON
# serializer instead of jsonable_encoder; the command runs through `run_command`.
@router.post("/{order_id}/pay", response_model=PayAnswer, response_model_exclude_unset=True)
async def pay_order(
    order_id: UUID, body: PayRequest, member: CurrentMember, request: Request
) -> dict[str, Any]:
    core = _core(request)
    if body.method == "card":
        if body.card_fen:
            raise ApiError(422, "invalid_request", "card_fen goes with wechat or alipay")
        paid = await run_command(core.orders.pay_with_card, order_id=order_id, member_id=member.id)
        return {"order": paid}
    return await run_command(
        _pay_through_provider, request=request, order_id=order_id, body=body, member_id=member.id
    )


def _pay_through_provider(
    request: Request, order_id: UUID, body: PayRequest, member_id: UUID
) -> dict[str, Any]:
    """Holds the order, then asks the provider for its prepay (a network call)."""
    payer_id(request, body.method, member_id)  # refused before anything is held
    started = _core(request).orders.start_provider_payment(
        order_id=order_id, member_id=member_id, method=body.method, card_fen=body.card_fen
    )
    params = provider_pay_params(
        request,
        body.method,
        started["out_trade_no"],
        started["provider_fen"],
        "Fuel " + started["grade"],
        member_id,
    )
    return {"order": started, "payment": params}


@router.get("")
def list_orders(
    member: CurrentMember,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
    status: Literal["created", "paying", "paid", "expired", "refunded", "partially_refunded"]
    | None = None,
) -> dict[str, Any]:
    return order_queries.member_orders(
        _core(request).read_pool, member.id, limit=limit, cursor=cursor, status=status
    )


@router.get("/{order_id}")
def get_order(order_id: UUID, member: CurrentMember, request: Request) -> dict[str, Any]:
    row = order_queries.order(_core(request).read_pool, order_id)
    if row is None or row["member_id"] != member.id:
        raise ApiError(404, "not_found", "No such order")
    return row
