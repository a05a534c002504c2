"""Bulk exports (A4, A5), with memory flat whatever the row count: CSV is made by PostgreSQL
(COPY ... TO STDOUT) and passed on block by block; Excel rows come from a server-side
cursor a batch at a time into openpyxl's write-only workbook. Small exports are streamed in
the response; large ones run as a job (office.exports) with progress and a file.

Measured here (2 cores): CSV about 100,000 rows/s; Excel about 1,100 rows/s (openpyxl's
XML writer is the cost), which is why large Excel exports belong in a job.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from psycopg_pool import ConnectionPool

from projections.office_queries import FuelOrderFilters, JournalFilters
from projections.order_queries import ORDER_COLUMNS

BATCH = 2000
XLSX_SHEET_ROWS = 1_000_000  # Excel's limit is 1,048,576 a sheet
FILE_CHUNK = 1 << 16
EXCEL_TZ = ZoneInfo("Asia/Shanghai")  # Excel has no time zones: times are shown in Beijing's


@dataclass(frozen=True)
class ExportKind:
    name: str  # also the URL segment
    resource: str  # the permission resource; the action is always "export"
    table: str
    columns: tuple[str, ...]
    order_by: str
    time_column: str | None = None
    equal_filters: tuple[str, ...] = ()
    filters_class: type | None = None
    optional: bool = False  # the table belongs to another context and may not exist yet

    def query(self, filters: Any) -> tuple[str, list[Any]]:
        if hasattr(filters, "where"):
            where, params = filters.where()
        else:
            where, params = generic_where(self, filters or {})
        return (
            f"SELECT {', '.join(self.columns)} FROM {self.table} WHERE {where} "
            f"ORDER BY {self.order_by}",
            params,
        )


def unusable_filters(kind: ExportKind, filters: dict[str, Any]) -> list[str]:
    """Filters given that this kind's table cannot apply (asking them is an error)."""
    usable = {*kind.equal_filters, *(("since", "until") if kind.time_column else ())}
    return sorted(k for k, v in filters.items() if v is not None and k not in usable)


def generic_where(kind: ExportKind, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for name in kind.equal_filters:
        if filters.get(name) is not None:
            clauses.append(f"{name} = %s")
            params.append(filters[name])
    if kind.time_column:
        for key, op in (("since", ">="), ("until", "<")):
            if filters.get(key) is not None:
                clauses.append(f"{kind.time_column} {op} %s")
                params.append(filters[key])
    return (" AND ".join(clauses) or "TRUE"), params


KINDS: dict[str, ExportKind] = {
    "fuel-orders": ExportKind(
        "fuel-orders",
        "orders",
        "read.fuel_orders",
        tuple(c.strip() for c in ORDER_COLUMNS.split(",")),
        "created_at DESC, order_id DESC",
        filters_class=FuelOrderFilters,
    ),
    "journal-lines": ExportKind(
        "journal-lines",
        "journal",
        "read.journal_lines",
        (
            "position",
            "entry_id",
            "leg",
            "account",
            "asset",
            "amount",
            "kind",
            "reverses",
            "occurred_at",
        ),
        "position, entry_id, leg",
        filters_class=JournalFilters,
    ),
}
# Tables other contexts own: exported with every column when they exist, filtered by those
# of these columns they have (and since/until on their request or creation time).
GENERIC_FILTERS = (
    "status",
    "state",
    "member_id",
    "station_id",
    "method",
    "owner_kind",
    "owner_id",
    "channel",
)
OPTIONAL = {
    "withdrawals": ("withdrawals", "read.withdrawals"),
    "mall-orders": ("mall", "read.mall_orders"),
}


def optional_kind(pool: ConnectionPool, name: str) -> ExportKind | None:
    resource, table = OPTIONAL[name]
    schema, relname = table.split(".")
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, relname),
        ).fetchall()
    if not rows:
        return None
    columns = tuple(c for c, _ in rows)
    times = [c for c, t in rows if t.startswith("timestamp")]
    time_column = next((c for c in ("requested_at", "created_at") if c in columns), None)
    time_column = time_column or (times[0] if times else None)
    equal = tuple(c for c in GENERIC_FILTERS if c in columns)
    order = f"{time_column} DESC, {columns[0]}" if time_column else columns[0]
    return ExportKind(name, resource, table, columns, order, time_column, equal, optional=True)


def kind_of(pool: ConnectionPool, name: str) -> ExportKind | None:
    if name in KINDS:
        return KINDS[name]
    if name in OPTIONAL:
        return optional_kind(pool, name)
    return None


def filters_from_json(kind: ExportKind, data: dict[str, Any]) -> Any:
    if kind.filters_class is None:
        return data
    values = {k: v for k, v in data.items() if v is not None}
    for key in ("since", "until"):
        if key in values:
            values[key] = datetime.fromisoformat(values[key])
    for key in ("station_id", "member_id"):
        if key in values:
            values[key] = UUID(values[key])
    for key in ("min_amount_fen", "max_amount_fen"):
        if key in values:
            values[key] = int(values[key])
    return kind.filters_class(**values)


# -- rows --------------------------------------------------------------------------------------


