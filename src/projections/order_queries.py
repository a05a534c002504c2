"""Queries over the order read models; the API and the exports share them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections import cursor as cursors

ORDER_COLUMNS = (
    "order_id, out_trade_no, member_id, station_id, grade, nozzle, amount_fen, "
    "price_fen_per_litre, volume_ml, coupon_id, coupon_fen, points_used, points_fen, "
    "payable_fen, points_earned, status, method, provider_fen, card_fen, refunded_fen, "
    "confirmed, created_at, expires_at, paid_at"
)


def member_orders(
    pool: ConnectionPool,
    member_id: UUID,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    sql = f"SELECT {ORDER_COLUMNS} FROM read.fuel_orders WHERE member_id = %s"
    params: list[Any] = [member_id]
    if status:
        sql += " AND status = %s"
        params.append(status)
    if cursor:
        created_at, order_id = cursors.decode(cursor, 2)
        sql += " AND (created_at, order_id) < (%s::timestamptz, %s::uuid)"
        params += [created_at, order_id]
    sql += " ORDER BY created_at DESC, order_id DESC LIMIT %s"
    params.append(limit + 1)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = (
        cursors.encode(page[-1]["created_at"].isoformat(), page[-1]["order_id"])
        if (more and page)
        else None
    )
    return {"items": page, "next_cursor": next_cursor}


def order(pool: ConnectionPool, order_id: UUID) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {ORDER_COLUMNS} FROM read.fuel_orders WHERE order_id = %s", (order_id,)
        ).fetchone()


def card_balances(pool: ConnectionPool, member_id: UUID) -> dict[str, int]:
    owner = f"member:{member_id}"
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT account, asset, balance FROM read.account_balances WHERE owner = %s",
            (owner,),
        ).fetchall()
    by_suffix = {account[len(owner) + 1 :]: balance for account, _, balance in rows}
    return {
        "card_fen": by_suffix.get("card", 0),
        "card_bonus_fen": by_suffix.get("card_bonus", 0),
        "held_fen": by_suffix.get("card:held", 0) + by_suffix.get("card_bonus:held", 0),
        "points": by_suffix.get("points", 0),
        "points_held": by_suffix.get("points:held", 0),
    }


def card_transactions(
    pool: ConnectionPool, member_id: UUID, *, limit: int, cursor: str | None = None
) -> dict[str, Any]:
    """Every movement of the member's card and bonus value, newest first."""
    accounts = [f"member:{member_id}:card", f"member:{member_id}:card_bonus"]
    sql = (
        "SELECT position, entry_id, kind, occurred_at, "
        "sum(amount) FILTER (WHERE account = %s) AS card_fen, "
        "sum(amount) FILTER (WHERE account = %s) AS bonus_fen "
        "FROM read.journal_lines WHERE account = ANY(%s) AND asset = 'CNY'"
    )
    params: list[Any] = [accounts[0], accounts[1], accounts]
    if cursor:
        (before,) = cursors.decode(cursor, 1)
        sql += " AND position < %s"
        params.append(int(before))
    sql += " GROUP BY position, entry_id, kind, occurred_at ORDER BY position DESC LIMIT %s"
    params.append(limit + 1)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    page, more = rows[:limit], len(rows) > limit
    items = [
        {
            "entry_id": r["entry_id"],
            "kind": r["kind"],
            "occurred_at": r["occurred_at"],
            "card_fen": int(r["card_fen"] or 0),
            "bonus_fen": int(r["bonus_fen"] or 0),
        }
        for r in page
    ]
    return {
        "items": items,
        "next_cursor": cursors.encode(page[-1]["position"]) if more and page else None,
    }
