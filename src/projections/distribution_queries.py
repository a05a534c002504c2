"""Queries over the distribution and loyalty read models, for the API and the scheduled jobs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ledger import accounts as acc
from ledger.domain.loyalty_book import commission_debt_account
from projections import cursor as cursors

COMMISSION_COLUMNS = (
    "order_id, referrer, referee, station_id, base_fen, rate_bps, amount_fen, clawed_fen, "
    "debt_fen, CASE WHEN clawed_fen >= amount_fen THEN 'clawed_back' ELSE state END AS state, "
    "paid_at, due_at, released_at"
)
WITHDRAWAL_COLUMNS = (
    "withdrawal_id, owner_kind, owner_id, amount_fen, fee_fen, net_fen, channel, payee, state, "
    "attempt, out_bill_no, transfer_bill_no, provider_state, package, reason, requested_at, "
    "decided_at, decided_by, sent_at, paid_at, updated_at"
)


def _page(
    pool: ConnectionPool,
    sql: str,
    params: list[Any],
    order: str,
    limit: int,
    cursor: str | None,
    key: tuple[str, str],
    row_key: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Keyset pages, newest first, on (a timestamp, an id): `key` in SQL, `row_key` in rows."""
    row_key = row_key or key
    if cursor:
        at, ident = cursors.decode(cursor, 2)
        sql += f" AND ({key[0]}, {key[1]}) < (%s::timestamptz, %s::uuid)"
        params = [*params, at, ident]
    sql += f" ORDER BY {order} LIMIT %s"
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, [*params, limit + 1]).fetchall()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    next_cursor = (
        cursors.encode(last[row_key[0]].isoformat(), last[row_key[1]]) if more and last else None
    )
    return {"items": page, "next_cursor": next_cursor}


# -- commissions ---------------------------------------------------------------------------


def commission_totals(pool: ConnectionPool, member_id: UUID) -> dict[str, int]:
    accounts = {
        "pending_fen": acc.member_commission_pending(member_id),
        "available_fen": acc.member_commission_available(member_id),
        "held_fen": acc.held(acc.member_commission_available(member_id)),
        "debt_fen": commission_debt_account(member_id),
    }
    with pool.connection() as conn:
        balances: dict[str, int] = dict(
            conn.execute(
                "SELECT account, balance FROM read.account_balances "
                "WHERE account = ANY(%s) AND asset = 'CNY'",
                (list(accounts.values()),),
            ).fetchall()
        )
        earned, clawed = conn.execute(
            "SELECT coalesce(sum(amount_fen), 0), coalesce(sum(clawed_fen), 0) "
            "FROM read.commissions WHERE referrer = %s",
            (member_id,),
        ).fetchone() or (0, 0)
        withdrawn = conn.execute(
            "SELECT coalesce(sum(amount_fen), 0) FROM read.withdrawals "
            "WHERE owner = %s AND state = 'paid'",
            (f"member:{member_id}",),
        ).fetchone()
    totals = {name: int(balances.get(account, 0)) for name, account in accounts.items()}
    totals["debt_fen"] = -totals["debt_fen"]  # the receivable is negative while owed
    totals["earned_fen"] = int(earned) - int(clawed)
    totals["withdrawn_fen"] = int(withdrawn[0]) if withdrawn else 0
    return totals


def commissions(
    pool: ConnectionPool,
    *,
    referrer: UUID | None = None,
    state: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    sql = f"SELECT {COMMISSION_COLUMNS} FROM read.commissions WHERE true"
    params: list[Any] = []
    if referrer is not None:
        sql += " AND referrer = %s"
        params.append(referrer)
    if state == "clawed_back":
        sql += " AND clawed_fen >= amount_fen"
    elif state:
        sql += " AND state = %s AND clawed_fen < amount_fen"
        params.append(state)
    return _page(
        pool, sql, params, "paid_at DESC, order_id DESC", limit, cursor, ("paid_at", "order_id")
    )


def due_referrers(pool: ConnectionPool, now: datetime, limit: int = 1000) -> list[UUID]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT referrer FROM read.commissions WHERE state = 'pending' "
            "AND due_at <= %s AND clawed_fen < amount_fen ORDER BY referrer LIMIT %s",
            (now, limit),
        ).fetchall()
    return [r[0] for r in rows]