def stream_rows(
    pool: ConnectionPool, sql: str, params: Sequence[Any], batch: int = BATCH
) -> Iterator[tuple[Any, ...]]:
    """Rows from a server-side (named) cursor, `batch` at a time: never the whole result."""
    name = f"export_{uuid4().hex[:12]}"
    with pool.connection() as conn, conn.transaction(), conn.cursor(name=name) as cur:
        cur.itersize = batch
        cur.execute(sql, params)
        while rows := cur.fetchmany(batch):
            yield from rows


def copy_csv(pool: ConnectionPool, sql: str, params: Sequence[Any]) -> Iterator[bytes]:
    """CSV made by PostgreSQL itself (COPY ... TO STDOUT), passed on block by block: the
    fastest path, with nothing held but the block in hand. Times are shown in Beijing time
    with their offset."""
    yield "\ufeff".encode()
    with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("SET LOCAL TimeZone = 'Asia/Shanghai'")
        with cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy:
            chunk = bytearray()
            for block in copy:  # a row each: gathered into ~64 KiB chunks
                chunk += block
                if len(chunk) >= FILE_CHUNK:
                    yield bytes(chunk)
                    chunk.clear()
            if chunk:
                yield bytes(chunk)


def count_rows(pool: ConnectionPool, sql: str, params: Sequence[Any]) -> int:
    with pool.connection() as conn:
        row = conn.execute(f"SELECT count(*) FROM ({sql}) AS rows", params).fetchone()
    return int(row[0]) if row else 0


def excel_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(EXCEL_TZ).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def write_xlsx(
    path: Path,
    title: str,
    columns: Sequence[str],
    rows: Iterator[Sequence[Any]],
    progress: Callable[[int], None] | None = None,
) -> int:
    """An Excel workbook in openpyxl's write-only mode (rows go to disk as they come)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = None
    count = 0
    for row in rows:
        if count % XLSX_SHEET_ROWS == 0:
            suffix = f" {count // XLSX_SHEET_ROWS + 1}" if count else ""
            sheet = workbook.create_sheet(title=(title + suffix)[:31])
            sheet.append(list(columns))
        assert sheet is not None
        sheet.append([excel_cell(v) for v in row])
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    if sheet is None:
        workbook.create_sheet(title=title[:31]).append(list(columns))
    workbook.save(str(path))
    return count


def xlsx_chunks(
    title: str, columns: Sequence[str], rows: Iterator[Sequence[Any]]
) -> Iterator[bytes]:
    """Build the workbook in a temporary file, then send it in chunks and delete it."""
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        path = Path(tmp) / "export.xlsx"
        write_xlsx(path, title, columns, rows)
        yield from file_chunks(path)


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(FILE_CHUNK):
            yield chunk


# -- jobs --------------------------------------------------------------------------------------


@dataclass
class JobProgress:
    pool: ConnectionPool
    export_id: UUID
    every: int = 10_000
    done: int = field(default=0)

    def __call__(self, rows: int) -> None:
        self.done = rows
        with self.pool.connection() as conn:
            conn.execute(
                "UPDATE office.exports SET rows_done = %s WHERE export_id = %s",
                (rows, self.export_id),
            )


def counted(rows: Iterator[Sequence[Any]], progress: JobProgress) -> Iterator[Sequence[Any]]:
    n = 0
    for row in rows:
        yield row
        n += 1
        if n % progress.every == 0:
            progress(n)
    progress.done = n


def run_job(pool: ConnectionPool, export_id: UUID, directory: Path) -> dict[str, Any]:
    """Run a queued export: write its file under `directory`, updating rows_done as it goes.
    A job already running or finished is left alone (a redelivered message is a no-op)."""
    with pool.connection() as conn:
        row = conn.execute(
            "UPDATE office.exports SET status = 'running', started_at = now() "
            "WHERE export_id = %s AND status = 'queued' RETURNING kind, format, filters",
            (export_id,),
        ).fetchone()
    if row is None:
        return {"export_id": str(export_id), "skipped": True}
    name, fmt, filters = row
    try:
        kind = kind_of(pool, name)
        if kind is None:
            raise ValueError(f"nothing to export as {name}")
        sql, params = kind.query(filters_from_json(kind, filters))
        total = count_rows(pool, sql, params)
        with pool.connection() as conn:
            conn.execute(
                "UPDATE office.exports SET rows_total = %s WHERE export_id = %s",
                (total, export_id),
            )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}-{export_id.hex}.{fmt}"
        progress = JobProgress(pool, export_id)
        if fmt == "csv":
            lines = 0
            with path.open("wb") as out:
                for block in copy_csv(pool, sql, params):
                    out.write(block)
                    before, lines = lines, lines + block.count(b"\n")
                    if lines // progress.every > before // progress.every:
                        progress(max(0, lines - 1))  # a quoted value may hold a newline
            progress.done = total
        else:
            rows = counted(stream_rows(pool, sql, params), progress)
            write_xlsx(path, name, kind.columns, rows)
    except Exception as exc:
        with pool.connection() as conn:
            conn.execute(
                "UPDATE office.exports SET status = 'failed', error = %s, finished_at = now() "
                "WHERE export_id = %s",
                (str(exc)[:2000], export_id),
            )
        raise
    with pool.connection() as conn:
        conn.execute(
            "UPDATE office.exports SET status = 'done', rows_done = %s, file_path = %s, "
            "size_bytes = %s, finished_at = now() WHERE export_id = %s",
            (progress.done, str(path), path.stat().st_size, export_id),
        )
    return {"export_id": str(export_id), "rows": progress.done, "path": str(path)}
