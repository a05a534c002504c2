"""Back office for distribution (A7): referral relations, commissions, withdrawal review."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.admin_log import ChangeLog
from api.auth import Principal
from api.errors import ApiError
from api.permissions import require_permission
from projections import distribution_queries as dq

router = APIRouter(prefix="/v1/admin", tags=["admin: distribution"])

ViewWithdrawals = Annotated[Principal, Depends(require_permission("withdrawals", "view"))]
ReviewWithdrawals = Annotated[Principal, Depends(require_permission("withdrawals", "approve"))]
ViewDistribution = Annotated[Principal, Depends(require_permission("distribution", "view"))]
WithdrawalState = Literal["requested", "approved", "sent", "paid", "rejected", "failed"]


class Rejection(BaseModel):
    reason: str = Field(min_length=2, max_length=200)


class BankResult(BaseModel):
    state: Literal["SUCCESS", "FAIL"]
    reason: str = Field(default="", max_length=200)


def _core(request: Request) -> Any:
    return request.app.state.core


def _by(admin: Principal) -> str:
    return f"admin:{admin.subject}"


def _row(request: Request, withdrawal_id: UUID) -> dict[str, Any]:
    row = dq.withdrawal(_core(request).read_pool, withdrawal_id)
    if row is None:
        raise ApiError(404, "not_found", "No such withdrawal")
    return row


@router.get("/withdrawals")
def list_withdrawals(
    admin: ViewWithdrawals,
    request: Request,
    state: WithdrawalState | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    page = dq.withdrawals(_core(request).read_pool, state=state, limit=limit, cursor=cursor)
    for item in page["items"]:
        item.pop("package", None)
    return page


@router.post("/withdrawals/{withdrawal_id}/approve")
def approve(
    withdrawal_id: UUID, admin: ReviewWithdrawals, request: Request, log: ChangeLog
) -> dict[str, Any]:
    after = _core(request).withdrawals.approve(withdrawal_id=withdrawal_id, by=_by(admin))
    log.change("withdrawals", "approve", target=str(withdrawal_id), after=after)
    return after


@router.post("/withdrawals/{withdrawal_id}/reject")
def reject(
    withdrawal_id: UUID,
    body: Rejection,
    admin: ReviewWithdrawals,
    request: Request,
    log: ChangeLog,
) -> dict[str, Any]:
    after = _core(request).withdrawals.reject(
        withdrawal_id=withdrawal_id, by=_by(admin), reason=body.reason
    )
    log.change("withdrawals", "reject", target=str(withdrawal_id), after=after)
    return after


@router.post("/withdrawals/{withdrawal_id}/retry")
def retry(
    withdrawal_id: UUID, admin: ReviewWithdrawals, request: Request, log: ChangeLog
) -> dict[str, Any]:
    """A payout that FAILED (or was CANCELLED) goes again: new hold, new out-bill number."""
    after = _core(request).withdrawals.retry(withdrawal_id=withdrawal_id, by=_by(admin))
    log.change("withdrawals", "retry", target=str(withdrawal_id), after=after)
    return after


@router.post("/withdrawals/{withdrawal_id}/bank-result")
def bank_result(
    withdrawal_id: UUID,
    body: BankResult,
    admin: ReviewWithdrawals,
    request: Request,
    log: ChangeLog,
) -> dict[str, Any]:
    """What the bank answered for a transfer-file row (finance reads the bank statement)."""
    row = _row(request, withdrawal_id)
    if row["channel"] != "bank" or not row["out_bill_no"]:
        raise ApiError(409, "withdrawal_not_allowed", "Not a bank payout that has been sent")
    after = _core(request).withdrawals.record_payout_result(
        out_bill_no=row["out_bill_no"], state=body.state, fail_reason=body.reason
    )
    log.change("withdrawals", "bank_result", target=str(withdrawal_id), after=after)
    return after


@router.get("/distribution/referrals")
def referrals(
    admin: ViewDistribution,
    request: Request,
    referrer: UUID | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    return dq.referrals(_core(request).read_pool, referrer=referrer, limit=limit, cursor=cursor)


@router.get("/distribution/commissions")
def commissions(
    admin: ViewDistribution,
    request: Request,
    referrer: UUID | None = None,
    state: Literal["pending", "available", "clawed_back"] | None = None,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> dict[str, Any]:
    return dq.commissions(
        _core(request).read_pool, referrer=referrer, state=state, limit=limit, cursor=cursor
    )
