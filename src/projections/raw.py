"""Events as the log stores them, for the bulk phase of a rebuild.

A rebuild's time goes on turning stored JSON into domain objects (UUIDs, datetimes, journal
entries checked leg by leg) only to turn them back into text for COPY. A `RawEvent` keeps the
state as orjson decodes it: plain dicts in which a transcoded value is still
`{"_type_": "uuid_hex" | "datetime_iso" | ..., "_data_": text}`. The text in `_data_` is what
COPY wants anyway (PostgreSQL reads a 32-digit uuid and an ISO timestamp), so a bulk fold
(see `projections.bulk`) reads the fields it needs with `uid`, `ts` and `entry_of` and writes
rows as COPY text with `copy_rows`, and no domain object is ever made.

`KeyedRows` holds one table's rows by key while a rebuild changes them, and writes the
changed ones back at each checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor

NULL = "\\N"  # COPY text
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
CHUNK = 20_000  # rows per write to the COPY stream


class RawEvent:
    __slots__ = ("data", "kind", "originator", "position", "state", "topic", "version")

    def __init__(
        self, position: int, originator: str, version: int, topic: str, state: bytes, data: Any
    ) -> None:
        self.position = position
        self.originator = originator  # the aggregate's id, 32 hex digits
        self.version = version
        self.topic = topic
        self.kind = topic.rpartition(":")[2]  # FuelOrder.Created
        self.state = state  # as stored, for a fold that wants the domain event after all
        self.data = data  # the state, decoded by orjson


def uid(value: Any) -> str | None:
    """A UUID field as COPY text for a uuid column (a transcoded value's hex digits)."""
    if value is None or type(value) is str:
        return value
    return str(value["_data_"])


ts = uid  # a datetime field: the transcoded ISO text, which timestamptz reads as it is


def when(value: Any) -> datetime:
    """A datetime field as a datetime, for folds that compute with it."""
    return datetime.fromisoformat(value["_data_"])


def entry_of(data: dict[str, Any]) -> dict[str, Any] | None:
    """The journal entry an event carries ({id, kind, legs, reverses, memo}), or None."""
    entry = data.get("entry")
    if type(entry) is dict and entry.get("_type_") == "journal_entry":
        return entry["_data_"]  # type: ignore[no-any-return]
    return None


def text(value: str) -> str:
    """A string as a COPY text cell."""
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def json_text(value: Any) -> str:
    """A dict or list as the text of a jsonb cell (copy_rows writes str as it is)."""
    return orjson.dumps(value).decode()


def copy_lines(cur: Cursor[Any], table: str, columns: Sequence[str], lines: Iterable[str]) -> None:
    """COPY lines already formatted (tab-separated cells, each ending in a newline)."""
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= CHUNK:
                copy.write("".join(chunk))
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))


