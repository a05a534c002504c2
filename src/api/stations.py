"""Public station reads for the mini-program (M2, M3): nearby, compare, one station, history.

Coordinates come in as decimal degrees and are turned into integer micro-degrees exactly;
they go out as decimal strings (and the micro-degrees), for hand-off to a map app. Prices go
out in fen per litre with a display string in yuan.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from ledger.errors import NotFound
from ledger.money import fen_to_yuan_str
from projections import station_queries as q

router = APIRouter(prefix="/v1/stations", tags=["stations"])

Lat = Annotated[Decimal, Query(ge=-90, le=90, description="latitude, decimal degrees (GCJ-02)")]
Lng = Annotated[Decimal, Query(ge=-180, le=180, description="longitude, decimal degrees")]
RadiusKm = Annotated[Decimal, Query(gt=0, le=100, description="search radius, km (max 100)")]
Limit = Annotated[int, Query(ge=1, le=100)]
Change = Literal["up", "down", "same"]


class Price(BaseModel):
    grade: str
    price_fen_per_litre: int
    price_yuan: str
    previous_fen_per_litre: int | None
    previous_yuan: str | None
    change: Change
    changed_at: datetime | None


class NearbyStation(BaseModel):
    station_id: UUID
    code: str
    name: str
    address: str
    phone: str
    lat: str
    lng: str
    lat_e6: int
    lng_e6: int
    rating: str
    distance_m: int
    prices: list[Price]


class NearbyPage(BaseModel):
    items: list[NearbyStation]


class Grade(BaseModel):
    grade: str
    nozzles: list[int]
    price: Price | None


class StationDetail(BaseModel):
    station_id: UUID
    code: str
    name: str
    address: str
    phone: str
    lat: str
    lng: str
    lat_e6: int
    lng_e6: int
    rating: str
    status: Literal["open", "closed"]
    grades: list[Grade]


class CompareItem(BaseModel):
    station_id: UUID
    name: str
    address: str
    lat: str
    lng: str
    distance_m: int
    price: Price


class ComparePage(BaseModel):
    grade: str
    items: list[CompareItem]


class HistoryItem(BaseModel):
    position: int
    price: Price


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


def to_e6(degrees: Decimal) -> int:
    return int((degrees * q.E6).to_integral_value(rounding=ROUND_HALF_EVEN))


def degrees(e6: int) -> str:
    sign = "-" if e6 < 0 else ""
    whole, part = divmod(abs(e6), q.E6)
    return f"{sign}{whole}.{part:06d}"


def price(row: dict[str, Any]) -> Price:
    previous = row["previous_fen_per_litre"]
    return Price(
        grade=row["grade"],
        price_fen_per_litre=row["price_fen_per_litre"],
        price_yuan=fen_to_yuan_str(row["price_fen_per_litre"]),
        previous_fen_per_litre=previous,
        previous_yuan=None if previous is None else fen_to_yuan_str(previous),
        change=row["change"],
        changed_at=row["changed_at"],
    )


def place(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "lat": degrees(row["lat_e6"]),
        "lng": degrees(row["lng_e6"]),
        "lat_e6": row["lat_e6"],
        "lng_e6": row["lng_e6"],
    }


def rating(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10}"


@router.get("/nearby", response_model=NearbyPage)
def nearby(
    request: Request,
    lat: Lat,
    lng: Lng,
    radius_km: RadiusKm = Decimal(10),
    grade: str | None = None,
    limit: Limit = 20,
) -> NearbyPage:
    """Open stations within the radius, nearest first, with today's prices per grade."""
    with request.app.state.core.read_pool.connection() as conn:
        rows = q.nearby(
            conn, to_e6(lat), to_e6(lng), int(radius_km * 1000), grade=grade, limit=limit
        )
    return NearbyPage(
        items=[
            NearbyStation(
                **{k: r[k] for k in ("station_id", "code", "name", "address", "phone")},
                **place(r),
                rating=rating(r["rating"]),
                distance_m=r["distance_m"],
                prices=[price(p) for p in r["prices"]],
            )
            for r in rows
        ]
    )


@router.get("/compare", response_model=ComparePage)
def compare(
    request: Request,
    grade: str,
    lat: Lat,
    lng: Lng,
    radius_km: RadiusKm = Decimal(10),
    limit: Limit = 20,
) -> ComparePage:
    """One grade across the open stations nearby: cheapest first, then nearest."""
    with request.app.state.core.read_pool.connection() as conn:
        rows = q.compare(conn, grade, to_e6(lat), to_e6(lng), int(radius_km * 1000), limit)
    items = [
        CompareItem(
            station_id=r["station_id"],
            name=r["name"],
            address=r["address"],
            lat=degrees(r["lat_e6"]),
            lng=degrees(r["lng_e6"]),
            distance_m=r["distance_m"],
            price=price(r),
        )
        for r in rows
    ]
    return ComparePage(grade=grade, items=items)


@router.get("/{station_id}", response_model=StationDetail)
def station(request: Request, station_id: UUID) -> StationDetail:
    with request.app.state.core.read_pool.connection() as conn:
        row = q.station(conn, station_id)
    if row is None:
        raise NotFound(f"no station {station_id}")
    grades = [
        Grade(
            grade=g["grade"],
            nozzles=g["nozzles"],
            price=None if g["price_fen_per_litre"] is None else price(g),
        )
        for g in row["grades"]
    ]
    return StationDetail(
        **{k: row[k] for k in ("station_id", "code", "name", "address", "phone", "status")},
        **place(row),
        rating=rating(row["rating"]),
        grades=grades,
    )


@router.get("/{station_id}/prices/history", response_model=HistoryPage)
def price_history(
    request: Request,
    station_id: UUID,
    grade: str | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPage:
    """Price changes newest first; pass `next_cursor` back as `cursor` for the next page."""
    with request.app.state.core.read_pool.connection() as conn:
        if not q.station_exists(conn, station_id):
            raise NotFound(f"no station {station_id}")
        rows, after = q.price_history(
            conn,
            station_id,
            grade=grade,
            before=None if cursor is None else int(cursor),
            limit=limit,
        )
    return HistoryPage(
        items=[HistoryItem(position=r["position"], price=price(r)) for r in rows],
        next_cursor=None if after is None else str(after),
    )
