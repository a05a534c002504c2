"""What a station partner reads: figures (P3), orders with filters (P4, and A4 for every
station), customer habits (P8). Figures and habits come from the station_figures
projector's daily sums, never from a scan of the orders; settled and pending income come
from the journal's station:{id}:income and :available accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ledger import accounts as acc
from projections import cursor as cursors
from projections.station_figures import BUSINESS_TZ, DAILY_VALUES

ORDER_COLUMNS = (
    "order_id, out_trade_no, member_id, station_id, grade, nozzle, amount_fen, "
    "price_fen_per_litre, volume_ml, coupon_fen, points_used, points_fen, payable_fen, status, "
    "method, provider_fen, card_fen, refunded_fen, confirmed, created_at, paid_at"
)
SUMS = ", ".join(f"coalesce(sum({v}), 0)::bigint AS {v}" for v in DAILY_VALUES)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), BUSINESS_TZ)


def _net(row: dict[str, Any]) -> dict[str, Any]:
    row["net_income_fen"] = row["income_fen"] - row["refunded_income_fen"]
    return row


def station_figures(pool: ConnectionPool, station_id: UUID, start: date, end: date) -> dict:
    """Days in [start, end]: totals, by day, by grade, by method; income settled and pending."""
    window = {"s": station_id, "start": start, "end": end}
    base = "FROM read.station_daily WHERE station_id = %(s)s AND day BETWEEN %(start)s AND %(end)s"
    income, available = acc.station_income(station_id), acc.station_available(station_id)
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        totals = cur.execute(f"SELECT {SUMS} {base}", window).fetchone()
        by = {
            key: [
                _net(r)
                for r in cur.execute(
                    f"SELECT {key}, {SUMS} {base} GROUP BY {key} ORDER BY {key}", window
                ).fetchall()
            ]
            for key in ("day", "grade", "method")
        }
        balances = {
            r["account"]: int(r["balance"])
            for r in cur.execute(
                "SELECT account, balance FROM read.account_balances "
                "WHERE account = ANY(%s) AND asset = 'CNY'",
                ([income, available, acc.held(available)],),
            ).fetchall()
        }
        settled = cur.execute(
            "SELECT coalesce(sum(amount), 0)::bigint AS settled FROM read.journal_lines "
            "WHERE account = %s AND asset = 'CNY' AND kind = 'station_settlement' "
            "AND occurred_at >= %s AND occurred_at < %s",
            (available, day_start(start), day_start(end + timedelta(days=1))),
        ).fetchone()
    assert totals is not None and settled is not None
    return {
        "station_id": station_id,
        "from": start,
        "to": end,
        "totals": _net(totals),
        "by_day": by["day"],
        "by_grade": by["grade"],
        "by_method": by["method"],
        "income": {
            "pending_fen": balances.get(income, 0),
            "available_fen": balances.get(available, 0),
            "withdrawing_fen": balances.get(acc.held(available), 0),
            "settled_in_period_fen": int(settled["settled"]),
        },
    }


def _order_filters(
    station_id: UUID | None,
    start: date | None,
    end: date | None,
    grade: str | None,
    status: str | None,
    min_amount: int | None,
    max_amount: int | None,
) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if station_id is not None:
        clauses.append("station_id = %(station)s")
        params["station"] = station_id
    if start is not None:
        clauses.append("created_at >= %(start)s")
        params["start"] = day_start(start)
    if end is not None:
        clauses.append("created_at < %(end)s")
        params["end"] = day_start(end + timedelta(days=1))
    for name, value, clause in (
        ("grade", grade, "grade = %(grade)s"),
        ("status", status, "status = %(status)s"),
        ("min_amount", min_amount, "amount_fen >= %(min_amount)s"),
        ("max_amount", max_amount, "amount_fen <= %(max_amount)s"),
    ):
        if value is not None:
            clauses.append(clause)
            params[name] = value
    return clauses, params


def orders(
    pool: ConnectionPool,
    station_id: UUID | None,
    *,
    start: date | None = None,
    end: date | None = None,
    grade: str | None = None,
    status: str | None = None,
    min_amount: int | None = None,
    max_amount: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Orders newest first (one station's, or every station's for the back office)."""
    clauses, params = _order_filters(station_id, start, end, grade, status, min_amount, max_amount)
    if cursor:
        created_at, order_id = cursors.decode(cursor, 2)
        clauses.append("(created_at, order_id) < (%(c_at)s::timestamptz, %(c_id)s::uuid)")
        params.update(c_at=created_at, c_id=order_id)
    params["limit"] = limit + 1
    where = " AND ".join(clauses) or "true"
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {ORDER_COLUMNS} FROM read.fuel_orders WHERE {where} "
            "ORDER BY created_at DESC, order_id DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return {
        "items": page,
        "next_cursor": (
            cursors.encode(last["created_at"].isoformat(), last["order_id"])
            if more and last
            else None
        ),
    }


