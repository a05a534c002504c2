"""Station and platform figures for the bulk phase of a rebuild: the same rows as
StationFiguresProjector.apply and PlatformFiguresProjector.apply, from raw events (see
projections.raw). The sums go in with the live `add_into` upserts, once per checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from projections.platform_figures import SLOT, VALUES
from projections.raw import KeyedRows, RawEvent, add_sums, entry_of, merge_rows, when
from projections.station_figures import (
    BUSINESS_TZ,
    DAILY_VALUES,
    DISCOUNT_SOURCES,
    FACT_COLUMNS,
    HOUR_VALUES,
)

DAY_KEYS = ("station_id", "day", "grade", "method")
HOUR_KEYS = ("station_id", "day", "hour")
GRADE_KEYS = ("station_id", "member_id", "grade")
VISIT_COLUMNS = ("station_id", "member_id", "visits", "amount_fen", "first_at", "last_at")
_VISITS = (
    "visits = t.visits + EXCLUDED.visits, amount_fen = t.amount_fen + EXCLUDED.amount_fen, "
    "first_at = least(t.first_at, EXCLUDED.first_at), "
    "last_at = greatest(t.last_at, EXCLUDED.last_at)"
)


def _bump(sums: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], width: int) -> list[int]:
    slot = sums.get(key)
    if slot is None:
        slot = sums[key] = [0] * width
    return slot


class StationFiguresFold:
    appends_only: tuple[str, ...] = ()
    cost = 22.0  # see bulk.cost_of

    def __init__(self, projector: Any, app: Any, complete: bool) -> None:
        self.facts = KeyedRows("order_facts", "order_id", FACT_COLUMNS, complete=complete)
        self.complete = complete
        self.customers: set[tuple[str, str]] = set()  # (station, member) pairs in the table
        self.page = _Sums()  # what the windows since the last checkpoint add
        # Every key the sum tables hold, when the fold began with them empty (add_sums).
        self.known: dict[str, set[tuple[Any, ...]]] | None = (
            {"daily": set(), "hours": set(), "grades": set()} if complete else None
        )

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        self.facts.prefetch(cur, (e.originator for e in events))
        for event in events:
            if event.kind == "FuelOrder.Created":
                self._created(event)
            elif event.kind == "FuelOrder.Paid":
                self._paid(event, self.page)
            elif event.kind == "FuelOrder.Refunded":
                self._refunded(event, self.page)

    def flush(self, cur: Cursor[Any]) -> None:
        page, self.page = self.page, _Sums()
        known = self.known or {}
        self.facts.flush(cur)
        self._first_visits(cur, page)
        add_sums(cur, "station_daily", DAY_KEYS, DAILY_VALUES, page.daily, known.get("daily"))
        add_sums(cur, "station_hours", HOUR_KEYS, HOUR_VALUES, page.hours, known.get("hours"))
        if page.visits:
            visits = {pair: visit[:4] for pair, visit in page.visits.items()}
            customers = self.customers if self.complete else None
            merge_rows(
                cur, "station_customers", VISIT_COLUMNS, VISIT_COLUMNS[:2], _VISITS, visits,
                customers,
            )  # fmt: skip
            self.customers.update(page.visits)
        grades = known.get("grades")
        add_sums(cur, "station_customer_grades", GRADE_KEYS, ("visits",), page.grades, grades)

    def _created(self, event: RawEvent) -> None:
        d = event.data
        self.facts.insert(
            {
                "order_id": event.originator,
                "station_id": d["station_id"]["_data_"],
                "member_id": d["member_id"]["_data_"],
                "grade": d["grade"],
                "amount_fen": d["amount_fen"],
                "method": None,
                "paid_at": None,
                "position": event.position,
            }
        )

    def _paid(self, event: RawEvent, page: _Sums) -> None:
        fact = self.facts.get(event.originator)
        if fact is None:
            return
        d = event.data
        # The time as text too: COPY takes it as it is, which costs less than a datetime.
        method, text, at = d["method"], d["timestamp"]["_data_"], when(d["timestamp"])

        def paid(row: dict[str, Any]) -> None:
            row["method"], row["paid_at"] = method, text

        self.facts.update(event.originator, paid)
        sources, fee = d["sources"], sum(d["fees"].values())
        amount = sum(sources.values())
        discount = sum(sources.get(s, 0) for s in DISCOUNT_SOURCES)
        local = at.astimezone(BUSINESS_TZ)
        station, member = fact["station_id"], fact["member_id"]
        day = _bump(page.daily, (station, local.date(), fact["grade"], method), 9)
        day[0] += 1
        day[1] += amount
        day[2] += discount
        day[3] += fee
        day[4] += amount - fee
        hour = _bump(page.hours, (station, local.date(), local.hour), 3)
        hour[0] += 1
        hour[1] += amount
        visit = page.visits.get((station, member))
        if visit is None:
            visit = page.visits[(station, member)] = [0, 0, text, text, at, None]
        visit[0] += 1
        visit[1] += amount
        if at > visit[4]:
            visit[3], visit[4] = text, at
        if visit[0] == 1:
            visit[5] = hour  # a first visit, unless the table knows this member already
        _bump(page.grades, (station, member, fact["grade"]), 1)[0] += 1

    def _refunded(self, event: RawEvent, page: _Sums) -> None:
        fact = self.facts.get(event.originator)
        if fact is None:
            return
        d = event.data
        amount, fee = sum(d["parts"].values()), sum(d["fees"].values())
        day = when(d["timestamp"]).astimezone(BUSINESS_TZ).date()
        slot = _bump(page.daily, (fact["station_id"], day, fact["grade"], fact["method"] or ""), 9)
        slot[5] += 1
        slot[6] += amount
        slot[7] += fee
        slot[8] += amount - fee

    def _first_visits(self, cur: Cursor[Any], page: _Sums) -> None:
        """A member's first paid order at a station counts as a first order in its hour."""
        known = self.customers
        unknown = [p for p in page.visits if p not in known]
        if unknown and not self.complete:
            found = cur.execute(
                "SELECT station_id, member_id FROM station_customers "
                "WHERE (station_id, member_id) IN "
                "(SELECT * FROM unnest(%s::uuid[], %s::uuid[]))",
                ([s for s, _ in unknown], [m for _, m in unknown]),
            ).fetchall()
            known.update((s.hex, m.hex) for s, m in found)
        for pair, visit in page.visits.items():
            if visit[5] is not None and pair not in known:
                visit[5][2] += 1


