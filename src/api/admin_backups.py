"""Database backups in the back office (A11): list, run one now, download a dump."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from psycopg.rows import dict_row

from api.admin_log import ChangeLog
from api.errors import ApiError
from api.permissions import require_permission
from infra.backup import BackupError, run_backup
from infra.settings import Settings

router = APIRouter(tags=["admin: backups"])
COLUMNS = (
    "backup_id, file_name, size_bytes, sha256, server_version, status, error, started_at, "
    "finished_at"
)


def backup_dir(settings: Settings) -> Path:
    return settings.backup_dir or settings.data_dir / "backups"


@router.get("/backups")
def list_backups(request: Request, _: Any = Depends(require_permission("backups", "view"))):
    """Newest first, with size and sha256."""
    with (
        request.app.state.core.read_pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        rows = cur.execute(
            f"SELECT {COLUMNS} FROM office.backups ORDER BY started_at DESC LIMIT 200"
        ).fetchall()
    for row in rows:
        if row["status"] == "done":
            row["download_url"] = f"/v1/admin/backups/{row['backup_id']}/file"
    return {"items": rows}


@router.post("/backups", status_code=201)
def backup_now(
    request: Request, log: ChangeLog, _: Any = Depends(require_permission("backups", "change"))
) -> dict[str, Any]:
    """Take a backup now (the worker also takes one on schedule). A plain `def`: FastAPI
    runs it in its thread pool, so pg_dump and the admin-log writes never block the loop."""
    core = request.app.state.core
    try:
        done = run_backup(
            core.owner_url, backup_dir(core.settings), keep_days=core.settings.backup_keep_days
        )
    except BackupError as exc:
        log.change("backups", "run", outcome="failed", detail={"error": str(exc)[:500]})
        raise ApiError(500, "backup_failed", "The backup failed", detail=str(exc)[:500]) from None
    after = {
        "backup_id": str(done.backup_id),
        "file_name": done.path.name,
        "size_bytes": done.size_bytes,
        "sha256": done.sha256,
    }
    log.change("backups", "run", target=str(done.backup_id), after=after)
    return {**after, "download_url": f"/v1/admin/backups/{done.backup_id}/file"}


@router.get("/backups/{backup_id}/file")
def download_backup(
    backup_id: UUID,
    request: Request,
    log: ChangeLog,
    _: Any = Depends(require_permission("backups", "export")),
) -> FileResponse:
    with request.app.state.core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT file_path, file_name, sha256 FROM office.backups "
            "WHERE backup_id = %s AND status = 'done'",
            (backup_id,),
        ).fetchone()
    if row is None or not Path(row[0]).is_file():
        raise ApiError(404, "not_found", "No such backup file")
    log.change("backups", "download", target=str(backup_id))
    return FileResponse(
        row[0],
        media_type="application/octet-stream",
        filename=row[1],
        headers={"X-Checksum-Sha256": row[2]},
    )
