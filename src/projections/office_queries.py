"""Back-office lists over the read models (A2, A3, A4): one WHERE builder per list, shared by
the paged lists and the streamed exports, so both always filter alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections import cursor as cursors
from projections.order_queries import ORDER_COLUMNS


@dataclass(frozen=True)
class FuelOrderFilters:
    station_id: UUID | None = None
    member_id: UUID | None = None
    status: str | None = None
    method: str | None = None
    grade: str | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    min_amount_fen: int | None = None
    max_amount_fen: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("station_id", "=", self.station_id),
            ("member_id", "=", self.member_id),
            ("status", "=", self.status),
            ("method", "=", self.method),
            ("grade", "=", self.grade),
            ("created_at", ">=", self.since),
            ("created_at", "<", self.until),
            ("amount_fen", ">=", self.min_amount_fen),
            ("amount_fen", "<=", self.max_amount_fen),
        ):
            if value is not None:
                clauses.append(f"{column} {op} %s")
                params.append(value)
        return (" AND ".join(clauses) or "TRUE"), params

    def as_json(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None else None) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class JournalFilters:
    account: str | None = None
    owner: str | None = None  # 'station:<id>', 'member:<id>', 'platform' ...
    asset: str | None = None
    kind: str | None = None
    since: datetime | None = None  # occurred_at
    until: datetime | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.account is not None:
            clauses.append("account = %s")
            params.append(self.account)
        if self.owner is not None:
            clauses.append("(account = %s OR account LIKE %s)")
            params += [self.owner, self.owner.replace("%", r"\%").replace("_", r"\_") + ":%"]
        for column, op, value in (
            ("asset", "=", self.asset),
            ("kind", "=", self.kind),
            ("occurred_at", ">=", self.since),
            ("occurred_at", "<", self.until),
        ):
            if value is not None:
                clauses.append(f"{column} {op} %s")
                params.append(value)
        return (" AND ".join(clauses) or "TRUE"), params

    def as_json(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None else None) for k, v in asdict(self).items()}


def _page(rows: list[dict[str, Any]], limit: int, *keys: str) -> dict[str, Any]:
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    token = None
    if more and last is not None:
        token = cursors.encode(
            *(last[k].isoformat() if isinstance(last[k], datetime) else last[k] for k in keys)
        )
    return {"items": page, "next_cursor": token}


def fuel_orders(
    pool: ConnectionPool, filters: FuelOrderFilters, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    where, params = filters.where()
    if cursor:
        created_at, order_id = cursors.decode(cursor, 2)
        where += " AND (created_at, order_id) < (%s::timestamptz, %s::uuid)"
        params += [created_at, order_id]
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {ORDER_COLUMNS} FROM read.fuel_orders WHERE {where} "
            "ORDER BY created_at DESC, order_id DESC LIMIT %s",
            [*params, limit + 1],
        ).fetchall()
    return _page(rows, limit, "created_at", "order_id")


def journal_lines(
    pool: ConnectionPool, filters: JournalFilters, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    where, params = filters.where()
    if cursor:
        position, entry_id, leg = cursors.decode(cursor, 3)
        where += " AND (position, entry_id, leg) > (%s::bigint, %s::uuid, %s::smallint)"
        params += [position, entry_id, leg]
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT position, entry_id, leg, account, asset, amount, kind, reverses, occurred_at "
            f"FROM read.journal_lines WHERE {where} ORDER BY position, entry_id, leg LIMIT %s",
            [*params, limit + 1],
        ).fetchall()
    return _page(rows, limit, "position", "entry_id", "leg")


STATION_LIST = """
SELECT s.station_id, s.code, s.name, s.address, s.phone, s.lat_e6, s.lng_e6, s.rating,
       s.settlement_rate_bps, s.status, s.registered_at, s.updated_at,
       coalesce(i.balance, 0) AS income_unsettled_fen,
       coalesce(a.balance, 0) AS available_fen,
       coalesce(h.balance, 0) AS held_fen,
       coalesce(t.earned, 0) AS income_total_fen
FROM read.stations s
LEFT JOIN read.account_balances i
    ON i.account = 'station:' || s.station_id || ':income' AND i.asset = 'CNY'
LEFT JOIN read.account_balances a
    ON a.account = 'station:' || s.station_id || ':available' AND a.asset = 'CNY'
