"""read.shifts from the Shift aggregate's events; the readings a closing shift needs (system
totals from read.fuel_orders and read.refunds, unsettled income from read.journal_lines);
shift lists and day reports for the partner API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ledger.accounts import station_income
from ledger.domain.shift import COUNTED_METHODS
from projections.framework import Envelope, Projector

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
SHIFT_COLUMNS = (
    "shift_id, station_id, number, cashier, status, opened_at, closed_at, system_fen, "
    "counted_fen, difference_fen, order_count, refund_count, refunds_fen, settled_fen, "
    "up_to_position"
)


class ShiftsProjector(Projector):
    name = "shifts"
    topic_prefixes = ("ledger.domain.shift:Shift.",)
    schema_aware = True

    def tables(self) -> Sequence[str]:
        return ("read.shifts",)

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            e, kind = env.event, type(env.event).__name__
            if kind == "Opened":
                cur.execute(
                    "INSERT INTO shifts (shift_id, station_id, number, cashier, status, "
                    "opened_at, position) VALUES (%s, %s, %s, %s, 'open', %s, %s) "
                    "ON CONFLICT (shift_id) DO NOTHING",
                    (e.originator_id, e.station_id, e.number, e.cashier, e.opened_at, env.position),
                )
            elif kind == "Closed":
                cur.execute(
                    "UPDATE shifts SET status = 'closed', closed_at = %s, system_fen = %s, "
                    "counted_fen = %s, difference_fen = %s, order_count = %s, refund_count = %s, "
                    "refunds_fen = %s, settled_fen = %s, up_to_position = %s, position = %s "
                    "WHERE shift_id = %s",
                    (
                        e.closed_at,
                        Jsonb(e.system_fen),
                        Jsonb(e.counted_fen),
                        Jsonb(e.difference_fen),
                        e.order_count,
                        e.refund_count,
                        e.refunds_fen,
                        e.settled_fen,
                        e.up_to_position,
                        env.position,
                        e.originator_id,
                    ),
                )


class SqlShiftReadings:
    """ledger.services.shifts.ShiftReadings over the read models."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def latest_number(self, station_id: UUID) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT coalesce(max(number), 0) FROM read.shifts WHERE station_id = %s",
                (station_id,),
            ).fetchone()
        return int(row[0]) if row else 0

    def totals(self, station_id: UUID, since: datetime, until: datetime) -> dict[str, Any]:
        with self.pool.connection() as conn:
            paid = conn.execute(
                "SELECT count(*), "
                "coalesce(sum(provider_fen) FILTER (WHERE method = 'wechat'), 0), "
                "coalesce(sum(provider_fen) FILTER (WHERE method = 'alipay'), 0), "
                "coalesce(sum(card_fen), 0), coalesce(sum(points_fen), 0), "
                "coalesce(sum(coupon_fen), 0), coalesce(sum(amount_fen), 0) "
                "FROM read.fuel_orders WHERE station_id = %s AND paid_at >= %s AND paid_at < %s",
                (station_id, since, until),
            ).fetchone()
            refunds = conn.execute(
                "SELECT count(*), coalesce(sum(r.amount_fen), 0) FROM read.refunds r "
                "JOIN read.fuel_orders o ON o.order_id = r.order_id "
                "WHERE o.station_id = %s AND r.requested_at >= %s AND r.requested_at < %s",
                (station_id, since, until),
            ).fetchone()
        assert paid is not None and refunds is not None
        count, wechat, alipay, card, points, coupon, gross = (int(v) for v in paid)
        return {
            "system_fen": {
                "wechat": wechat,
                "alipay": alipay,
                "card": card,
                "points": points,
                "coupon": coupon,
                "gross": gross,
            },
            "order_count": count,
            "refund_count": int(refunds[0]),
            "refunds_fen": int(refunds[1]),
        }

    def unsettled_income(self, station_id: UUID, after_position: int) -> tuple[int, int]:
        """Income legs (settlement batches aside) after the last batch, up to the position
        the journal projector has reached: everything up to there is in the table."""
        with self.pool.connection() as conn:
            tracked = conn.execute(
                "SELECT position FROM read.tracking WHERE projection = 'journal'"
            ).fetchone()
            up_to = int(tracked[0]) if tracked else 0
            row = conn.execute(
                "SELECT coalesce(sum(amount), 0) FROM read.journal_lines "
                "WHERE account = %s AND asset = 'CNY' AND position > %s AND position <= %s "
                "AND kind <> 'station_settlement'",
                (station_income(station_id), after_position, up_to),
            ).fetchone()
        return (int(row[0]) if row else 0), up_to


def shift_row(pool: ConnectionPool, station_id: UUID, shift_id: UUID) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {SHIFT_COLUMNS} FROM read.shifts WHERE station_id = %s AND shift_id = %s",
            (station_id, shift_id),
        ).fetchone()


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    start = datetime.combine(first, datetime.min.time(), BUSINESS_TZ)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), BUSINESS_TZ)
    return start, end


def shifts(
    pool: ConnectionPool, station_id: UUID, first: date, last: date, status: str | None = None
) -> list[dict[str, Any]]:
    """The station's shifts opened on these business days (Asia/Shanghai), newest first."""
    since, until = day_bounds(first, last)
    sql = (
        f"SELECT {SHIFT_COLUMNS} FROM read.shifts WHERE station_id = %s "
        "AND opened_at >= %s AND opened_at < %s"
    )
    params: list[Any] = [station_id, since, until]
    if status:
        sql += " AND status = %s"
        params.append(status)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql + " ORDER BY number DESC LIMIT 1000", params).fetchall()


def day_report(pool: ConnectionPool, station_id: UUID, first: date, last: date) -> list[dict]:
    """Closed shifts summed per business day of their closing."""
    since, until = day_bounds(first, last)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {SHIFT_COLUMNS} FROM read.shifts WHERE station_id = %s "
            "AND status = 'closed' AND closed_at >= %s AND closed_at < %s ORDER BY closed_at",
            (station_id, since, until),
        ).fetchall()
    days: dict[str, dict[str, Any]] = {}
    for row in rows:
        day = row["closed_at"].astimezone(BUSINESS_TZ).date().isoformat()
        slot = days.setdefault(
            day,
            {
                "day": day,
                "shifts": 0,
                "order_count": 0,
                "refund_count": 0,
                "refunds_fen": 0,
                "settled_fen": 0,
                "system_fen": {},
                "counted_fen": {},
                "difference_fen": {},
            },
        )
        slot["shifts"] += 1
        for name in ("order_count", "refund_count", "refunds_fen", "settled_fen"):
            slot[name] += row[name] or 0
        for name in ("system_fen", "counted_fen", "difference_fen"):
            for method, fen in (row[name] or {}).items():
                slot[name][method] = slot[name].get(method, 0) + fen
    for slot in days.values():
        for method in COUNTED_METHODS:
            for name in ("counted_fen", "difference_fen"):
                slot[name].setdefault(method, 0)
    return list(days.values())
