"""Exports in the back office (A4, A5): CSV or Excel, streamed, with the lists' filters.

    GET  /v1/admin/exports/{kind}?format=csv|xlsx&<filters>   streamed now
    POST /v1/admin/exports/{kind}/jobs?format=...&<filters>   a job: 202 with its status URL
    GET  /v1/admin/exports/{export_id}                         progress and the download link
    GET  /v1/admin/exports/{export_id}/file

Kinds: fuel-orders (orders:export), journal-lines (journal:export), withdrawals
(withdrawals:export) and mall-orders (mall:export) when their read models exist.
"""

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import dramatiq
import redis
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.admin_log import ChangeLog
from api.errors import ApiError
from api.instants import Instant
from api.permissions import CurrentAdmin, require_permission
from infra import exports as ex
from infra.settings import Settings
from projections.office_queries import FuelOrderFilters, JournalFilters

router = APIRouter(tags=["admin: exports"])
Format = Literal["csv", "xlsx"]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Excel is written at about 1,100 rows/s (openpyxl): beyond this, a job, not a request.
XLSX_STREAM_MAX_ROWS = 50_000
OrderStatus = Literal["created", "paying", "paid", "expired", "refunded", "partially_refunded"]

log = logging.getLogger("api.exports")


def fuel_order_filters(
    station_id: UUID | None = None,
    member_id: UUID | None = None,
    status: OrderStatus | None = None,
    method: Literal["card", "wechat", "alipay"] | None = None,
    grade: Annotated[str | None, Query(max_length=8)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    min_amount_fen: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    max_amount_fen: Annotated[int | None, Query(ge=0, le=10**12)] = None,
) -> FuelOrderFilters:
    return FuelOrderFilters(
        station_id, member_id, status, method, grade, since, until, min_amount_fen, max_amount_fen
    )


def journal_filters(
    account: Annotated[str | None, Query(max_length=200)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    asset: Literal["CNY", "PTS"] | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> JournalFilters:
    return JournalFilters(account, owner, asset, kind, since, until)


Word = Annotated[str | None, Query(max_length=32)]


def generic_filters(
    status: Word = None,
    state: Word = None,
    method: Word = None,
    channel: Word = None,
    owner_kind: Word = None,
    member_id: UUID | None = None,
    station_id: UUID | None = None,
    owner_id: UUID | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> dict[str, Any]:
    """For tables of other contexts: each filter applies when the table has that column."""
    return {
        "status": status,
        "state": state,
        "method": method,
        "channel": channel,
        "owner_kind": owner_kind,
        "member_id": member_id,
        "station_id": station_id,
        "owner_id": owner_id,
        "since": since,
        "until": until,
    }


FILTERS: dict[str, Callable[..., Any]] = {
    "fuel-orders": fuel_order_filters,
    "journal-lines": journal_filters,
    "withdrawals": generic_filters,
    "mall-orders": generic_filters,
}
RESOURCES = {
    "fuel-orders": "orders",
    "journal-lines": "journal",
    "withdrawals": "withdrawals",
    "mall-orders": "mall",
}


def export_dir(settings: Settings) -> Path:
    return settings.export_dir or settings.data_dir / "exports"


def _kind(request: Request, name: str) -> ex.ExportKind:
    kind = ex.kind_of(request.app.state.core.read_pool, name)
    if kind is None:
        raise ApiError(404, "not_found", f"There is nothing to export as {name} yet")
    return kind


def _as_json(filters: Any) -> dict[str, Any]:
    if hasattr(filters, "as_json"):
        return filters.as_json()  # type: ignore[no-any-return]
    return {k: (str(v) if v is not None else None) for k, v in filters.items()}


def _usable(kind: ex.ExportKind, filters: Any) -> None:
    if isinstance(filters, dict):
        unusable = ex.unusable_filters(kind, filters)
        if unusable:
            raise ApiError(
                422,
                "invalid_request",
                f"{kind.name} cannot be filtered by {', '.join(unusable)}",
                field=unusable[0],
            )


def stream_export(request: Request, name: str, fmt: str, filters: Any) -> StreamingResponse:
    kind = _kind(request, name)
    _usable(kind, filters)
    sql, params = kind.query(filters)
    pool = request.app.state.core.read_pool
    if fmt == "csv":
        chunks = ex.copy_csv(pool, sql, params)
    else:
        rows = ex.count_rows(pool, sql, params)
        if rows > XLSX_STREAM_MAX_ROWS:
            raise ApiError(
                413,
                "export_too_large",
                f"That many rows in Excel take minutes: use POST /v1/admin/exports/{name}/jobs",
                rows=rows,
                max_rows=XLSX_STREAM_MAX_ROWS,
            )
        chunks = ex.xlsx_chunks(name, kind.columns, ex.stream_rows(pool, sql, params))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt}"'},
    )


def _enqueue_or_run(request: Request, export_id: UUID, background: BackgroundTasks) -> str:
    """With Redis, a worker runs the job (actor run_export); without (tests, a bare dev
    machine), it runs in this process after the response."""
    core = request.app.state.core
    if core.settings.redis_url:
        broker = core.extras.get("export_broker")
        if broker is None:
            from workers.broker import build_broker

            broker = core.extras["export_broker"] = build_broker(core.settings.redis_url)
        try:
            broker.enqueue(
                dramatiq.Message(
                    queue_name="default",
                    actor_name="run_export",
                    args=(),
                    options={},
                    kwargs={"export_id": str(export_id)},
                    message_id=str(uuid.uuid4()),
                )
            )
            return "worker"
        except redis.ConnectionError:
            # The job is recorded already: run it here rather than leave it queued forever.
            log.warning("redis is down: export %s runs in the API process", export_id)
    background.add_task(ex.run_job, core.read_pool, export_id, export_dir(core.settings))
    return "in_process"


def _add_kind_routes(name: str) -> None:
    resource = RESOURCES[name]
    Filters = Annotated[Any, Depends(FILTERS[name])]

    def stream(
        request: Request,
        filters: Filters,
        log: ChangeLog,
        format: Format = "csv",
        _: Any = Depends(require_permission(resource, "export")),
    ) -> StreamingResponse:
        response = stream_export(request, name, format, filters)
        log.change(
            resource, "export", target=name, detail={"format": format, "filters": _as_json(filters)}
        )
        return response

    def start_job(
        request: Request,
        filters: Filters,
        log: ChangeLog,
        background: BackgroundTasks,
        format: Format = "csv",
        _: Any = Depends(require_permission(resource, "export")),
    ) -> dict[str, Any]:
        _usable(_kind(request, name), filters)
        export_id = uuid.uuid4()
        admin = getattr(request.state, "admin", None)
        with request.app.state.core.read_pool.connection() as conn:
            conn.execute(
                "INSERT INTO office.exports (export_id, kind, format, filters, requested_by) "
                "VALUES (%s, %s, %s, %s, %s)",
                (
                    export_id,
                    name,
                    format,
                    Jsonb(_as_json(filters)),
                    getattr(admin, "admin_id", None),
                ),
            )
        runner = _enqueue_or_run(request, export_id, background)
        log.change(
            resource,
            "export_job",
            target=str(export_id),
            detail={"kind": name, "format": format, "filters": _as_json(filters)},
        )
        return {
            "export_id": str(export_id),
            "status": "queued",
            "runner": runner,
            "status_url": f"/v1/admin/exports/{export_id}",
        }

    stream.__doc__ = f"Stream {name} as CSV or Excel, filtered like the list."
    start_job.__doc__ = f"Export {name} as a background job; poll the status URL."
    router.add_api_route(
        f"/exports/{name}",
        stream,
        methods=["GET"],
        name=f"export_{name}",
        response_class=StreamingResponse,
    )
    router.add_api_route(
        f"/exports/{name}/jobs",
        start_job,
        methods=["POST"],
        name=f"export_{name}_job",
        status_code=202,
    )


for _name in FILTERS:
    _add_kind_routes(_name)


def _job(request: Request, export_id: UUID, admin: Any) -> dict[str, Any]:
    with (
        request.app.state.core.read_pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        row = cur.execute(
            "SELECT export_id, kind, format, filters, status, rows_done, rows_total, file_path, "
            "size_bytes, error, requested_by, created_at, started_at, finished_at "
            "FROM office.exports WHERE export_id = %s",
            (export_id,),
        ).fetchone()
    if row is None:
        raise ApiError(404, "not_found", "No such export")
    if not admin.allows(RESOURCES.get(row["kind"], "exports"), "export"):
        raise ApiError(403, "forbidden", f"This needs the permission to export {row['kind']}")
    return row


@router.get("/exports/{export_id:uuid}")
def export_status(
    export_id: UUID,
    request: Request,
    admin: CurrentAdmin,
    _: Any = Depends(require_permission("exports", "view")),
) -> dict[str, Any]:
    """Progress (rows_done of rows_total) and, when done, the download link."""
    row = _job(request, export_id, admin)
    row.pop("file_path")
    if row["status"] == "done":
        row["download_url"] = f"/v1/admin/exports/{export_id}/file"
    total = row["rows_total"]
    row["progress"] = round(row["rows_done"] / total, 4) if total else None
    return row


@router.get("/exports/{export_id:uuid}/file")
def export_file(
    export_id: UUID,
    request: Request,
    admin: CurrentAdmin,
    _: Any = Depends(require_permission("exports", "view")),
) -> FileResponse:
    row = _job(request, export_id, admin)
    if row["status"] != "done" or not row["file_path"] or not Path(row["file_path"]).is_file():
        raise ApiError(409, "export_not_ready", "The export has no file yet", status=row["status"])
    return FileResponse(
        row["file_path"], media_type=MEDIA[row["format"]], filename=Path(row["file_path"]).name
    )
