"""The read-model queries behind /v1/stations: nearby, compare, one station, price history.

Nearby and compare cut the table down with a bounding box on the integer coordinates (an
index range scan on read.stations (lat_e6, lng_e6)), then compute the great-circle distance
(read.distance_m, haversine) for what is left, filter on the radius, order and limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import dict_row

from projections.stations import change_of

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius; read.distance_m uses the same
E6 = 1_000_000
LAT_LIMIT, LNG_LIMIT = 90 * E6, 180 * E6


@dataclass(frozen=True)
class Box:
    """Latitude range and one or two longitude ranges (two across the antimeridian, none
    when the circle reaches a pole), all in micro-degrees, holding every point in range."""

    lat_lo: int
    lat_hi: int
    lng_ranges: tuple[tuple[int, int], ...]


def bounding_box(lat_e6: int, lng_e6: int, radius_m: int) -> Box:
    # One micro-degree of slack on each side for the rounding of the float arithmetic.
    dlat = math.degrees(radius_m / EARTH_RADIUS_M) * E6 + 1
    lat_lo = max(-LAT_LIMIT, math.floor(lat_e6 - dlat))
    lat_hi = min(LAT_LIMIT, math.ceil(lat_e6 + dlat))
    widest = max(abs(lat_lo), abs(lat_hi))
    if widest >= LAT_LIMIT:
        return Box(lat_lo, lat_hi, ())
    # A parallel is shortest at the latitude farthest from the equator: the widest span.
    dlng = dlat / math.cos(math.radians(widest / E6)) + 1
    if dlng >= LNG_LIMIT:
        return Box(lat_lo, lat_hi, ())
    lo, hi = math.floor(lng_e6 - dlng), math.ceil(lng_e6 + dlng)
    if lo < -LNG_LIMIT:
        return Box(lat_lo, lat_hi, ((lo + 2 * LNG_LIMIT, LNG_LIMIT), (-LNG_LIMIT, hi)))
    if hi > LNG_LIMIT:
        return Box(lat_lo, lat_hi, ((lo, LNG_LIMIT), (-LNG_LIMIT, hi - 2 * LNG_LIMIT)))
    return Box(lat_lo, lat_hi, ((lo, hi),))


def _where(box: Box | None, params: dict[str, Any]) -> str:
    """The prefilter for `box` (None: no prefilter, the benchmark's naive baseline)."""
    if box is None:
        return "TRUE"
    params.update(lat_lo=box.lat_lo, lat_hi=box.lat_hi)
    clauses = ["s.lat_e6 BETWEEN %(lat_lo)s AND %(lat_hi)s"]
    ranges = []
    for i, (lo, hi) in enumerate(box.lng_ranges):
        params[f"lng_lo{i}"], params[f"lng_hi{i}"] = lo, hi
        ranges.append(f"s.lng_e6 BETWEEN %(lng_lo{i})s AND %(lng_hi{i})s")
    if ranges:
        clauses.append("(" + " OR ".join(ranges) + ")")
    return " AND ".join(clauses)


DISTANCE = (
    "CROSS JOIN LATERAL (SELECT read.distance_m(%(lat)s::integer, %(lng)s::integer, "
    "s.lat_e6, s.lng_e6) AS m) AS d"
)

NEARBY = """
SELECT n.*, coalesce(pr.prices, '[]'::json) AS prices FROM (
    SELECT s.station_id, s.code, s.name, s.address, s.phone, s.lat_e6, s.lng_e6, s.rating,
           s.status, round(d.m)::bigint AS distance_m
    FROM read.stations s {distance}
    WHERE {where} AND s.status = 'open' AND d.m <= %(radius_m)s {grade}
    ORDER BY d.m, s.station_id
    LIMIT %(limit)s
) n
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
        'grade', p.grade, 'price_fen_per_litre', p.price_fen_per_litre,
        'previous_fen_per_litre', p.previous_fen_per_litre, 'change', p.change,
        'changed_at', p.changed_at) ORDER BY p.grade) AS prices
    FROM read.station_prices p
    WHERE p.station_id = n.station_id AND p.price_fen_per_litre IS NOT NULL
) pr ON TRUE
ORDER BY n.distance_m, n.station_id
"""

SELLS_GRADE = (
    "AND EXISTS (SELECT 1 FROM read.station_prices g WHERE g.station_id = s.station_id "
    "AND g.grade = %(grade)s AND g.price_fen_per_litre IS NOT NULL)"
)

COMPARE = """
SELECT s.station_id, s.code, s.name, s.address, s.lat_e6, s.lng_e6,
       round(d.m)::bigint AS distance_m, p.grade, p.price_fen_per_litre,
       p.previous_fen_per_litre, p.change, p.changed_at
FROM read.stations s {distance}
JOIN read.station_prices p ON p.station_id = s.station_id AND p.grade = %(grade)s
WHERE {where} AND s.status = 'open' AND d.m <= %(radius_m)s
  AND p.price_fen_per_litre IS NOT NULL
ORDER BY p.price_fen_per_litre, d.m, s.station_id
LIMIT %(limit)s
"""


def nearby_sql(
    lat_e6: int,
    lng_e6: int,
    radius_m: int,
    *,
    grade: str | None = None,
    limit: int = 20,
    prefilter: bool = True,
) -> tuple[str, dict[str, Any]]:
    """The nearby query and its parameters (apart, so that the benchmark can EXPLAIN it)."""
    params: dict[str, Any] = {
        "lat": lat_e6,
        "lng": lng_e6,
        "radius_m": radius_m,
        "limit": limit,
        "grade": grade,
    }
    box = bounding_box(lat_e6, lng_e6, radius_m) if prefilter else None
    sql = NEARBY.format(
        distance=DISTANCE, where=_where(box, params), grade=SELLS_GRADE if grade else ""
    )
    return sql, params


def nearby(
    conn: Connection[Any],
    lat_e6: int,
    lng_e6: int,
    radius_m: int,
    *,
    grade: str | None = None,
    limit: int = 20,
    prefilter: bool = True,
) -> list[dict[str, Any]]:
    """Open stations within `radius_m`, nearest first, each with its priced grades; with
    `grade`, only stations that sell it. `prefilter=False` is the benchmark's baseline."""
    sql, params = nearby_sql(
        lat_e6, lng_e6, radius_m, grade=grade, limit=limit, prefilter=prefilter
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params, prepare=True).fetchall()


def compare(
    conn: Connection[Any], grade: str, lat_e6: int, lng_e6: int, radius_m: int, limit: int = 20
) -> list[dict[str, Any]]:
    """One grade across the open stations within `radius_m`: cheapest first, then nearest."""
    params: dict[str, Any] = {
        "lat": lat_e6,
        "lng": lng_e6,
        "radius_m": radius_m,
        "limit": limit,
        "grade": grade,
    }
    box = bounding_box(lat_e6, lng_e6, radius_m)
    sql = COMPARE.format(distance=DISTANCE, where=_where(box, params))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params, prepare=True).fetchall()


