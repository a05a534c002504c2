"""Back-office jobs the actors run: the scheduled database backup and export jobs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from workers.context import WorkerContext


def backup_due(context: WorkerContext) -> dict[str, Any]:
    """A sweep: take a backup when none was taken in the last BACKUP_EVERY_HOURS."""
    from infra.backup import due, run_backup

    core = context.core
    settings = core.settings
    if not due(core.owner_url, settings.backup_every_hours):
        return {"backup": "not due"}
    done = run_backup(
        core.owner_url,
        settings.backup_dir or settings.data_dir / "backups",
        keep_days=settings.backup_keep_days,
    )
    return {"backup": str(done.path), "sha256": done.sha256}


def run_export(context: WorkerContext, export_id: str) -> dict[str, Any]:
    from infra.exports import run_job

    settings = context.core.settings
    directory = settings.export_dir or settings.data_dir / "exports"
    return run_job(context.core.read_pool, UUID(export_id), directory)
