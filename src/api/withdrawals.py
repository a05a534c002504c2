"""Commission and withdrawals for members (M11, M12) and station partners (P5)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import CurrentMember
from api.orders import IdempotencyKey
from api.permissions import StationPartner
from projections import distribution_queries as dq

router = APIRouter(tags=["distribution"])


class BankAccount(BaseModel):
    bank_name: str = Field(min_length=2, max_length=64)
    account_name: str = Field(min_length=1, max_length=64)
    account_no: str = Field(pattern=r"^[0-9]{8,32}$")


class MemberWithdrawalRequest(BaseModel):
    amount_fen: int = Field(gt=0, le=100_000_000, description="held now; fee comes out of it")
    channel: Literal["wechat", "bank"] = "wechat"
    bank: BankAccount | None = None
    real_name: str | None = Field(
        default=None, max_length=32, description="needed for WeChat payouts from 2,000 yuan"
    )


class StationWithdrawalRequest(MemberWithdrawalRequest):
    channel: Literal["wechat", "bank"] = "bank"
    openid: str | None = Field(default=None, max_length=64, description="for channel wechat")


def _core(request: Request) -> Any:
    return request.app.state.core


def _with_confirmation(request: Request, page: dict[str, Any]) -> dict[str, Any]:
    """A WeChat payout waiting for the member: what wx.requestMerchantTransfer needs."""
    settings = _core(request).settings
    for item in page["items"]:
        package = item.pop("package", None)
        item["confirm"] = (
            {"mchId": settings.wechat_pay_mchid, "appId": settings.wechat_appid, "package": package}
            if package and item["provider_state"] == "WAIT_USER_CONFIRM"
            else None
        )
    return page


# -- members -------------------------------------------------------------------------------


@router.get("/v1/me/commissions")
def my_commissions(
    member: CurrentMember,
    request: Request,
    state: Literal["pending", "available", "clawed_back"] | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    pool = _core(request).read_pool
    page = dq.commissions(pool, referrer=member.id, state=state, limit=limit, cursor=cursor)
    return {"totals": dq.commission_totals(pool, member.id), **page}


@router.post("/v1/me/withdrawals", status_code=201)
def request_withdrawal(
    body: MemberWithdrawalRequest, member: CurrentMember, request: Request, key: IdempotencyKey
) -> dict[str, Any]:
    return _core(request).withdrawals.request_for_member(
        member_id=member.id,
        key=key,
        amount_fen=body.amount_fen,
        channel=body.channel,
        bank=body.bank.model_dump() if body.bank else None,
        real_name=body.real_name,
    )


@router.get("/v1/me/withdrawals")
def my_withdrawals(
    member: CurrentMember,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    page = dq.withdrawals(
        _core(request).read_pool, owner=f"member:{member.id}", limit=limit, cursor=cursor
    )
    return _with_confirmation(request, page)


# -- station partners ----------------------------------------------------------------------


@router.post("/v1/partner/stations/{station_id}/withdrawals", status_code=201)
def request_station_withdrawal(
    station_id: UUID,
    body: StationWithdrawalRequest,
    partner: StationPartner,
    request: Request,
    key: IdempotencyKey,
) -> dict[str, Any]:
    return _core(request).withdrawals.request_for_station(
        station_id=station_id,
        key=key,
        amount_fen=body.amount_fen,
        channel=body.channel,
        bank=body.bank.model_dump() if body.bank else None,
        openid=body.openid,
        real_name=body.real_name,
    )


@router.get("/v1/partner/stations/{station_id}/withdrawals")
def station_withdrawals(
    station_id: UUID,
    partner: StationPartner,
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    page = dq.withdrawals(
        _core(request).read_pool, owner=f"station:{station_id}", limit=limit, cursor=cursor
    )
    for item in page["items"]:
        item.pop("package", None)
    return page