def referrals(
    pool: ConnectionPool,
    *,
    referrer: UUID | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Referral relations (A7): who referred whom, and what each referee's orders earned."""
    sql = (
        "SELECT m.id AS member_id, m.nickname, m.referrer, r.nickname AS referrer_nickname, "
        "m.joined_at, coalesce(c.orders, 0) AS orders, coalesce(c.earned, 0) AS commission_fen "
        "FROM read.members m LEFT JOIN read.members r ON r.id = m.referrer "
        "LEFT JOIN (SELECT referee, count(*) AS orders, "
        "sum(amount_fen - clawed_fen)::bigint AS earned "
        "FROM read.commissions GROUP BY referee) c ON c.referee = m.id "
        "WHERE m.referrer IS NOT NULL"
    )
    params: list[Any] = []
    if referrer is not None:
        sql += " AND m.referrer = %s"
        params.append(referrer)
    return _page(
        pool,
        sql,
        params,
        "m.joined_at DESC, m.id DESC",
        limit,
        cursor,
        ("m.joined_at", "m.id"),
        ("joined_at", "member_id"),
    )


# -- withdrawals ---------------------------------------------------------------------------


def withdrawals(
    pool: ConnectionPool,
    *,
    owner: str | None = None,
    state: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    sql = f"SELECT {WITHDRAWAL_COLUMNS} FROM read.withdrawals WHERE true"
    params: list[Any] = []
    if owner is not None:
        sql += " AND owner = %s"
        params.append(owner)
    if state:
        sql += " AND state = %s"
        params.append(state)
    return _page(
        pool,
        sql,
        params,
        "requested_at DESC, withdrawal_id DESC",
        limit,
        cursor,
        ("requested_at", "withdrawal_id"),
    )


def withdrawal(pool: ConnectionPool, withdrawal_id: UUID) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT owner, {WITHDRAWAL_COLUMNS} FROM read.withdrawals WHERE withdrawal_id = %s",
            (withdrawal_id,),
        ).fetchone()


def payouts_to_check(
    pool: ConnectionPool, quiet_before: datetime, waiting_before: datetime, limit: int = 200
) -> list[Any]:
    """Approved payouts not yet sent and WeChat bills quiet since `quiet_before`, except bills
    waiting for the member to confirm, which are asked about only once WeChat should have
    closed them (`waiting_before`): the reconciliation sweep resends or asks the provider."""
    with pool.connection() as conn:
        return conn.execute(
            "SELECT withdrawal_id, out_bill_no, state, channel FROM read.withdrawals "
            "WHERE (state = 'approved' AND updated_at < %s) OR (state = 'sent' "
            "AND channel = 'wechat' AND updated_at < CASE WHEN provider_state = "
            "'WAIT_USER_CONFIRM' THEN %s ELSE %s END) ORDER BY updated_at LIMIT %s",
            (quiet_before, waiting_before, quiet_before, limit),
        ).fetchall()


# -- points --------------------------------------------------------------------------------


def points_due_members(pool: ConnectionPool, today: date, limit: int = 1000) -> list[UUID]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT member_id FROM read.points_lots WHERE next_expiry < %s "
            "ORDER BY next_expiry, member_id LIMIT %s",
            (today.isoformat(), limit),
        ).fetchall()
    return [r[0] for r in rows]


def member_points(
    pool: ConnectionPool, member_id: UUID, *, limit: int = 20, cursor: str | None = None
) -> dict[str, Any]:
    """The balance, what expires when, and every movement, newest first."""
    account = acc.member_points(member_id)
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        lots = cur.execute(
            "SELECT lots FROM read.points_lots WHERE member_id = %s", (member_id,)
        ).fetchone()
        balances = dict(
            (r["account"], r["balance"])
            for r in cur.execute(
                "SELECT account, balance FROM read.account_balances "
                "WHERE account = ANY(%s) AND asset = 'PTS'",
                ([account, acc.held(account)],),
            ).fetchall()
        )
        sql = (
            "SELECT position, entry_id, kind, amount AS points, occurred_at "
            "FROM read.journal_lines WHERE account = %s AND asset = 'PTS'"
        )
        params: list[Any] = [account]
        if cursor:
            (before,) = cursors.decode(cursor, 1)
            sql += " AND position < %s"
            params.append(int(before))
        rows = cur.execute(sql + " ORDER BY position DESC LIMIT %s", [*params, limit + 1])
        records = rows.fetchall()
    expiring: dict[str, int] = {}
    for expires_on, n, _ in lots["lots"] if lots else []:
        expiring[expires_on] = expiring.get(expires_on, 0) + n
    page, more = records[:limit], len(records) > limit
    return {
        "points": int(balances.get(account, 0)),
        "held": int(balances.get(acc.held(account), 0)),
        "expiring": [{"expires_on": d, "points": n} for d, n in expiring.items()],
        "items": [{k: v for k, v in r.items() if k != "position"} for r in page],
        "next_cursor": cursors.encode(page[-1]["position"]) if more and page else None,
    }
