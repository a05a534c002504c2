"""Stations, their current prices, the price history and their webhooks, from the Station
aggregate's events.

A page of events is folded in memory first, so a page of thousands of registrations is one
COPY, and prices and nozzles are one upsert each, whatever the page holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from ledger.domain.station import EDITABLE, OPEN
from projections.framework import Envelope, Projector

REGISTERED_FIELDS = (
    "code",
    "name",
    "address",
    "phone",
    "lat_e6",
    "lng_e6",
    "rating",
    "settlement_rate_bps",
)
STATION_COLUMNS = (
    "station_id",
    *REGISTERED_FIELDS,
    "status",
    "registered_at",
    "updated_at",
    "position",
)


def change_of(price: int, previous: int | None) -> str:
    """up/down against the previous price; 'same' when there is none to compare with."""
    if previous is None or price == previous:
        return "same"
    return "up" if price > previous else "down"


class StationsProjector(Projector):
    name = "stations"
    schema_aware = True
    topic_prefixes = ("ledger.domain.station:Station.",)

    def tables(self) -> Sequence[str]:
        return (
            "read.stations",
            "read.station_prices",
            "read.price_history",
            "read.station_webhooks",
        )

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        new: dict[UUID, dict[str, Any]] = {}  # stations registered in this page
        edits: dict[UUID, dict[str, Any]] = {}  # changes to stations registered before it
        nozzles: dict[tuple[UUID, str], tuple[list[int], int]] = {}
        prices: dict[tuple[UUID, str], tuple[Any, ...]] = {}
        history: list[tuple[Any, ...]] = []
        webhooks: dict[UUID, tuple[Any, ...] | None] = {}  # the last word per station wins
        for env in envelopes:
            e, at, kind = env.event, env.event.timestamp, type(env.event).__name__
            station_id = e.originator_id
            if kind == "Registered":
                new[station_id] = {
                    "station_id": station_id,
                    **{k: getattr(e, k) for k in REGISTERED_FIELDS},
                    "status": OPEN,
                    "registered_at": at,
                }
                stamp = new[station_id]
            elif kind == "ProfileEdited":
                stamp = new.get(station_id) or edits.setdefault(station_id, {})
                stamp.update({k: v for k, v in e.changes.items() if k in EDITABLE})
            elif kind == "GradeConfigured":
                nozzles[(station_id, e.grade)] = (list(e.nozzles), env.position)
                continue
            elif kind == "PriceChanged":
                price, previous = e.price_fen_per_litre, e.previous_fen_per_litre
                prices[(station_id, e.grade)] = (
                    station_id,
                    e.grade,
                    price,
                    previous,
                    change_of(price, previous),
                    at,
                    env.position,
                )
                history.append(
                    (env.position, station_id, e.grade, price, previous, e.changed_by, at)
                )
                continue
            elif kind == "WebhookConfigured":
                webhooks[station_id] = (e.url, e.secret_sealed, e.configured_by, at, env.position)
                continue
            elif kind == "WebhookRemoved":
                webhooks[station_id] = None
                continue
            else:
                continue
            stamp["updated_at"], stamp["position"] = at, env.position
        self._insert_stations(cur, new.values())
        for station_id, changes in edits.items():
            self._update_station(cur, station_id, changes)
        self._upsert_nozzles(cur, nozzles)
        self._upsert_prices(cur, list(prices.values()))
        self._apply_webhooks(cur, webhooks)
        if history:
            with cur.copy(
                "COPY price_history (position, station_id, grade, price_fen_per_litre, "
                "previous_fen_per_litre, changed_by, changed_at) FROM STDIN"
            ) as copy:
                for row in history:
                    copy.write_row(row)

    @staticmethod
    def _insert_stations(cur: Cursor[Any], rows: Any) -> None:
        rows = list(rows)
        if not rows:
            return
        with cur.copy(f"COPY stations ({', '.join(STATION_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in STATION_COLUMNS])

    @staticmethod
    def _apply_webhooks(cur: Cursor[Any], webhooks: dict[UUID, tuple[Any, ...] | None]) -> None:
        for station_id, hook in webhooks.items():
            if hook is None:
                cur.execute("DELETE FROM station_webhooks WHERE station_id = %s", (station_id,))
                continue
            cur.execute(
                "INSERT INTO station_webhooks (station_id, url, secret_sealed, configured_by, "
                "configured_at, position) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (station_id) DO UPDATE SET url = EXCLUDED.url, "
                "secret_sealed = EXCLUDED.secret_sealed, configured_by = EXCLUDED.configured_by, "
                "configured_at = EXCLUDED.configured_at, position = EXCLUDED.position",
                (station_id, *hook),
            )

    @staticmethod
    def _update_station(cur: Cursor[Any], station_id: UUID, changes: dict[str, Any]) -> None:
        # Profile edits are rare, and each names its own columns: one UPDATE per station.
        columns = sorted(changes)
        cur.execute(
            SQL("UPDATE stations SET {} WHERE station_id = %s").format(
                SQL(", ").join(SQL("{} = %s").format(Identifier(c)) for c in columns)
            ),
            [*(changes[c] for c in columns), station_id],
        )

    @staticmethod
    def _upsert_nozzles(
        cur: Cursor[Any], nozzles: dict[tuple[UUID, str], tuple[list[int], int]]
    ) -> None:
        if not nozzles:
            return
        keys = list(nozzles)
        cur.execute(
            "INSERT INTO station_prices AS p (station_id, grade, nozzles, position) "
            "SELECT s, g, n::integer[], pos "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bigint[]) AS u(s, g, n, pos) "
            "ON CONFLICT (station_id, grade) DO UPDATE SET nozzles = EXCLUDED.nozzles, "
            "position = greatest(p.position, EXCLUDED.position)",
            (
                [s for s, _ in keys],
                [g for _, g in keys],
                ["{" + ",".join(map(str, nozzles[k][0])) + "}" for k in keys],
                [nozzles[k][1] for k in keys],
            ),
        )

    @staticmethod
    def _upsert_prices(cur: Cursor[Any], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)]
        cur.execute(
            "INSERT INTO station_prices AS p (station_id, grade, price_fen_per_litre, "
            "previous_fen_per_litre, change, changed_at, position) "
            "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::integer[], %s::integer[], "
            "%s::text[], %s::timestamptz[], %s::bigint[]) "
            "ON CONFLICT (station_id, grade) DO UPDATE SET "
            "price_fen_per_litre = EXCLUDED.price_fen_per_litre, "
            "previous_fen_per_litre = EXCLUDED.previous_fen_per_litre, "
            "change = EXCLUDED.change, changed_at = EXCLUDED.changed_at, "
            "position = greatest(p.position, EXCLUDED.position)",
            columns,
        )
