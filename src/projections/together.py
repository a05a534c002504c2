"""Live projectors fed together: one read and one decode of each log page for all of them,
one transaction for the page.

Run one by one, thirteen projectors read the same page thirteen times, decode every event
up to thirteen times and commit thirteen times; at a steady payment load that round-trip
cost is the projection lag. Together, a page costs one read, one decode per event, one
statement moving every tracking row and one commit. Each projector's tracking row moves in
the transaction that writes its rows (locked FOR UPDATE, so a `ledger project run` of the
same projector waits its turn).

A page is first applied with no savepoint (a SAVEPOINT and its RELEASE are two round trips a
projector, most of a page's cost when the page is small and the box is busy). If any
projector fails, that transaction is rolled back and the page applied again with a savepoint
per projector: the failing one is rolled back alone, the others advance, and it retries the
page on the next step.
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

# A page's commit does not wait for its WAL flush. Read models are rebuilt from the log: a
# crash can lose the last pages, never part of one (each moves its own tracking rows), and
# those pages are applied again on restart. Outbox rows lost that way are made again with
# the same keys, and their effects are idempotent. The wait was a projection-lag spike
# whenever the disk was slow.
_NO_FLUSH_WAIT = SQL("; SET LOCAL synchronous_commit TO off")


def run_page_together(runners: Sequence[ProjectionRunner], page_size: int = 2000) -> int:
    """Apply at most one page to every runner that is behind; return how many
    notifications the page held, or 0 when no runner advanced (all caught up, or the ones
    behind failed). All runners share one application, pool and schema (the daemon's live
    runners do)."""
    if not runners:
        return 0
    try:
        return _apply_page(runners, page_size, isolated=False)
    except Exception:  # noqa: BLE001 - find the failing projector with a savepoint each
        log.info("a projector failed on a shared page; applying it projector by projector")
        return _apply_page(runners, page_size, isolated=True)


def _apply_page(runners: Sequence[ProjectionRunner], page_size: int, *, isolated: bool) -> int:
    first = runners[0]
    moved: list[tuple[ProjectionRunner, int]] = []
    with first.pool.connection() as conn, conn.transaction():
        conn.execute(first.search_path + _NO_FLUSH_WAIT)  # one round trip
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
        for runner, position in zip(runners, positions, strict=True):
            if last <= position:
                continue
            page = [
                envelope(n)
                for n in notifications
                if n.id > position and runner.projector.wants(n.topic)
            ]
            if isolated:
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
            elif page:
                with conn.cursor() as cur:
                    runner.projector.apply(cur, page)
            moved.append((runner, sum(1 for n in notifications if n.id > position)))
        if moved and not isolated:
            _move_positions(conn, first, [r.projector.name for r, _ in moved], last)
    now = time.time()
    for runner, covered in moved:
        runner.applied += covered
        runner.last_applied_at = now
    return len(notifications) if moved else 0


def _lock_positions(conn: Connection[Any], runners: Sequence[ProjectionRunner]) -> list[int]:
    """Every runner's tracking row, locked, in name order (so two daemons never deadlock);
    rows missing (a projector's first page) are made first."""
    names = [r.projector.name for r in runners]
    tracking = runners[0].tracking
    select = SQL(
        "SELECT projection, position FROM {} WHERE projection = ANY(%s) "
        "ORDER BY projection FOR UPDATE"
    ).format(tracking)
    found = {name: int(position) for name, position in conn.execute(select, (names,))}
    if len(found) < len(names):
        conn.execute(
            SQL(
                "INSERT INTO {} (projection, position) SELECT unnest(%s::text[]), 0 "
                "ON CONFLICT (projection) DO NOTHING"
            ).format(tracking),
            (names,),
        )
        found = {name: int(position) for name, position in conn.execute(select, (names,))}
    return [found[name] for name in names]


def _move_positions(
    conn: Connection[Any], first: ProjectionRunner, names: list[str], position: int
) -> None:
    conn.execute(
        SQL("UPDATE {} SET position = %s, updated_at = now() WHERE projection = ANY(%s)").format(
            first.tracking
        ),
        (position, names),
    )


def run_together_until_caught_up(runners: Sequence[ProjectionRunner]) -> int:
    total = 0
    while n := run_page_together(runners):
        total += n
    return total
