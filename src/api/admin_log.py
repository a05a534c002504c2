"""The admin log (A12): every admin sign-in and every change, who, what, before and after.

office.admin_log is append-only (triggers refuse UPDATE, DELETE and TRUNCATE; the API role
may only INSERT and SELECT). Routers record through the `ChangeLog` dependency:

    def edit(..., log: ChangeLog):
        before = ...; after = ...
        log.change("stations", "edit", target=str(station_id), before=before, after=after)
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from api.instants import Instant
from api.permissions import AdminIdentity
from projections import cursor as cursors


def _jsonb(value: Any) -> Jsonb | None:
    if value is None:
        return None
    # Round-trip through JSON so that UUIDs, datetimes and Decimals are plain strings.
    return Jsonb(json.loads(json.dumps(value, default=str)))


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


class AdminLog:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def record(
        self,
        *,
        action: str,
        resource: str,
        outcome: str = "ok",
        admin_id: UUID | None = None,
        admin_name: str | None = None,
        ip: str | None = None,
        target: str | None = None,
        before: Any = None,
        after: Any = None,
        detail: Any = None,
        conn: Any = None,
    ) -> int:
        """Append one line; inside `conn`'s transaction when given (the change and its line
        then commit together)."""
        sql = (
            "INSERT INTO office.admin_log (admin_id, admin_name, ip, action, resource, target, "
            "outcome, before, after, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING log_id"
        )
        params = (
            admin_id,
            admin_name,
            ip,
            action,
            resource,
            target,
            outcome,
            _jsonb(before),
            _jsonb(after),
            _jsonb(detail),
        )
        if conn is not None:
            return int(conn.execute(sql, params).fetchone()[0])
        with self.pool.connection() as own:
            return int(own.execute(sql, params).fetchone()[0])

    def list(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        admin_id: UUID | None = None,
        admin_name: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        outcome: str | None = None,
        target: str | None = None,
        since: Instant | None = None,
        until: Instant | None = None,
    ) -> dict[str, Any]:
        """Newest first; `next_cursor` continues."""
        clauses, params = [], []
        for column, value in (
            ("admin_id", admin_id),
            ("admin_name", admin_name),
            ("action", action),
            ("resource", resource),
            ("outcome", outcome),
            ("target", target),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            clauses.append("at >= %s")
            params.append(since)
        if until is not None:
            clauses.append("at < %s")
            params.append(until)
        if cursor:
            (before_id,) = cursors.decode(cursor, 1)
            clauses.append("log_id < %s")
            params.append(int(before_id))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT log_id, at, admin_id, admin_name, ip, action, resource, target, outcome, "
                f"before, after, detail FROM office.admin_log{where} "
                "ORDER BY log_id DESC LIMIT %s",
                [*params, limit + 1],
            ).fetchall()
        page = rows[:limit]
        more = len(rows) > limit
        return {"items": page, "next_cursor": cursors.encode(page[-1]["log_id"]) if more else None}


class ChangeRecorder:
    """The admin log bound to one request: who is calling and from where."""

    def __init__(self, log: AdminLog, request: Request) -> None:
        self.log = log
        self.request = request

    @property
    def actor(self) -> str:
        """How the calling admin is named in events they cause ('admin:<name>')."""
        admin = getattr(self.request.state, "admin", None)
        return f"admin:{admin.name}" if isinstance(admin, AdminIdentity) else "admin"

    def change(
        self,
        resource: str,
        action: str,
        *,
        target: str | None = None,
        before: Any = None,
        after: Any = None,
        detail: Any = None,
        outcome: str = "ok",
        conn: Any = None,
    ) -> int:
        admin = getattr(self.request.state, "admin", None)
        return self.log.record(
            action=f"{resource}.{action}",
            resource=resource,
            outcome=outcome,
            admin_id=admin.admin_id if isinstance(admin, AdminIdentity) else None,
            admin_name=admin.name if isinstance(admin, AdminIdentity) else None,
            ip=client_ip(self.request),
            target=target,
            before=before,
            after=after,
            detail=detail,
            conn=conn,
        )


def admin_log_of(request: Request) -> AdminLog:
    return AdminLog(request.app.state.core.read_pool)


def change_recorder(request: Request) -> ChangeRecorder:
    return ChangeRecorder(admin_log_of(request), request)


AdminLogDep = Annotated[AdminLog, Depends(admin_log_of)]
ChangeLog = Annotated[ChangeRecorder, Depends(change_recorder)]