def iter_orders(pool: ConnectionPool, station_id: UUID | None, **filters: Any) -> Iterator[dict]:
    """Every matching order, page by page: what an export streams (the same query)."""
    cursor = None
    while True:
        page = orders(pool, station_id, limit=1000, cursor=cursor, **filters)
        yield from page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return


def habits(pool: ConnectionPool, station_id: UUID, start: date, end: date) -> dict[str, Any]:
    """Customers of the period (members with a paid order at the station in [start, end]):
    how often they come (lifetime visits here), their preferred grade, the hours of the
    day, the average amount, new against returning."""
    window = {"s": station_id, "start": start, "end": end}
    first, after = day_start(start), day_start(end + timedelta(days=1))
    window.update(first=first, after=after)
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        hours = cur.execute(
            "SELECT hour, sum(orders)::bigint AS orders, sum(amount_fen)::bigint AS amount_fen "
            "FROM read.station_hours WHERE station_id = %(s)s AND day BETWEEN %(start)s AND "
            "%(end)s GROUP BY hour ORDER BY hour",
            window,
        ).fetchall()
        totals = cur.execute(
            "SELECT coalesce(sum(orders), 0)::bigint AS orders, coalesce(sum(amount_fen), 0)"
            "::bigint AS amount_fen, coalesce(sum(first_orders), 0)::bigint AS new_customers "
            "FROM read.station_hours WHERE station_id = %(s)s AND day BETWEEN %(start)s AND "
            "%(end)s",
            window,
        ).fetchone()
        grades = cur.execute(
            "SELECT grade, sum(orders)::bigint AS orders FROM read.station_daily "
            "WHERE station_id = %(s)s AND day BETWEEN %(start)s AND %(end)s AND orders > 0 "
            "GROUP BY grade ORDER BY orders DESC, grade",
            window,
        ).fetchall()
        customers = cur.execute(
            "SELECT count(*) AS customers, "
            "count(*) FILTER (WHERE first_at < %(first)s) AS returning_customers, "
            "coalesce(avg(visits), 0)::float AS avg_visits, "
            "count(*) FILTER (WHERE visits = 1) AS visits_1, "
            "count(*) FILTER (WHERE visits BETWEEN 2 AND 3) AS visits_2_3, "
            "count(*) FILTER (WHERE visits BETWEEN 4 AND 9) AS visits_4_9, "
            "count(*) FILTER (WHERE visits >= 10) AS visits_10_plus "
            "FROM read.station_customers WHERE station_id = %(s)s "
            "AND last_at >= %(first)s AND first_at < %(after)s",
            window,
        ).fetchone()
        preferred = cur.execute(
            "SELECT grade, count(*) AS customers FROM (SELECT DISTINCT ON (g.member_id) "
            "g.member_id, g.grade FROM read.station_customer_grades g "
            "JOIN read.station_customers c USING (station_id, member_id) "
            "WHERE g.station_id = %(s)s AND c.last_at >= %(first)s AND c.first_at < %(after)s "
            "ORDER BY g.member_id, g.visits DESC, g.grade) t GROUP BY grade "
            "ORDER BY customers DESC, grade",
            window,
        ).fetchall()
    assert totals is not None and customers is not None
    orders_count = int(totals["orders"])
    return {
        "station_id": station_id,
        "from": start,
        "to": end,
        "orders": orders_count,
        "average_amount_fen": int(totals["amount_fen"]) // orders_count if orders_count else 0,
        "new_customers": int(totals["new_customers"]),
        "returning_orders": orders_count - int(totals["new_customers"]),
        "customers": customers,
        "grades": grades,
        "preferred_grades": preferred,
        "hours": hours,
    }