def copy_rows(
    cur: Cursor[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY rows of None, bool, int, str (uuids and timestamps as text, jsonb as
    `json_text`), date or datetime: psycopg's C formatter writes these fastest."""
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def upsert_rows(
    cur: Cursor[Any],
    table: str,
    columns: Sequence[str],
    conflict: Sequence[str],
    updates: str,
    rows: Iterable[Sequence[Any]],
) -> None:
    """INSERT rows, or on a conflict of `conflict` SET `updates` (which name the table `t`):
    through a COPY into a staging table, since binding the rows as arrays costs more than
    the statement does."""
    stage = staged(cur, table, columns, rows)
    names = ", ".join(columns)
    cur.execute(
        f"INSERT INTO {table} AS t ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}"
    )


def insert_rows(
    cur: Cursor[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    conflict: str = "",
    order: str = "position",
) -> None:
    """INSERT rows in `order`, each ON CONFLICT `conflict` DO NOTHING, as a statement per
    row would in that order (a row that conflicts with one before it is left out): through a
    COPY into a staging table, like upsert_rows."""
    stage = staged(cur, table, columns, rows)
    names = ", ".join(columns)
    cur.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ORDER BY {order} "
        f"ON CONFLICT {conflict} DO NOTHING"
    )


def staged(
    cur: Cursor[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> str:
    """COPY rows into a temporary table shaped like `table` (emptied at commit); its name."""
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} (LIKE {table}) ON COMMIT DELETE ROWS"
    )
    stage = f"pg_temp.stage_{table}"
    cur.execute(f"TRUNCATE {stage}")  # rows staged earlier in this transaction
    copy_rows(cur, stage, columns, rows)
    return stage


def add_sums(
    cur: Cursor[Any],
    table: str,
    keys: Sequence[str],
    values: Sequence[str],
    sums: dict[tuple[Any, ...], list[int]],
    known: set[tuple[Any, ...]] | None = None,
) -> None:
    """Add `sums` (key -> one number per value column) into `table`, as
    station_figures.add_into does (`known`: see merge_rows)."""
    updates = ", ".join(f"{v} = t.{v} + EXCLUDED.{v}" for v in values)
    merge_rows(cur, table, (*keys, *values), keys, updates, sums, known)


def merge_rows(
    cur: Cursor[Any],
    table: str,
    columns: Sequence[str],
    conflict: Sequence[str],
    updates: str,
    rows: dict[tuple[Any, ...], Sequence[Any]],
    known: set[tuple[Any, ...]] | None = None,
) -> None:
    """upsert_rows of `rows` (key -> the other columns' values). `known`: every key the
    table holds, when the fold that writes it knows them all (it began with the table
    empty): the rows of other keys are new and go in with a plain COPY, which costs the
    server about half what an upsert does. `known` takes in the keys written."""
    if not rows:
        return
    if known is None:
        upsert_rows(cur, table, columns, conflict, updates, ((*k, *v) for k, v in rows.items()))
        return
    old = [k for k in rows if k in known]
    if len(old) < len(rows):
        fresh = ((*k, *v) for k, v in rows.items() if k not in known)
        copy_rows(cur, table, columns, fresh)
        known.update(rows)
    if old:
        upsert_rows(cur, table, columns, conflict, updates, ((*k, *rows[k]) for k in old))


def _plain(value: Any) -> Any:
    """A value read back from a table, in the form a fold keeps it (uuids and timestamps
    as text, like the events give them; jsonb as its text)."""
    kind = type(value)
    if kind is UUID:
        return value.hex
    if kind is datetime:
        return value.isoformat()
    if kind is dict or kind is list:
        return json_text(value)
    return value


class KeyedRows:
    """One table's rows by key while a rebuild changes them, as INSERT ... ON CONFLICT DO
    NOTHING and UPDATE ... WHERE key = would. Rows the table already holds are read once per
    checkpoint (`prefetch`); at the checkpoint the changed rows replace theirs (DELETE and
    COPY) and are let go. `complete`: the table holds no row but the ones written here (it
    was empty when the rebuild started), so a key never written has no row to read."""

    def __init__(self, table: str, key: str, columns: Sequence[str], *, complete: bool) -> None:
        self.table, self.key, self.columns = table, key, tuple(columns)
        self.complete = complete
        self.rows: dict[str, dict[str, Any]] = {}
        self.written: set[str] = set()  # keys whose row is in the table
        self.dirty: set[str] = set()
        self.absent: set[str] = set()  # looked up in this checkpoint and not found

    def prefetch(self, cur: Cursor[Any], keys: Iterable[str]) -> None:
        missing = [
            k
            for k in set(keys)
            if k not in self.rows
            and k not in self.absent
            and (not self.complete or k in self.written)
        ]
        if not missing:
            return
        columns = ", ".join(self.columns)
        cur.execute(
            f"SELECT {columns} FROM {self.table} WHERE {self.key} = ANY(%s::uuid[])", (missing,)
        )
        for values in cur.fetchall():
            row = {c: _plain(v) for c, v in zip(self.columns, values, strict=True)}
            self.rows[row[self.key]] = row
            self.written.add(row[self.key])
        self.absent.update(k for k in missing if k not in self.rows)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def insert(self, row: dict[str, Any]) -> None:
        key = row[self.key]
        if key not in self.rows:
            self.rows[key] = row
            self.dirty.add(key)

    def update(self, key: str | None, change: Callable[[dict[str, Any]], None]) -> None:
        row = self.rows.get(key) if key is not None else None
        if row is not None:
            change(row)
            self.dirty.add(key)  # type: ignore[arg-type]

    def forget(self) -> None:
        """Another writer changed the table: read what is needed from it again."""
        self.rows.clear()
        self.absent.clear()
        self.complete = False

    def flush(self, cur: Cursor[Any]) -> None:
        if self.dirty:
            replaced = [k for k in self.dirty if k in self.written]
            if replaced:
                cur.execute(
                    f"DELETE FROM {self.table} WHERE {self.key} = ANY(%s::uuid[])", (replaced,)
                )
            values = itemgetter(*self.columns)
            copy_rows(cur, self.table, self.columns, (values(self.rows[k]) for k in self.dirty))
            self.written.update(self.dirty)
            self.dirty.clear()
        self.rows.clear()
        self.absent.clear()