LEFT JOIN read.account_balances h
    ON h.account = 'station:' || s.station_id || ':available:held' AND h.asset = 'CNY'
LEFT JOIN LATERAL (
    SELECT sum(amount) AS earned FROM read.journal_lines j
    WHERE j.account = 'station:' || s.station_id || ':income' AND j.asset = 'CNY'
      AND j.kind <> 'station_settlement'
) t ON TRUE
"""


def stations(
    pool: ConnectionPool,
    *,
    q: str | None = None,
    status: str | None = None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Stations by code, each with its income: unsettled, available (settled, not yet
    withdrawn), held by withdrawals, and earned in total (net of refunds)."""
    clauses, params = ["TRUE"], []
    if q:
        clauses.append("(s.name ILIKE %s OR s.code ILIKE %s)")
        params += [f"%{q}%", f"%{q}%"]
    if status:
        clauses.append("s.status = %s")
        params.append(status)
    if cursor:
        (after,) = cursors.decode(cursor, 1)
        clauses.append("s.code > %s")
        params.append(after)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            STATION_LIST + f" WHERE {' AND '.join(clauses)} ORDER BY s.code LIMIT %s",
            [*params, limit + 1],
        ).fetchall()
    for row in rows:
        for name in ("income_unsettled_fen", "available_fen", "held_fen", "income_total_fen"):
            row[name] = int(row[name])
    return _page(rows, limit, "code")


def station(pool: ConnectionPool, station_id: UUID) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(STATION_LIST + " WHERE s.station_id = %s", (station_id,)).fetchone()
        if row is None:
            return None
        row["grades"] = cur.execute(
            "SELECT grade, nozzles, price_fen_per_litre, changed_at FROM read.station_prices "
            "WHERE station_id = %s ORDER BY grade",
            (station_id,),
        ).fetchall()
    for name in ("income_unsettled_fen", "available_fen", "held_fen", "income_total_fen"):
        row[name] = int(row[name])
    return row


MEMBER_COLUMNS = "id, nickname, avatar_url, phone_masked, referrer, referral_code, joined_at"


def members(
    pool: ConnectionPool,
    *,
    q: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    referrer: UUID | None = None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    clauses, params = ["TRUE"], []
    if q:
        clauses.append("(nickname ILIKE %s OR phone LIKE %s)")
        params += [f"%{q}%", f"%{q}%"]
    if since:
        clauses.append("joined_at >= %s")
        params.append(since)
    if until:
        clauses.append("joined_at < %s")
        params.append(until)
    if referrer:
        clauses.append("referrer = %s")
        params.append(referrer)
    if cursor:
        joined_at, member_id = cursors.decode(cursor, 2)
        clauses.append("(joined_at, id) < (%s::timestamptz, %s::uuid)")
        params += [joined_at, member_id]
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {MEMBER_COLUMNS} FROM read.members WHERE {' AND '.join(clauses)} "
            "ORDER BY joined_at DESC, id DESC LIMIT %s",
            [*params, limit + 1],
        ).fetchall()
    return _page(rows, limit, "joined_at", "id")


def member(pool: ConnectionPool, member_id: UUID) -> dict[str, Any] | None:
    """One member with balances and order counts."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {MEMBER_COLUMNS}, phone FROM read.members WHERE id = %s", (member_id,)
        ).fetchone()
        if row is None:
            return None
        owner = f"member:{member_id}"
        balances = cur.execute(
            "SELECT account, asset, balance FROM read.account_balances WHERE owner = %s",
            (owner,),
        ).fetchall()
        orders = cur.execute(
            "SELECT count(*) AS orders, coalesce(sum(amount_fen) FILTER (WHERE paid_at IS NOT "
            "NULL), 0) AS paid_fen, max(created_at) AS last_order_at FROM read.fuel_orders "
            "WHERE member_id = %s",
            (member_id,),
        ).fetchone()
    row["balances"] = {
        b["account"][len(owner) + 1 :] + ("" if b["asset"] == "CNY" else f" ({b['asset']})"): int(
            b["balance"]
        )
        for b in balances
    }
    row["orders"] = {k: (int(v) if isinstance(v, int) else v) for k, v in (orders or {}).items()}
    return row
