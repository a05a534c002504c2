"""Live projectors fed together: one read and one decode of each log page for all of them,
one transaction for the page, a savepoint per projector.

Run one by one, thirteen projectors read the same page thirteen times, decode every event
up to thirteen times and commit thirteen times; at a steady payment load that round-trip
cost is the projection lag. Together, a page costs one read, one decode per event and one
commit. Each projector still moves its own tracking row in the transaction that writes its
rows (locked FOR UPDATE, so a `ledger project run` of the same projector waits its turn),
and a projector whose page fails is rolled back to its savepoint alone: the others advance,
and it retries the page on the next step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from psycopg import Connection
from psycopg.sql import SQL

from projections.framework import Envelope, ProjectionRunner

log = logging.getLogger("projections")


def run_page_together(runners: Sequence[ProjectionRunner], page_size: int = 2000) -> int:
    """Apply at most one page to every runner that is behind; return how many
    notifications the page held, or 0 when no runner advanced (all caught up, or the ones
    behind failed). All runners share one application, pool and schema (the daemon's live
    runners do)."""
    if not runners:
        return 0
    first = runners[0]
    with first.pool.connection() as conn, conn.transaction():
        conn.execute(first.search_path)
        positions = _lock_positions(conn, runners)
        notifications = first.app.recorder.select_notifications(
            start=min(positions), limit=page_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        decoded: dict[int, Any] = {}

        def envelope(n: Any) -> Envelope:
            if n.id not in decoded:
                decoded[n.id] = first.app.mapper.to_domain_event(n)
            return Envelope(n.id, decoded[n.id])

        last = notifications[-1].id
        advanced = False
        for runner, position in zip(runners, positions, strict=True):
            if last <= position:
                continue
            page = [
                envelope(n)
                for n in notifications
                if n.id > position and runner.projector.wants(n.topic)
            ]
            try:
                with conn.transaction(), conn.cursor() as cur:
                    if page:
                        runner.projector.apply(cur, page)
                    runner.move_position(cur, last)
            except Exception:  # noqa: BLE001 - one projector's bug must not stop the rest
                log.exception(
                    "projector %s failed on a page; retrying later", runner.projector.name
                )
                continue
            advanced = True
            runner.applied += sum(1 for n in notifications if n.id > position)
            runner.last_applied_at = time.time()
    return len(notifications) if advanced else 0


def _lock_positions(conn: Connection[Any], runners: Sequence[ProjectionRunner]) -> list[int]:
    """Every runner's tracking row, locked, in two statements (in name order, so two
    daemons never deadlock)."""
    names = [r.projector.name for r in runners]
    tracking = runners[0].tracking
    conn.execute(
        SQL(
            "INSERT INTO {} (projection, position) SELECT unnest(%s::text[]), 0 "
            "ON CONFLICT (projection) DO NOTHING"
        ).format(tracking),
        (names,),
    )
    rows = conn.execute(
        SQL(
            "SELECT projection, position FROM {} WHERE projection = ANY(%s) "
            "ORDER BY projection FOR UPDATE"
        ).format(tracking),
        (names,),
    ).fetchall()
    found = {name: int(position) for name, position in rows}
    return [found[name] for name in names]


def run_together_until_caught_up(runners: Sequence[ProjectionRunner]) -> int:
    total = 0
    while n := run_page_together(runners):
        total += n
    return total