def station(conn: Connection[Any], station_id: UUID) -> dict[str, Any] | None:
    """One station's public profile with every grade it sells (priced or not yet)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT station_id, code, name, address, phone, lat_e6, lng_e6, rating, status, "
            "registered_at, updated_at FROM read.stations WHERE station_id = %s",
            (station_id,),
        ).fetchone()
        if row is None:
            return None
        row["grades"] = cur.execute(
            "SELECT grade, nozzles, price_fen_per_litre, previous_fen_per_litre, change, "
            "changed_at FROM read.station_prices WHERE station_id = %s ORDER BY grade",
            (station_id,),
        ).fetchall()
    return row


def station_exists(conn: Connection[Any], station_id: UUID) -> bool:
    row = conn.execute("SELECT 1 FROM read.stations WHERE station_id = %s", (station_id,))
    return row.fetchone() is not None


def price_history(
    conn: Connection[Any],
    station_id: UUID,
    *,
    grade: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """Price changes newest first, those before log position `before` when given; returns
    the page and the position to continue from (None on the last page)."""
    clauses = ["station_id = %(station_id)s"]
    if grade is not None:
        clauses.append("grade = %(grade)s")
    if before is not None:
        clauses.append("position < %(before)s")
    params = {"station_id": station_id, "grade": grade, "before": before, "limit": limit + 1}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT position, grade, price_fen_per_litre, previous_fen_per_litre, changed_at "
            f"FROM read.price_history WHERE {' AND '.join(clauses)} "
            "ORDER BY position DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    page = rows[:limit]
    for row in page:
        row["change"] = change_of(row["price_fen_per_litre"], row["previous_fen_per_litre"])
    return page, (page[-1]["position"] if len(rows) > limit else None)
