"""Platform figures (A13): orders, turnover, fees, refunds, new members and top-ups by
business day; the query behind GET /v1/admin/figures (with the top stations of the period,
from the stations' daily sums)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.framework import Envelope, Projector
from projections.station_figures import DISCOUNT_SOURCES, add_into, business_day

VALUES = (
    "orders",
    "amount_fen",
    "discount_fen",
    "fee_fen",
    "refunds",
    "refunded_fen",
    "refunded_fee_fen",
    "new_members",
    "top_ups",
    "top_up_fen",
    "top_up_bonus_fen",
)
SLOT = {name: i for i, name in enumerate(VALUES)}
ORDER = "ledger.domain.fuel_order:FuelOrder."
MEMBER_REGISTERED = "ledger.domain.member:Member.Registered"
CARD_TOPPED_UP = "ledger.domain.wallet:Wallet.CardToppedUp"


class PlatformFiguresProjector(Projector):
    name = "platform_figures"
    schema_aware = True
    topic_prefixes = (ORDER + "Paid", ORDER + "Refunded", MEMBER_REGISTERED, CARD_TOPPED_UP)

    def tables(self) -> Sequence[str]:
        return ("read.platform_daily",)

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        days: dict[tuple[Any, ...], list[int]] = {}
        for env in envelopes:
            e = env.event
            kind = type(e).__qualname__
            key = (business_day(e.timestamp),)
            if key not in days:
                days[key] = [0] * len(VALUES)
            day = days[key]
            if kind == "FuelOrder.Paid":
                day[SLOT["orders"]] += 1
                day[SLOT["amount_fen"]] += sum(e.sources.values())
                day[SLOT["discount_fen"]] += sum(e.sources.get(s, 0) for s in DISCOUNT_SOURCES)
                day[SLOT["fee_fen"]] += sum(e.fees.values())
            elif kind == "FuelOrder.Refunded":
                day[SLOT["refunds"]] += 1
                day[SLOT["refunded_fen"]] += sum(e.parts.values())
                day[SLOT["refunded_fee_fen"]] += sum(e.fees.values())
            elif kind == "Member.Registered":
                day[SLOT["new_members"]] += 1
            elif kind == "Wallet.CardToppedUp":
                credited = {g.account.rsplit(":", 1)[-1]: g.amount for g in e.entry.legs}
                day[SLOT["top_ups"]] += 1
                day[SLOT["top_up_fen"]] += credited.get("card", 0)
                day[SLOT["top_up_bonus_fen"]] += credited.get("card_bonus", 0)
        add_into(cur, "platform_daily", (("day", "date"),), VALUES, days)


def figures(pool: ConnectionPool, start: date, end: date, *, top: int = 10) -> dict[str, Any]:
    """Days in [start, end]: totals, each day, the top stations by amount, and members."""
    sums = ", ".join(f"coalesce(sum({v}), 0)::bigint AS {v}" for v in VALUES)
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        days = cur.execute(
            f"SELECT day, {', '.join(VALUES)} FROM read.platform_daily "
            "WHERE day BETWEEN %s AND %s ORDER BY day",
            (start, end),
        ).fetchall()
        totals = cur.execute(
            f"SELECT {sums} FROM read.platform_daily WHERE day BETWEEN %s AND %s", (start, end)
        ).fetchone()
        stations = cur.execute(
            "SELECT d.station_id, s.name, s.code, sum(d.orders)::bigint AS orders, "
            "sum(d.amount_fen)::bigint AS amount_fen, sum(d.income_fen)::bigint AS income_fen, "
            "sum(d.refunded_fen)::bigint AS refunded_fen "
            "FROM read.station_daily d LEFT JOIN read.stations s USING (station_id) "
            "WHERE d.day BETWEEN %s AND %s GROUP BY d.station_id, s.name, s.code "
            "ORDER BY amount_fen DESC, d.station_id LIMIT %s",
            (start, end, top),
        ).fetchall()
        members = cur.execute("SELECT count(*) AS total FROM read.members").fetchone()
    assert totals is not None and members is not None
    totals["turnover_fen"] = totals["amount_fen"] - totals["refunded_fen"]
    totals["revenue_fen"] = totals["fee_fen"] - totals["refunded_fee_fen"]
    return {
        "from": start,
        "to": end,
        "totals": totals,
        "members": {"total": members["total"], "new": totals["new_members"]},
        "top_stations": stations,
        "days": days,
    }
