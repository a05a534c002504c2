"""Finance's as-of questions, answered from read.journal_lines, never by replaying the log:
the trial balance, and one account's balance and statement, now, as of a log position, or
as of an instant.

"As of position p" counts the lines of events at positions <= p; "as of instant t" counts
the lines of events that occurred at or before t. A balance as of p is computed from the
nearer end: the running balance less the lines after p (recent p), or the sum of the lines
up to p (early p). Every answer says the journal position it was read at, in one
repeatable-read snapshot (the running balances and the lines move in one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ledger.errors import DomainError
from projections import cursor as cursors

# An account's class: its owner's id starred (member:*:card, station:*:income,
# platform:commission_debt:*); a SQL function of migration 0013, which indexes the journal
# lines by it.
ACCOUNT_CLASS = "read.account_class(account)"


class NotProjectedYet(DomainError):
    code = "not_projected_yet"
    status = 409


@dataclass(frozen=True)
class AsOf:
    position: int | None = None
    instant: datetime | None = None

    def where(self, params: dict[str, Any], later: bool = False) -> str:
        """The lines counted (or, with `later`, those not counted) as of this point."""
        op = ">" if later else "<="
        if self.position is not None:
            params["bound"] = self.position
            return f"position {op} %(bound)s"
        if self.instant is not None:
            params["bound"] = self.instant
            return f"occurred_at {op} %(bound)s"
        return "false" if later else "true"


def snapshot(cur: Cursor[Any], as_of: AsOf) -> int:
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    row = cur.execute("SELECT position FROM read.tracking WHERE projection = 'journal'").fetchone()
    at = int(row["position"]) if row else 0
    if as_of.position is not None and as_of.position > at:
        raise NotProjectedYet(
            f"the journal is projected up to position {at}", position=at, asked=as_of.position
        )
    return at


def _from_running(as_of: AsOf, at: int) -> bool:
    """Subtract what came later from the running balances, or add up what came before?"""
    if as_of.position is not None:
        return as_of.position >= at // 2
    return True


def balances_sql(as_of: AsOf, at: int, params: dict[str, Any], where: str = "true") -> str:
    """(account, asset, balance) of every account as of `as_of`, nonzero only."""
    if as_of.position is None and as_of.instant is None:
        return f"SELECT account, asset, balance FROM read.account_balances WHERE {where}"
    if _from_running(as_of, at):
        return (
            "SELECT b.account, b.asset, (b.balance - coalesce(l.s, 0))::bigint AS balance FROM "
            f"(SELECT account, asset, balance FROM read.account_balances WHERE {where}) b "
            "LEFT JOIN (SELECT account, asset, sum(amount) AS s FROM read.journal_lines "
            f"WHERE {as_of.where(params, later=True)} AND {where} GROUP BY account, asset) l "
            "USING (account, asset)"
        )
    return (
        "SELECT account, asset, sum(amount)::bigint AS balance FROM read.journal_lines "
        f"WHERE {as_of.where(params)} AND {where} GROUP BY account, asset"
    )


def trial_balance(
    pool: ConnectionPool,
    as_of: AsOf,
    *,
    level: str = "class",
    prefix: str | None = None,
    limit: int = 500,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Balances by account class (member:*:card ...) or by account, with each asset's
    totals, which sum to zero when the books balance."""
    params: dict[str, Any] = {}
    where = "true"
    if prefix:
        params["prefix"] = prefix.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        params["prefix"] += "%"
        where = "account LIKE %(prefix)s"
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        at = snapshot(cur, as_of)
        base = balances_sql(as_of, at, params, where)
        totals = cur.execute(
            "SELECT asset, coalesce(sum(balance) FILTER (WHERE balance > 0), 0)::bigint AS "
            "positive, coalesce(sum(balance) FILTER (WHERE balance < 0), 0)::bigint AS negative,"
            f" coalesce(sum(balance), 0)::bigint AS net FROM ({base}) t GROUP BY asset "
            "ORDER BY asset",
            params,
        ).fetchall()
        if level == "class":
            rows = cur.execute(
                f"SELECT {ACCOUNT_CLASS} AS account, asset, sum(balance)::bigint AS balance, "
                f"count(*) FILTER (WHERE balance <> 0) AS accounts FROM ({base}) t "
                "GROUP BY 1, 2 HAVING sum(balance) <> 0 OR count(*) FILTER "
                "(WHERE balance <> 0) > 0 ORDER BY 1, 2",
                params,
            ).fetchall()
            next_cursor = None
        else:
            page = ""
            if cursor:
                params["after_account"], params["after_asset"] = cursors.decode(cursor, 2)
                page = "AND (account, asset) > (%(after_account)s, %(after_asset)s)"
            params["limit"] = limit + 1
            rows = cur.execute(
                f"SELECT account, asset, balance FROM ({base}) t WHERE balance <> 0 {page} "
                "ORDER BY account, asset LIMIT %(limit)s",
                params,
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = cursors.encode(rows[-1]["account"], rows[-1]["asset"]) if more else None
    return {
        "journal_position": at,
        "as_of": {"position": as_of.position, "instant": as_of.instant},
        "level": level,
        "balanced": all(t["net"] == 0 for t in totals) if not prefix else None,
        "totals": totals,
        "items": rows,
        "next_cursor": next_cursor,
    }


def account_statement(
    pool: ConnectionPool,
    account: str,
    as_of: AsOf,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One account's balance per asset as of `as_of`, and its lines newest first, each with
    the balance after it."""
    params: dict[str, Any] = {"account": account}
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        at = snapshot(cur, as_of)
        balances = {
            r["asset"]: int(r["balance"])
            for r in cur.execute(
                balances_sql(as_of, at, params, "account = %(account)s"), params
            ).fetchall()
            if r["balance"]
        }
        clauses = ["account = %(account)s", as_of.where(params)]
        running = dict(balances)
        if cursor:
            position, leg = cursors.decode(cursor, 2)
            params["before_position"], params["before_leg"] = int(position), int(leg)
            newer = cur.execute(
                "SELECT asset, sum(amount)::bigint AS s FROM read.journal_lines "
                f"WHERE {' AND '.join(clauses)} "
                "AND (position, leg) >= (%(before_position)s, %(before_leg)s) GROUP BY asset",
                params,
            ).fetchall()
            for r in newer:
                running[r["asset"]] = running.get(r["asset"], 0) - int(r["s"])
            clauses.append("(position, leg) < (%(before_position)s, %(before_leg)s)")
        params["limit"] = limit + 1
        lines = cur.execute(
            "SELECT position, entry_id, leg, kind, asset, amount, reverses, occurred_at "
            f"FROM read.journal_lines WHERE {' AND '.join(clauses)} "
            "ORDER BY position DESC, leg DESC LIMIT %(limit)s",
            params,
        ).fetchall()
    more = len(lines) > limit
    lines = lines[:limit]
    for line in lines:
        line["balance_after"] = running.get(line["asset"], 0)
        running[line["asset"]] = line["balance_after"] - line["amount"]
    return {
        "account": account,
        "journal_position": at,
        "as_of": {"position": as_of.position, "instant": as_of.instant},
        "balances": balances,
        "lines": lines,
        "next_cursor": (
            cursors.encode(lines[-1]["position"], lines[-1]["leg"]) if more and lines else None
        ),
    }
