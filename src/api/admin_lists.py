"""Back-office lists (A3, A4): members, fuel orders and journal lines, filtered, with cursors.
The same filters drive the exports (api.exports)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from api.exports import fuel_order_filters, journal_filters
from api.instants import Instant
from api.permissions import require_permission
from ledger.errors import NotFound
from projections import office_queries as q
from projections import order_queries
from projections.office_queries import FuelOrderFilters, JournalFilters

router = APIRouter(tags=["admin"])
Limit = Annotated[int, Query(ge=1, le=200)]


def _core(request: Request) -> Any:
    return request.app.state.core


# -- members (A3) ----------------------------------------------------------------------------


@router.get("/members")
def list_members(
    request: Request,
    _: Any = Depends(require_permission("members", "view")),
    q_: Annotated[str | None, Query(alias="q", max_length=64)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    referrer: UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest first; q matches the nickname or the phone number."""
    return q.members(
        _core(request).read_pool,
        q=q_,
        since=since,
        until=until,
        referrer=referrer,
        limit=limit,
        cursor=cursor,
    )


@router.get("/members/{member_id}")
def get_member(
    member_id: UUID, request: Request, _: Any = Depends(require_permission("members", "view"))
) -> dict[str, Any]:
    row = q.member(_core(request).read_pool, member_id)
    if row is None:
        raise NotFound(f"no member {member_id}")
    return row


# -- fuel orders and the journal (A4) ---------------------------------------------------------


OrderFilters = Annotated[FuelOrderFilters, Depends(fuel_order_filters)]
LineFilters = Annotated[JournalFilters, Depends(journal_filters)]


@router.get("/fuel-orders")
def list_fuel_orders(
    request: Request,
    filters: OrderFilters,
    _: Any = Depends(require_permission("orders", "view")),
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every fuel order, newest first, filtered; `next_cursor` continues."""
    return q.fuel_orders(_core(request).read_pool, filters, limit=limit, cursor=cursor)


@router.get("/fuel-orders/{order_id}")
def get_fuel_order(
    order_id: UUID, request: Request, _: Any = Depends(require_permission("orders", "view"))
) -> dict[str, Any]:
    row = order_queries.order(_core(request).read_pool, order_id)
    if row is None:
        raise NotFound(f"no order {order_id}")
    return row


@router.get("/journal-lines")
def list_journal_lines(
    request: Request,
    filters: LineFilters,
    _: Any = Depends(require_permission("journal", "view")),
    limit: Limit = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Journal lines in log order, filtered by account, owner, asset, kind and time."""
    return q.journal_lines(_core(request).read_pool, filters, limit=limit, cursor=cursor)
