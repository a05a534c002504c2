"""The shadow schema a rebuild fills: copies of the live read-model tables, made from the live
definitions, and the swap that puts them in place of the live ones.

A shadow table is `LIKE read.x` with its columns, defaults and checks; its primary and unique
constraints (which upserts need) and its triggers (the journal's balance check) are added at
once, under the live names (after the bulk load for a table the load only appends to); its
other indexes are added after the bulk load, which is faster than keeping them up to date
row by row. Grants are copied from the live table. The swap
drops the live table and moves the shadow one into `read`, names and all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import Connection
from psycopg.sql import SQL, Identifier

from projections.framework import LIVE_SCHEMA

SHADOW_SCHEMA = "read_shadow"


def bare(table: str) -> str:
    return table.split(".", 1)[-1]


def _retarget(ddl: str, table: str, schema: str) -> str:
    """Point a definition printed for read.<table> at <schema>.<table>."""
    pattern = rf"\bON (ONLY )?{LIVE_SCHEMA}\.{re.escape(table)}\b"
    out, count = re.subn(pattern, lambda m: f"ON {m.group(1) or ''}{schema}.{table}", ddl)
    if count != 1:
        raise RuntimeError(f"cannot retarget definition: {ddl}")
    return out


def ensure_schema(conn: Connection[Any], schema: str = SHADOW_SCHEMA) -> None:
    """The schema and its tracking table; who may read the live tracking rows (the API, for
    its metrics) may read the rebuild's too."""
    conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
    conn.execute(
        SQL("CREATE TABLE IF NOT EXISTS {}.tracking (LIKE {}.tracking INCLUDING ALL)").format(
            Identifier(schema), Identifier(LIVE_SCHEMA)
        )
    )
    readers = conn.execute(
        "SELECT DISTINCT grantee FROM information_schema.table_privileges WHERE table_schema = %s"
        " AND table_name = 'tracking' AND privilege_type = 'SELECT' AND grantee <> current_user",
        (LIVE_SCHEMA,),
    ).fetchall()
    for (grantee,) in readers:
        conn.execute(
            SQL("GRANT USAGE ON SCHEMA {} TO {}").format(Identifier(schema), Identifier(grantee))
        )
        conn.execute(
            SQL("GRANT SELECT ON {}.tracking TO {}").format(Identifier(schema), Identifier(grantee))
        )


def create_shadow(
    conn: Connection[Any], table: str, schema: str = SHADOW_SCHEMA, *, keyed: bool = True
) -> None:
    """(Re)create the shadow of read.<table>, empty, without its secondary indexes; and
    without its keys and triggers either when not `keyed` (a table the bulk phase only
    appends to: `add_keys_and_triggers` adds them after it, faster than keeping them)."""
    live = SQL("{}.{}").format(Identifier(LIVE_SCHEMA), Identifier(table))
    shadow = SQL("{}.{}").format(Identifier(schema), Identifier(table))
    conn.execute(SQL("DROP TABLE IF EXISTS {}").format(shadow))
    conn.execute(
        SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING INDEXES)").format(shadow, live)
    )
    if keyed:
        add_keys_and_triggers(conn, table, schema)
    grants = conn.execute(
        "SELECT grantee, string_agg(privilege_type, ', ') FROM information_schema.table_privileges "
        "WHERE table_schema = %s AND table_name = %s AND grantee <> current_user "
        "GROUP BY grantee",
        (LIVE_SCHEMA, table),
    ).fetchall()
    for grantee, privileges in grants:
        conn.execute(
            SQL("GRANT " + privileges + " ON {} TO {}").format(  # type: ignore[arg-type]
                shadow, Identifier(grantee)
            )
        )


def add_keys_and_triggers(conn: Connection[Any], table: str, schema: str = SHADOW_SCHEMA) -> None:
    """read.<table>'s primary and unique constraints (which upserts need) and its triggers
    (the journal's balance check), under the live names, on <schema>.<table>; those it has
    already are left alone."""
    shadow = SQL("{}.{}").format(Identifier(schema), Identifier(table))
    present = {
        name
        for (name,) in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
            "UNION SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass",
            (f"{schema}.{table}", f"{schema}.{table}"),
        ).fetchall()
    }
    keys = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname",
        (f"{LIVE_SCHEMA}.{table}",),
    ).fetchall()
    for name, definition in keys:
        if name not in present:
            conn.execute(
                SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(shadow, Identifier(name))
                + SQL(definition)  # type: ignore[arg-type]
            )
    triggers = conn.execute(
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname",
        (f"{LIVE_SCHEMA}.{table}",),
    ).fetchall()
    for name, definition in triggers:
        if name not in present:
            conn.execute(_retarget(definition, table, schema))  # type: ignore[arg-type]


def secondary_indexes(conn: Connection[Any], table: str) -> list[tuple[str, str]]:
    """(name, definition) of read.<table>'s indexes that back no constraint."""
    return conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname",
        (f"{LIVE_SCHEMA}.{table}",),
    ).fetchall()


def missing_indexes(
    conn: Connection[Any], tables: Iterable[str], schema: str = SHADOW_SCHEMA
) -> list[str]:
    """CREATE INDEX statements for the live tables' secondary indexes that the shadow
    tables lack yet."""
    statements = []
    for table in tables:
        present = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                (schema, table),
            ).fetchall()
        }
        for name, definition in secondary_indexes(conn, table):
            if name not in present:
                statements.append(_retarget(definition, table, schema))
    return statements


def swap_tables(conn: Connection[Any], tables: Sequence[str], schema: str = SHADOW_SCHEMA) -> None:
    """Inside the caller's transaction: drop each live table, move its shadow in."""
    for table in tables:
        conn.execute(SQL("DROP TABLE {}.{}").format(Identifier(LIVE_SCHEMA), Identifier(table)))
        conn.execute(
            SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                Identifier(schema), Identifier(table), Identifier(LIVE_SCHEMA)
            )
        )