class _Sums:
    def __init__(self) -> None:
        self.daily: dict[tuple[Any, ...], list[int]] = {}
        self.hours: dict[tuple[Any, ...], list[int]] = {}
        # visits, amount, first and last (as text), last (datetime), the first visit's hour
        self.visits: dict[tuple[str, str], list[Any]] = {}
        self.grades: dict[tuple[Any, ...], list[int]] = {}


class PlatformFiguresFold:
    appends_only: tuple[str, ...] = ()
    cost = 5.0  # see bulk.cost_of

    def __init__(self, projector: Any, app: Any, complete: bool) -> None:
        self.days: dict[tuple[Any, ...], list[int]] = {}  # sums since the last checkpoint

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        days, width = self.days, len(VALUES)
        for event in events:
            d, kind = event.data, event.kind
            day = _bump(days, (when(d["timestamp"]).astimezone(BUSINESS_TZ).date(),), width)
            if kind == "FuelOrder.Paid":
                sources = d["sources"]
                day[SLOT["orders"]] += 1
                day[SLOT["amount_fen"]] += sum(sources.values())
                day[SLOT["discount_fen"]] += sum(sources.get(s, 0) for s in DISCOUNT_SOURCES)
                day[SLOT["fee_fen"]] += sum(d["fees"].values())
            elif kind == "FuelOrder.Refunded":
                day[SLOT["refunds"]] += 1
                day[SLOT["refunded_fen"]] += sum(d["parts"].values())
                day[SLOT["refunded_fee_fen"]] += sum(d["fees"].values())
            elif kind == "Member.Registered":
                day[SLOT["new_members"]] += 1
            elif kind == "Wallet.CardToppedUp":
                entry = entry_of(d)
                legs = entry["legs"] if entry else []
                credited = {account.rsplit(":", 1)[-1]: amount for account, _, amount in legs}
                day[SLOT["top_ups"]] += 1
                day[SLOT["top_up_fen"]] += credited.get("card", 0)
                day[SLOT["top_up_bonus_fen"]] += credited.get("card_bonus", 0)

    def flush(self, cur: Cursor[Any]) -> None:
        days, self.days = self.days, {}
        add_sums(cur, "platform_daily", ("day",), VALUES, days)
