"""Read-model reports: a member's monthly statement (M14), a station's figures, orders and
customer habits (P3, P4, P8), platform figures (A13). Finance's reports are in api.finance."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import CurrentMember, Principal
from api.errors import ApiError
from api.permissions import require_permission
from api.station_events import StationReader, check_station
from projections import platform_figures, statements, station_queries, station_reports
from projections.station_figures import BUSINESS_TZ

router = APIRouter(tags=["reports"])

MAX_DAYS = 366
From = Annotated[date | None, Query(alias="from", description="first business day (CST)")]
To = Annotated[date | None, Query(alias="to", description="last business day, included")]
Limit = Annotated[int, Query(ge=1, le=500)]
Status = Literal["created", "paying", "paid", "expired", "refunded", "partially_refunded"]
FiguresViewer = Annotated[Principal, Depends(require_permission("figures", "view"))]


def _pool(request: Request) -> Any:
    return request.app.state.core.read_pool


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    """Default: the last 30 business days up to today."""
    end = end or datetime.now(BUSINESS_TZ).date()
    start = start or end - timedelta(days=29)
    if start > end:
        raise ApiError(422, "invalid_request", "`from` must not be after `to`")
    if (end - start).days >= MAX_DAYS:
        raise ApiError(422, "invalid_request", f"a period is at most {MAX_DAYS} days")
    return start, end


def _station(request: Request, principal: Principal, station_id: UUID) -> None:
    check_station(principal, station_id)
    with _pool(request).connection() as conn:
        if not station_queries.station_exists(conn, station_id):
            raise ApiError(404, "not_found", "No such station")


def _amounts(low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise ApiError(422, "invalid_request", "min_amount_fen must not exceed max_amount_fen")


# -- members ----------------------------------------------------------------------------------


@router.get("/v1/me/statements/{month}")
def monthly_statement(
    member: CurrentMember,
    request: Request,
    month: Annotated[str, Path(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$", examples=["2026-11"])],
) -> dict[str, Any]:
    """The month's fuel orders, top-ups, refunds, and every movement of the member's card,
    bonus and points with opening and closing balances (calendar month, CST)."""
    year, number = (int(part) for part in month.split("-"))
    return statements.member_statement(_pool(request), member.id, year, number)


# -- station partners -------------------------------------------------------------------------


@router.get("/v1/partner/stations/{station_id}/figures", tags=["partner"])
def station_figures(
    station_id: UUID, principal: StationReader, request: Request, start: From = None, end: To = None
) -> dict[str, Any]:
    """Orders, amount taken, income due net of fees, refunds: totals and by day, grade and
    payment method; income pending settlement and settled (from the journal)."""
    _station(request, principal, station_id)
    return station_reports.station_figures(_pool(request), station_id, *_period(start, end))


@router.get("/v1/partner/stations/{station_id}/orders", tags=["partner"])
def station_orders(
    station_id: UUID,
    principal: StationReader,
    request: Request,
    start: From = None,
    end: To = None,
    grade: Annotated[str | None, Query(max_length=8)] = None,
    status: Status | None = None,
    min_amount_fen: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    max_amount_fen: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The station's orders newest first, filtered; `next_cursor` continues the list."""
    _station(request, principal, station_id)
    _amounts(min_amount_fen, max_amount_fen)
    return station_reports.orders(
        _pool(request), station_id, start=start, end=end, grade=grade, status=status,
        min_amount=min_amount_fen, max_amount=max_amount_fen, limit=limit, cursor=cursor,
    )  # fmt: skip


@router.get("/v1/partner/stations/{station_id}/habits", tags=["partner"])
def station_habits(
    station_id: UUID, principal: StationReader, request: Request, start: From = None, end: To = None
) -> dict[str, Any]:
    """Customers of the period: visits per member, preferred grades, hours of the day, the
    average amount, new against returning."""
    _station(request, principal, station_id)
    return station_reports.habits(_pool(request), station_id, *_period(start, end))


# -- back office ------------------------------------------------------------------------------


@router.get("/v1/admin/figures", tags=["admin"])
def admin_figures(
    admin: FiguresViewer, request: Request, start: From = None, end: To = None
) -> dict[str, Any]:
    """Orders, turnover, fees, refunds, members, top-ups by day, and the top stations."""
    return platform_figures.figures(_pool(request), *_period(start, end))
