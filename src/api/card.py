"""The member's electronic fuel card (M8): balances, history, top-ups."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import CurrentMember
from api.errors import ApiError
from api.orders import IdempotencyKey
from api.payments_gateway import provider_pay_params
from projections import order_queries

router = APIRouter(prefix="/v1/card", tags=["card"])


class TopUpRequest(BaseModel):
    amount_fen: int = Field(ge=1_000, le=5_000_000)
    method: Literal["wechat", "alipay"]


@router.get("")
def card(member: CurrentMember, request: Request) -> dict[str, Any]:
    return order_queries.card_balances(request.app.state.core.read_pool, member.id)


@router.get("/transactions")
def card_transactions(
    member: CurrentMember,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    return order_queries.card_transactions(
        request.app.state.core.read_pool, member.id, limit=limit, cursor=cursor
    )


@router.post("/top-ups", status_code=201)
def top_up(
    body: TopUpRequest, member: CurrentMember, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    created = request.app.state.core.top_ups.create(
        member_id=member.id, key=key, amount_fen=body.amount_fen, method=body.method
    )
    if created["status"] != "created":
        raise ApiError(409, "top_up_not_payable", f"top-up is {created['status']}")
    params = provider_pay_params(
        request,
        body.method,
        created["out_trade_no"],
        body.amount_fen,
        "Fuel card top-up",
        UUID(created["member_id"]),
    )
    return {"top_up": created, "payment": params}
