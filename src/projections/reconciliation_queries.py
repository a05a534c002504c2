"""Queries over the reconciliation read models: the ledger a statement is matched against
(one query per bill), runs and exceptions for finance and the back office."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ledger.domain.reconciliation import LedgerMovement, LedgerSnapshot, Statement
from projections import cursor as cursors
from projections.as_of import NotProjectedYet
from projections.framework import ProjectionRunner
from projections.reconciliation import ReconciliationProjector

MOVEMENTS = (
    "SELECT kind, ref, out_trade_no, amount_fen, state, "
    "coalesce(day = %(day)s AND (kind = 'payment' OR state = 'SUCCESS'), false) AS of_day, "
    "settled_on::text "
    "FROM read.provider_movements WHERE provider = %(provider)s AND ("
    "(kind = 'payment' AND ref = ANY(%(payments)s)) OR (kind = 'refund' AND ref = ANY(%(refunds)s))"
    " OR day = %(day)s)"
)
RUN_COLUMNS = (
    "reconciliation_id, provider, bill_date, content_sha256, file_sha256, source, imported_by, "
    "ledger_position, lines, matched, exceptions, open_exceptions, settled_gross_fen, "
    "settled_net_fen, fee_fen, totals, settlement_entry_id, imported_at, updated_at"
)
# The daemon keeps the projector at the head; catching up more than this in a request means
# it is not running (or the projector is new): better said than waited for.
MAX_CATCH_UP_PAGES = 20
EXCEPTION_COLUMNS = (
    "exception_id, reconciliation_id, provider, bill_date, kind, line_kind, ref, out_trade_no, "
    "provider_fen, ledger_fen, detail, state, note, resolved_by, resolved_at, created_at"
)


class ProjectedLedger:
    """The ledger side of a match, read from `read.provider_movements` after catching the
    projector up with the log, so everything committed before the import is seen."""

    def __init__(self, app: Application[UUID], pool: ConnectionPool) -> None:
        self.app = app
        self.pool = pool

    def snapshot(self, provider: str, day: date, statement: Statement) -> LedgerSnapshot:
        self._catch_up()
        params = {
            "provider": provider,
            "day": day,
            "payments": [line.ref for line in statement.lines if line.kind == "payment"],
            "refunds": [line.ref for line in statement.lines if line.kind == "refund"],
        }
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute(
                "SELECT position FROM read.tracking WHERE projection = %s",
                (ReconciliationProjector.name,),
            ).fetchone()
            rows = conn.execute(MOVEMENTS, params).fetchall()
        return LedgerSnapshot(
            position=int(row[0]) if row else 0,
            movements=tuple(LedgerMovement(*r) for r in rows),
        )

    def _catch_up(self) -> None:
        runner = ProjectionRunner(self.app, self.pool, ReconciliationProjector())
        for _ in range(MAX_CATCH_UP_PAGES + 1):
            if not runner.run_once():
                return
        raise NotProjectedYet(
            "the ledger's provider payments are still being projected; retry shortly",
            position=runner.position(),
        )


def _page(
    pool: ConnectionPool,
    sql: str,
    params: dict[str, Any],
    order: tuple[str, str, str],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Newest first by (order column, id); `order` names their SQL type for the cursor."""
    column, id_column, kind = order
    if cursor:
        at, key = cursors.decode(cursor, 2)
        sql += f" AND ({column}, {id_column}) < (%(c_at)s::{kind}, %(c_id)s::uuid)"
        params |= {"c_at": at, "c_id": key}
    sql += f" ORDER BY {column} DESC, {id_column} DESC LIMIT %(limit)s"
    params["limit"] = limit + 1
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    next_cursor = (
        cursors.encode(last[column].isoformat(), last[id_column]) if more and last else None
    )
    return {"items": page, "next_cursor": next_cursor}


def _filters(sql: str, params: dict[str, Any], **equal: Any) -> str:
    for column, value in equal.items():
        if value is not None:
            sql += f" AND {column} = %({column})s"
            params[column] = value
    return sql


def runs(
    pool: ConnectionPool,
    *,
    provider: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    sql = _filters(
        f"SELECT {RUN_COLUMNS} FROM read.reconciliations WHERE true", params, provider=provider
    )
    return _page(pool, sql, params, ("bill_date", "reconciliation_id", "date"), limit, cursor)


def run(pool: ConnectionPool, reconciliation_id: UUID) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {RUN_COLUMNS} FROM read.reconciliations WHERE reconciliation_id = %s",
            (reconciliation_id,),
        ).fetchone()


def exceptions(
    pool: ConnectionPool,
    *,
    state: str | None = None,
    provider: str | None = None,
    kind: str | None = None,
    reconciliation_id: UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    sql = _filters(
        f"SELECT {EXCEPTION_COLUMNS} FROM read.reconciliation_exceptions WHERE true",
        params,
        state=state,
        provider=provider,
        kind=kind,
        reconciliation_id=reconciliation_id,
    )
    order = ("created_at", "exception_id", "timestamptz")
    return _page(pool, sql, params, order, limit, cursor)


def exception(pool: ConnectionPool, exception_id: UUID) -> dict[str, Any] | None:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {EXCEPTION_COLUMNS} FROM read.reconciliation_exceptions "
            "WHERE exception_id = %s",
            (exception_id,),
        ).fetchone()
