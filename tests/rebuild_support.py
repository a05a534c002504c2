"""Helpers for the read-model and rebuild tests: compare the live read models with a fresh
rebuild into the shadow schema, and drive commands."""

from __future__ import annotations

from typing import Any

import psycopg

from infra.bootstrap import Core
from projections.framework import ProjectionRunner
from projections.rebuild import rebuild, rebuildable
from projections.shadow import SHADOW_SCHEMA, bare


def project_live(core: Core, page_size: int = 2000) -> None:
    for projector in rebuildable():
        ProjectionRunner(
            core.app, core.read_pool, projector, page_size=page_size
        ).run_until_caught_up()


def table_rows(conn: psycopg.Connection[Any], schema: str, table: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(f"SELECT * FROM {schema}.{table}").fetchall()
    return sorted(rows, key=repr)


def differences(core: Core, names: tuple[str, ...] = ()) -> dict[str, tuple[int, int, list[str]]]:
    """Tables whose live rows differ from the shadow's: (live rows, shadow rows, some rows
    that are in one and not the other)."""
    found: dict[str, tuple[int, int, list[str]]] = {}
    with psycopg.connect(core.owner_url) as conn:
        for projector in rebuildable(names):
            for table in map(bare, projector.tables()):
                live = table_rows(conn, "read", table)
                shadow = table_rows(conn, SHADOW_SCHEMA, table)
                if live != shadow:
                    diff = set(map(repr, live)) ^ set(map(repr, shadow))
                    found[table] = (len(live), len(shadow), sorted(diff)[:4])
    return found


def fresh_rebuild_differences(
    core: Core, names: tuple[str, ...] = (), page: int | None = None
) -> dict:
    """Rebuild into the shadow from nothing (in this process), without swapping, and compare
    with the live tables. The bulk phase reads the log in windows of `page` positions (and
    writes every few windows); by default a small share of the log, so that rows and sums
    carry over windows and over checkpoints."""
    if page is None:
        with psycopg.connect(core.owner_url) as conn:
            head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM ledger_events")
            page = max(1, int(head.fetchone()[0]) // 11)  # type: ignore[index]
    rebuild(core, core.owner_url, names, lanes=0, fresh=True, progress=False, swap=False, page=page)
    return differences(core, names)


def tracking(core: Core, schema: str = "read") -> dict[str, int]:
    with psycopg.connect(core.owner_url) as conn:
        return dict(conn.execute(f"SELECT projection, position FROM {schema}.tracking"))
