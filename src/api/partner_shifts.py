"""Cashier shifts (P9) under /v1/partner/stations/{station_id}/shifts: open, close with the
counted totals (which settles the station's income), list, and the report by day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.permissions import StationPartner
from ledger.services.shifts import ShiftService
from projections import shifts as shift_queries
from projections.shifts import BUSINESS_TZ, SqlShiftReadings

router = APIRouter(prefix="/stations/{station_id}/shifts", tags=["partner"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        description="Client-chosen key: a retry with the same key is the same request",
    ),
]


class OpenShift(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cashier: str = Field(min_length=1, max_length=64)


class CloseShift(BaseModel):
    model_config = ConfigDict(extra="forbid")
    counted_fen: dict[str, int] = Field(
        description="what the cashier counted per method (wechat, alipay, card), in fen"
    )


def shift_service(request: Request) -> ShiftService:
    core = _core(request)
    service = core.extras.get("shifts")
    if service is None:
        service = ShiftService(
            core.runner, SqlShiftReadings(core.read_pool), clock=core.orders.clock
        )
        core.extras["shifts"] = service
    return service  # type: ignore[no-any-return]


Shifts = Annotated[ShiftService, Depends(shift_service)]


def _core(request: Request) -> Any:
    return request.app.state.core


def _who(partner: Any) -> str:
    return f"partner:{partner.subject}"


def _today() -> date:
    return datetime.now(BUSINESS_TZ).date()


def _days(since: date | None, until: date | None) -> tuple[date, date]:
    last = until or _today()
    first = since or last
    if first > last or (last - first) > timedelta(days=366):
        raise ApiError(422, "invalid_request", "since..until must be at most a year, in order")
    return first, last


@router.post("", status_code=201)
def open_shift(
    station_id: UUID,
    body: OpenShift,
    partner: StationPartner,
    shifts: Shifts,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Open the next cashier shift (409 while the previous one is open)."""
    return shifts.open(
        station_id=station_id, cashier=body.cashier, opened_by=_who(partner), key=key or uuid4().hex
    )


@router.post("/{shift_id}/close")
def close_shift(
    station_id: UUID, shift_id: UUID, body: CloseShift, partner: StationPartner, shifts: Shifts
) -> dict[str, Any]:
    """Close with the counted totals: records the system's totals by method, the order and
    refund counts and the differences, and settles the station's income to date."""
    return shifts.close(
        station_id=station_id, shift_id=shift_id, counted=body.counted_fen, closed_by=_who(partner)
    )


@router.get("")
def list_shifts(
    station_id: UUID,
    partner: StationPartner,
    request: Request,
    since: date | None = None,
    until: date | None = None,
    status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
) -> dict[str, Any]:
    """Shifts opened on these days (Asia/Shanghai business days; default today)."""
    first, last = _days(since, until)
    rows = shift_queries.shifts(_core(request).read_pool, station_id, first, last, status)
    return {"items": rows}


@router.get("/report")
def shift_report(
    station_id: UUID,
    partner: StationPartner,
    request: Request,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """Closed shifts summed by day: system totals, counted, differences, refunds, settled."""
    first, last = _days(since, until)
    days = shift_queries.day_report(_core(request).read_pool, station_id, first, last)
    return {"since": first.isoformat(), "until": last.isoformat(), "days": days}


@router.get("/{shift_id}")
def get_shift(
    station_id: UUID, shift_id: UUID, partner: StationPartner, request: Request
) -> dict[str, Any]:
    row = shift_queries.shift_row(_core(request).read_pool, station_id, shift_id)
    if row is None:
        raise ApiError(404, "not_found", "No such shift (or not projected yet)")
    return row
