"""Finance's journal questions, from read.journal_lines: the lines of an account, an account
class or every account over a period; the balance sheet as of any point; one entry whole.

Account patterns: an exact account (`platform:revenue`), an account class as the trial
balance names it (`member:*:card`: the id segment starred; served by the class index of
migration 0013), or any pattern whose `*` stands for one segment (`provider:*`).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ledger import accounts as acc
from ledger.accounts import CNY, PTS
from projections import cursor as cursors
from projections.as_of import ACCOUNT_CLASS, AsOf, balances_sql, snapshot

LINE_COLUMNS = "position, entry_id, leg, account, asset, amount, kind, reverses, occurred_at"
# A class names the owner segment `*` (ledger.accounts: member, station, commission debt).
CLASS_PATTERN = re.compile(r"^(member|station|platform:commission_debt):\*(:[^*]+)?$")


@dataclass(frozen=True)
class Period:
    start: datetime | None = None  # included
    end: datetime | None = None  # excluded

    def where(self, params: dict[str, Any]) -> str:
        clauses = ["true"]
        if self.start is not None:
            params["start"] = self.start
            clauses.append("occurred_at >= %(start)s")
        if self.end is not None:
            params["end"] = self.end
            clauses.append("occurred_at < %(end)s")
        return " AND ".join(clauses)


def _glob(pattern: str) -> str:
    return "^" + ":".join("[^:]+" if p == "*" else re.escape(p) for p in pattern.split(":")) + "$"


def _account_filter(pattern: str | None, params: dict[str, Any]) -> str:
    if pattern is None:
        return "true"
    params["pattern"] = pattern
    if "*" not in pattern:
        return "account = %(pattern)s"
    if CLASS_PATTERN.match(pattern):
        return f"{ACCOUNT_CLASS} = %(pattern)s"
    params["pattern"] = _glob(pattern)
    return "account ~ %(pattern)s"


def _page_sql(where: str, assets: list[str] | None) -> str:
    """Lines after the cursor in (position, leg) order. With `assets` (an exact account's),
    one branch per asset, each an in-order range of the (account, asset, position) index,
    merged: asking for an asset the account never had would scan the journal."""
    after = (
        "position >= %(after_position)s AND (position, leg) > (%(after_position)s, %(after_leg)s)"
    )
    order = "ORDER BY position, leg LIMIT %(limit)s"
    if assets is None:
        return f"SELECT {LINE_COLUMNS} FROM read.journal_lines WHERE {where} AND {after} {order}"
    branches = [
        f"(SELECT {LINE_COLUMNS} FROM read.journal_lines WHERE {where} "
        f"AND asset = %(asset_{i})s AND {after} {order})"
        for i in range(len(assets))
    ]
    return f"SELECT * FROM ({' UNION ALL '.join(branches)}) t {order}"


def _assets_of(cur: Cursor[Any], account: str, params: dict[str, Any]) -> list[str]:
    rows = cur.execute(
        "SELECT asset FROM read.account_balances WHERE account = %s ORDER BY asset", (account,)
    ).fetchall()
    assets = [r["asset"] for r in rows]
    params.update({f"asset_{i}": asset for i, asset in enumerate(assets)})
    return assets


def journal(
    pool: ConnectionPool,
    *,
    account: str | None,
    period: Period,
    asset: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Journal lines oldest first, by account (or class or pattern), asset and period."""
    params: dict[str, Any] = {"after_position": -1, "after_leg": -1, "limit": limit + 1}
    if cursor:
        position, leg = cursors.decode(cursor, 2)
        params["after_position"], params["after_leg"] = int(position), int(leg)
    where = f"{_account_filter(account, params)} AND {period.where(params)}"
    if asset:
        params["asset"] = asset
        where += " AND asset = %(asset)s"
    exact = account is not None and "*" not in account and not asset
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        at = snapshot(cur, AsOf())
        assets = _assets_of(cur, account, params) if exact and account else None
        lines = cur.execute(_page_sql(where, assets), params).fetchall() if assets != [] else []
    more = len(lines) > limit
    lines = lines[:limit]
    return {
        "account": account,
        "asset": asset,
        "from": period.start,
        "to": period.end,
        "journal_position": at,
        "lines": lines,
        "next_cursor": cursors.encode(lines[-1]["position"], lines[-1]["leg"]) if more else None,
    }


# -- the balance sheet ------------------------------------------------------------------------


ASSET_ACCOUNTS = (acc.BANK, "platform:commission_debt:*")  # besides provider:*
LIABILITY_ACCOUNTS = (acc.PAYOUTS_IN_TRANSIT, acc.SUSPENSE)  # besides member:*, station:*
# Equity: income less expenses. `platform:provider_fees` is the providers' cut of settled
# statements (reconciliation).
EQUITY_KINDS = {
    acc.PLATFORM_REVENUE: "income",
    acc.PLATFORM_MARKETING: "expense",
    "platform:provider_fees": "expense",
}


def section_of(account_class: str) -> str:
    """Where an account class stands on the balance sheet (ledger.accounts' chart); a hold
    stands with the account it holds for."""
    name = account_class.removesuffix(acc.HELD_SUFFIX)
    if name.startswith("provider:") or name in ASSET_ACCOUNTS:
        return "assets"  # held at the providers and the bank; owed to us by referrers
    if name.startswith(("member:", "station:")) or name in LIABILITY_ACCOUNTS:
        return "liabilities"  # owed to members, stations, payees and payers
    if name in EQUITY_KINDS:
        return "equity"
    return "unclassified"


def _section(rows: list[dict[str, Any]], sign: int = 1) -> dict[str, Any]:
    lines = []
    for r in rows:
        line = {
            "account": r["account"],
            "amount_fen": sign * r["balance"],
            "accounts": r["accounts"],
        }
        if r["account"] in EQUITY_KINDS:
            line["kind"] = EQUITY_KINDS[r["account"]]
        lines.append(line)
    return {"lines": lines, "total_fen": sum(line["amount_fen"] for line in lines)}


def balance_sheet(pool: ConnectionPool, as_of: AsOf) -> dict[str, Any]:
    """Assets (held) = liabilities (owed) + equity (revenue less marketing), in CNY, as of
    any point; points outstanding against points issued beside it. Source accounts go
    negative by what they hold (ledger.accounts), so an asset's amount is minus its balance."""
    params: dict[str, Any] = {}
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        at = snapshot(cur, as_of)
        rows = _classes(cur, balances_sql(as_of, at, params), params)
    by_section: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["asset"] == CNY:
            by_section.setdefault(section_of(row["account"]), []).append(row)
    sheet = {
        "assets": _section(by_section.get("assets", []), sign=-1),
        "liabilities": _section(by_section.get("liabilities", [])),
        "equity": _section(by_section.get("equity", [])),
        "unclassified": _section(by_section.get("unclassified", [])),
    }
    owed = sum(sheet[s]["total_fen"] for s in ("liabilities", "equity", "unclassified"))
    return {
        "journal_position": at,
        "as_of": {"position": as_of.position, "instant": as_of.instant},
        "currency": CNY,
        **sheet,
        "totals": {
            "assets_fen": sheet["assets"]["total_fen"],
            "liabilities_and_equity_fen": owed,
        },
        "balanced": sheet["assets"]["total_fen"] == owed,
        "points": _points([r for r in rows if r["asset"] == PTS]),
    }


def _classes(cur: Cursor[Any], base: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return cur.execute(
        f"SELECT {ACCOUNT_CLASS} AS account, asset, sum(balance)::bigint AS balance, "
        f"count(*) FILTER (WHERE balance <> 0) AS accounts FROM ({base}) t "
        "GROUP BY 1, 2 HAVING count(*) FILTER (WHERE balance <> 0) > 0 ORDER BY 1, 2",
        params,
    ).fetchall()


def _points(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Points owed to members against points the platform issued (PTS, not money)."""
    outstanding = sum(r["balance"] for r in rows if r["account"].startswith("member:"))
    issued = -sum(r["balance"] for r in rows if r["account"] == "points:issued")
    others = sum(r["balance"] for r in rows) - outstanding + issued
    return {
        "asset": PTS,
        "lines": [{"account": r["account"], "balance": r["balance"]} for r in rows],
        "outstanding": outstanding,
        "issued": issued,
        "balanced": outstanding == issued and others == 0,
    }


# -- one entry --------------------------------------------------------------------------------


def _decoded(state: bytes) -> Any:
    """The stored JSON as recorded; bytes that are not JSON (never written) as base64."""
    try:
        return json.loads(state)
    except ValueError:
        return {"base64": base64.b64encode(state).decode()}


def entry(pool: ConnectionPool, entry_id: UUID) -> dict[str, Any] | None:
    """One journal entry with every leg, the entries that reverse it, and the stored event
    that carried it (read by its position: one row, not a list or a balance)."""
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        legs = cur.execute(
            f"SELECT {LINE_COLUMNS} FROM read.journal_lines WHERE entry_id = %s ORDER BY leg",
            (entry_id,),
        ).fetchall()
        if not legs:
            return None
        reversed_by = cur.execute(
            "SELECT entry_id, min(position) AS position, min(kind) AS kind "
            "FROM read.journal_lines WHERE reverses = %s GROUP BY entry_id ORDER BY 2",
            (entry_id,),
        ).fetchall()
        event = cur.execute(
            "SELECT notification_id AS position, originator_id, originator_version, topic, "
            "state FROM public.ledger_events WHERE notification_id = %s",
            (legs[0]["position"],),
        ).fetchone()
    if event is not None:
        event["state"] = _decoded(bytes(event["state"] or b""))
    head = legs[0]
    carried = (event or {}).get("state", {}).get("entry") or {}
    data = carried.get("_data_") or {}
    return {
        "entry_id": head["entry_id"],
        "kind": head["kind"],
        "position": head["position"],
        "occurred_at": head["occurred_at"],
        "reverses": head["reverses"],
        "reversed_by": reversed_by,
        "memo": data.get("memo", {}),
        "legs": [{k: leg[k] for k in ("leg", "account", "asset", "amount")} for leg in legs],
        "event": event,
    }
