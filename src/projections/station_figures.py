"""Station figures (P3) and customer habits (P8): daily sums per station, grade and method;
paid orders by hour; each member's visits per station and grade.

A page of events is folded in memory and written with one statement per table, so a page
of any size costs the same few round trips (the live runner and a rebuild share this code).
Days are business days in China Standard Time; sales count on the day the ledger recorded
the payment, refunds on the day of the refund.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from psycopg import Cursor

from projections.framework import Envelope, Projector

BUSINESS_TZ = timezone(timedelta(hours=8), "CST")
ORDER = "ledger.domain.fuel_order:FuelOrder."
CREATED, PAID, REFUNDED = ORDER + "Created", ORDER + "Paid", ORDER + "Refunded"
DISCOUNT_SOURCES = ("points", "coupon")

DAILY_VALUES = (
    "orders",
    "amount_fen",
    "discount_fen",
    "fee_fen",
    "income_fen",
    "refunds",
    "refunded_fen",
    "refunded_fee_fen",
    "refunded_income_fen",
)
HOUR_VALUES = ("orders", "amount_fen", "first_orders")
FACT_COLUMNS = (
    "order_id",
    "station_id",
    "member_id",
    "grade",
    "amount_fen",
    "method",
    "paid_at",
    "position",
)


def business_day(at: datetime) -> date:
    return at.astimezone(BUSINESS_TZ).date()


def add_into(
    cur: Cursor[Any],
    table: str,
    keys: Sequence[tuple[str, str]],
    values: Sequence[str],
    sums: dict[tuple[Any, ...], list[int]],
) -> None:
    """Add `sums` (key -> one number per value column) into `table`, one statement."""
    if not sums:
        return
    names = [k for k, _ in keys] + list(values)
    types = [t for _, t in keys] + ["bigint"] * len(values)
    rows = list(sums.items())
    columns: list[list[Any]] = [[key[i] for key, _ in rows] for i in range(len(keys))]
    columns += [[v[i] for _, v in rows] for i in range(len(values))]
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    updates = ", ".join(f"{v} = t.{v} + EXCLUDED.{v}" for v in values)
    cur.execute(
        f"INSERT INTO {table} AS t ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(k for k, _ in keys)}) DO UPDATE SET {updates}",
        columns,
    )


def _bump(sums: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], width: int) -> list[int]:
    slot = sums.get(key)
    if slot is None:
        slot = sums[key] = [0] * width
    return slot


class StationFiguresProjector(Projector):
    name = "station_figures"
    schema_aware = True
    topic_prefixes = (CREATED, PAID, REFUNDED)

    def tables(self) -> Sequence[str]:
        return (
            "read.order_facts",
            "read.station_daily",
            "read.station_hours",
            "read.station_customers",
            "read.station_customer_grades",
        )

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        page = _Page(cur, envelopes)
        for env in envelopes:
            e, kind = env.event, type(env.event).__name__
            if kind == "Created":
                page.created(e, env.position)
            elif kind == "Paid":
                page.paid(e)
            elif kind == "Refunded":
                page.refunded(e)
        page.write()


class _Page:
    """One page's effects, folded: new order facts, paid facts to update, sums to add."""

    def __init__(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        self.cur = cur
        wanted = {
            env.event.originator_id
            for env in envelopes
            if type(env.event).__name__ in ("Created", "Paid", "Refunded")
        }
        self.known: dict[UUID, dict[str, Any]] = {}
        if wanted:
            rows = cur.execute(
                f"SELECT {', '.join(FACT_COLUMNS)} FROM order_facts WHERE order_id = ANY(%s)",
                (list(wanted),),
            ).fetchall()
            self.known = {r[0]: dict(zip(FACT_COLUMNS, r, strict=True)) for r in rows}
        self.new: dict[UUID, dict[str, Any]] = {}
        self.paid_known: dict[UUID, dict[str, Any]] = {}
        self.daily: dict[tuple[Any, ...], list[int]] = {}
        self.hours: dict[tuple[Any, ...], list[int]] = {}
        self.visits: dict[tuple[UUID, UUID], list[Any]] = {}  # visits, amount, first, last
        self.grades: dict[tuple[Any, ...], list[int]] = {}

    def fact(self, order_id: UUID) -> dict[str, Any] | None:
        return self.new.get(order_id) or self.known.get(order_id)

    def created(self, e: Any, position: int) -> None:
        if self.fact(e.originator_id) is None:
            self.new[e.originator_id] = {
                "order_id": e.originator_id,
                "station_id": e.station_id,
                "member_id": e.member_id,
                "grade": e.grade,
                "amount_fen": e.amount_fen,
                "method": None,
                "paid_at": None,
                "position": position,
            }

    def paid(self, e: Any) -> None:
        fact = self.fact(e.originator_id)
        if fact is None:
            return
        fact["method"], fact["paid_at"] = e.method, e.timestamp
        if e.originator_id in self.known:
            self.paid_known[e.originator_id] = fact
        amount, fee = sum(e.sources.values()), sum(e.fees.values())
        discount = sum(e.sources.get(s, 0) for s in DISCOUNT_SOURCES)
        local = e.timestamp.astimezone(BUSINESS_TZ)
        station, member = fact["station_id"], fact["member_id"]
        day = _bump(self.daily, (station, local.date(), fact["grade"], e.method), 9)
        day[0] += 1
        day[1] += amount
        day[2] += discount
        day[3] += fee
        day[4] += amount - fee
        hour = _bump(self.hours, (station, local.date(), local.hour), 3)
        hour[0] += 1
        hour[1] += amount
        visit = self.visits.get((station, member))
        if visit is None:
            visit = self.visits[(station, member)] = [0, 0, e.timestamp, e.timestamp]
        visit[0] += 1
        visit[1] += amount
        visit[3] = max(visit[3], e.timestamp)
        if visit[0] == 1:
            visit.append(hour)  # a first visit, unless the table knows this member already
        _bump(self.grades, (station, member, fact["grade"]), 1)[0] += 1

    def refunded(self, e: Any) -> None:
        fact = self.fact(e.originator_id)
        if fact is None:
            return
        amount, fee = sum(e.parts.values()), sum(e.fees.values())
        key = (fact["station_id"], business_day(e.timestamp), fact["grade"], fact["method"] or "")
        day = _bump(self.daily, key, 9)
        day[5] += 1
        day[6] += amount
        day[7] += fee
        day[8] += amount - fee

    def write(self) -> None:
        cur = self.cur
        if self.new:
            with cur.copy(f"COPY order_facts ({', '.join(FACT_COLUMNS)}) FROM STDIN") as copy:
                for fact in self.new.values():
                    copy.write_row([fact[c] for c in FACT_COLUMNS])
        if self.paid_known:
            facts = list(self.paid_known.values())
            cur.execute(
                "UPDATE order_facts f SET method = u.m, paid_at = u.p "
                "FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[]) AS u(o, m, p) "
                "WHERE f.order_id = u.o",
                (
                    [f["order_id"] for f in facts],
                    [f["method"] for f in facts],
                    [f["paid_at"] for f in facts],
                ),
            )
        self._first_visits()
        day_keys = (("station_id", "uuid"), ("day", "date"), ("grade", "text"), ("method", "text"))
        add_into(cur, "station_daily", day_keys, DAILY_VALUES, self.daily)
        hour_keys = (("station_id", "uuid"), ("day", "date"), ("hour", "smallint"))
        add_into(cur, "station_hours", hour_keys, HOUR_VALUES, self.hours)
        self._write_visits()
        grade_keys = (("station_id", "uuid"), ("member_id", "uuid"), ("grade", "text"))
        add_into(cur, "station_customer_grades", grade_keys, ("visits",), self.grades)

    def _first_visits(self) -> None:
        """A member's first paid order at a station counts as a first order in its hour."""
        if not self.visits:
            return
        pairs = list(self.visits)
        seen = self.cur.execute(
            "SELECT station_id, member_id FROM station_customers "
            "WHERE (station_id, member_id) IN "
            "(SELECT * FROM unnest(%s::uuid[], %s::uuid[]))",
            ([s for s, _ in pairs], [m for _, m in pairs]),
        ).fetchall()
        known = {(s, m) for s, m in seen}
        for pair, visit in self.visits.items():
            if len(visit) > 4 and pair not in known:
                visit[4][2] += 1

    def _write_visits(self) -> None:
        if not self.visits:
            return
        rows: Iterable[tuple[tuple[UUID, UUID], list[Any]]] = self.visits.items()
        columns: list[list[Any]] = [[], [], [], [], [], []]
        for (station, member), visit in rows:
            for column, value in zip(columns, (station, member, *visit[:4]), strict=True):
                column.append(value)
        self.cur.execute(
            "INSERT INTO station_customers AS c (station_id, member_id, visits, amount_fen, "
            "first_at, last_at) SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::integer[], "
            "%s::bigint[], %s::timestamptz[], %s::timestamptz[]) "
            "ON CONFLICT (station_id, member_id) DO UPDATE SET visits = c.visits + "
            "EXCLUDED.visits, amount_fen = c.amount_fen + EXCLUDED.amount_fen, "
            "first_at = least(c.first_at, EXCLUDED.first_at), "
            "last_at = greatest(c.last_at, EXCLUDED.last_at)",
            columns,
        )
