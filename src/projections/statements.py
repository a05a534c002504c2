"""A member's monthly statement (M9, M14): the month's fuel orders, top-ups and refunds from
the order read models, and every movement of the member's accounts (card, bonus, points,
holds, commission) with opening and closing balances, from the journal lines alone.

Months are calendar months in China Standard Time. Everything is read in one repeatable-read
snapshot, so the movements add up from the opening to the closing balance.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.station_figures import BUSINESS_TZ

ORDER_COLUMNS = (
    "order_id, station_id, grade, nozzle, amount_fen, volume_ml, coupon_fen, points_used, "
    "points_fen, payable_fen, points_earned, status, method, provider_fen, card_fen, "
    "refunded_fen, created_at, paid_at"
)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime.combine(date(year, month, 1), time(), BUSINESS_TZ)
    following = date(year + month // 12, month % 12 + 1, 1)
    return start, datetime.combine(following, time(), BUSINESS_TZ)


def member_statement(pool: ConnectionPool, member_id: UUID, year: int, month: int) -> dict:
    start, end = month_bounds(year, month)
    owner = f"member:{member_id}"
    window = {"m": member_id, "owner": owner, "start": start, "end": end}
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        orders = cur.execute(
            f"SELECT {ORDER_COLUMNS} FROM read.fuel_orders WHERE member_id = %(m)s "
            "AND created_at >= %(start)s AND created_at < %(end)s AND paid_at IS NOT NULL "
            "ORDER BY created_at, order_id",
            window,
        ).fetchall()
        top_ups = cur.execute(
            "SELECT top_up_id, method, amount_fen, bonus_fen, created_at, paid_at "
            "FROM read.top_ups WHERE member_id = %(m)s AND status = 'paid' "
            "AND created_at >= %(start)s AND created_at < %(end)s ORDER BY created_at",
            window,
        ).fetchall()
        refunds = cur.execute(
            "SELECT r.refund_id, r.order_id, r.amount_fen, r.provider_fen, r.reason, "
            "r.provider_state, r.requested_at FROM read.refunds r "
            "JOIN read.fuel_orders o ON o.order_id = r.order_id "
            "WHERE o.member_id = %(m)s AND r.requested_at >= %(start)s "
            "AND r.requested_at < %(end)s ORDER BY r.requested_at, r.refund_id",
            window,
        ).fetchall()
        balances = cur.execute(
            "SELECT l.account, l.asset, "
            "coalesce(sum(l.amount) FILTER (WHERE l.occurred_at < %(start)s), 0) AS opening, "
            "coalesce(sum(l.amount) FILTER (WHERE l.occurred_at < %(end)s), 0) AS closing "
            "FROM read.account_balances b JOIN read.journal_lines l "
            "ON l.account = b.account AND l.asset = b.asset "
            "WHERE b.owner = %(owner)s GROUP BY l.account, l.asset ORDER BY l.account, l.asset",
            window,
        ).fetchall()
        lines = cur.execute(
            "SELECT l.position, l.entry_id, l.kind, l.occurred_at, l.account, l.asset, l.amount "
            "FROM read.account_balances b JOIN read.journal_lines l "
            "ON l.account = b.account AND l.asset = b.asset "
            "WHERE b.owner = %(owner)s AND l.occurred_at >= %(start)s "
            "AND l.occurred_at < %(end)s ORDER BY l.position, l.leg",
            window,
        ).fetchall()
    return {
        "member_id": member_id,
        "month": f"{year:04d}-{month:02d}",
        "from": start,
        "to": end,
        "accounts": [_account(owner, b) for b in balances],
        "movements": _movements(owner, lines),
        "fuel_orders": orders,
        "top_ups": top_ups,
        "refunds": refunds,
        "totals": {
            "fuel_orders": len(orders),
            "fuel_fen": sum(o["amount_fen"] for o in orders),
            "top_ups": len(top_ups),
            "top_up_fen": sum(t["amount_fen"] for t in top_ups),
            "top_up_bonus_fen": sum(t["bonus_fen"] for t in top_ups),
            "refunds": len(refunds),
            "refunded_fen": sum(r["amount_fen"] for r in refunds),
        },
    }


def _suffix(owner: str, account: str) -> str:
    return account[len(owner) + 1 :]


def _account(owner: str, row: dict[str, Any]) -> dict[str, Any]:
    opening, closing = int(row["opening"]), int(row["closing"])
    return {
        "account": _suffix(owner, row["account"]),
        "asset": row["asset"],
        "opening": opening,
        "movement": closing - opening,
        "closing": closing,
    }


def _movements(owner: str, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per journal entry, with what it did to each of the member's accounts."""
    items: list[dict[str, Any]] = []
    for line in lines:
        if not items or items[-1]["entry_id"] != line["entry_id"]:
            items.append(
                {
                    "position": line["position"],
                    "entry_id": line["entry_id"],
                    "kind": line["kind"],
                    "occurred_at": line["occurred_at"],
                    "changes": {},
                }
            )
        key = f"{_suffix(owner, line['account'])}|{line['asset']}"
        changes = items[-1]["changes"]
        changes[key] = changes.get(key, 0) + line["amount"]
    return items
