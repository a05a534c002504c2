"""`ledger rebuild [NAME...]`: rebuild read models into a shadow schema and swap them in
(blue/green) while the API keeps serving the live tables.

1. Shadow: for each projector, its tables are copied empty into `read_shadow` (see
   `projections.shadow`) with a tracking row of its own at 0. A projector whose shadow
   tracking row already exists is resumed from it: a killed rebuild goes on where it was.
2. Bulk: lanes (one process each, as many as cores) share the projectors out; a lane reads
   the log up to the head it was given in windows of 10,000 positions (only the topics its
   projectors want), decodes each event once with the application's mapper, hands the page to each
   projector's `apply_bulk` and moves their shadow tracking rows, in one transaction per
   page. Then it adds the secondary indexes of its tables.
3. Catch-up: the ordinary runner, on the shadow schema, to the live head.
4. Swap, in one short transaction per projector: lock its live tracking row (the live runner
   waits), apply what arrived since, drop its live tables, move the shadow ones in, and set
   the live tracking row to the shadow's position. The live runner then goes on from there.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

from projections import shadow
from projections.framework import LIVE_SCHEMA, Envelope, ProjectionRunner, Projector
from projections.registry import all_projectors, by_name

PAGE = 10_000
LOCK_KEY = 7263005  # one rebuild at a time
SWAP_ATTEMPTS = 5


class RebuildBusy(RuntimeError):
    pass


@dataclass
class RebuildResult:
    projectors: list[str]
    head: int
    seconds: float
    events_read: int = 0
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Lane:
    index: int
    url: str
    names: tuple[str, ...]
    topics: tuple[str, ...] | None  # None: every topic
    stop: int
    page: int = PAGE


class NotRebuildable(ValueError):
    pass


def rebuildable(names: Sequence[str] = ()) -> list[Projector]:
    """The projectors named (default: all that can be): they own tables and are
    schema-aware (see Projector.schema_aware)."""
    if not names:
        return [p for p in all_projectors() if p.tables() and p.schema_aware]
    projectors = [by_name(n) for n in names]
    for p in projectors:
        if not p.tables() or not p.schema_aware:
            raise NotRebuildable(
                f"{p.name} cannot be rebuilt in a shadow schema: it owns no tables, or its "
                "statements name `read.` tables (see Projector.schema_aware)"
            )
    return projectors


def rebuild(
    core: Any,
    url: str,
    names: Sequence[str] = (),
    *,
    lanes: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    page: int = PAGE,
    swap: bool = True,
    lock_wait: float = 10.0,
    on_bulk_done: Callable[[], None] | None = None,
) -> RebuildResult:
    """Rebuild `names` (default: every projector with tables) as the owner at `url`.
    `lanes=0` runs the bulk phase in this process (tests); `swap=False` stops after the
    catch-up and leaves the shadow tables to look at."""
    projectors = rebuildable(names)
    began = time.perf_counter()
    phases: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        _lock(conn, lock_wait)
        try:
            starts = _prepare(conn, projectors, fresh)
            head = _head(conn)
            topics = _topics(conn) if any(starts[p.name] < head for p in projectors) else []
            phases["prepare"] = time.perf_counter() - began
            plan = _plan(url, projectors, topics, head, lanes, page)
            read = _run_lanes(plan, starts, head, lanes == 0, progress)
            phases["bulk"] = time.perf_counter() - began - sum(phases.values())
            if on_bulk_done is not None:
                on_bulk_done()
            with ConnectionPool(url, min_size=1, max_size=2, open=True) as pool:
                runners = [
                    ProjectionRunner(
                        core.app, pool, p, page_size=page, schema=shadow.SHADOW_SCHEMA, bulk=True
                    )
                    for p in projectors
                ]
                for runner in runners:
                    runner.run_until_caught_up()
                phases["catch_up"] = time.perf_counter() - began - sum(phases.values())
                for runner in runners if swap else ():
                    _swap(conn, runner)
            phases["swap"] = time.perf_counter() - began - sum(phases.values())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return RebuildResult(
        [p.name for p in projectors], head, time.perf_counter() - began, read, phases
    )


# -- preparing ---------------------------------------------------------------------------


def _lock(conn: psycopg.Connection[Any], wait: float) -> None:
    """One rebuild at a time. A killed rebuild's session lock goes when the server notices
    its connection is gone, which can take a moment: wait a little for it."""
    deadline = time.monotonic() + wait
    while True:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if got and got[0]:
            return
        if time.monotonic() >= deadline:
            raise RebuildBusy("another rebuild is running")
        time.sleep(0.2)


def _prepare(conn: psycopg.Connection[Any], projectors: list[Projector], fresh: bool) -> dict:
    """Shadow tables and tracking rows; returns each projector's shadow position."""
    shadow.ensure_schema(conn)
    tracking = SQL("{}.tracking").format(Identifier(shadow.SHADOW_SCHEMA))
    starts: dict[str, int] = {}
    for p in projectors:
        row = conn.execute(
            SQL("SELECT position FROM {} WHERE projection = %s").format(tracking), (p.name,)
        ).fetchone()
        if row is not None and not fresh and _shadow_complete(conn, p):
            starts[p.name] = int(row[0])
            continue
        with conn.transaction():
            for table in p.tables():
                shadow.create_shadow(conn, shadow.bare(table))
            conn.execute(
                SQL(
                    "INSERT INTO {} (projection, position) VALUES (%s, 0) ON CONFLICT "
                    "(projection) DO UPDATE SET position = 0, updated_at = now()"
                ).format(tracking),
                (p.name,),
            )
        starts[p.name] = 0
    return starts


def _shadow_complete(conn: psycopg.Connection[Any], p: Projector) -> bool:
    tables = [shadow.bare(t) for t in p.tables()]
    row = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
        (shadow.SHADOW_SCHEMA, tables),
    ).fetchone()
    return bool(row and row[0] == len(tables))


def _head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events")
    return int(row.fetchone()[0])  # type: ignore[index]


def _topics(conn: psycopg.Connection[Any]) -> list[str]:
    return [t for (t,) in conn.execute("SELECT DISTINCT topic FROM public.ledger_events")]


def _plan(
    url: str,
    projectors: list[Projector],
    topics: list[str],
    head: int,
    lanes: int | None,
    page: int,
) -> list[Lane]:
    """Share the projectors out over the lanes, heaviest first (by how many topics they
    want, a cheap stand-in for how many events they decode)."""
    count = lanes if lanes is not None else max(1, min(len(os.sched_getaffinity(0)), 4))
    count = max(1, min(count, len(projectors)))
    # The journal decodes the most and needs nothing else: it gets a lane of its own first.
    weight = {
        p.name: sum(1 for t in topics if p.wants(t)) + (10_000 if p.name == "journal" else 0)
        for p in projectors
    }
    groups: list[list[Projector]] = [[] for _ in range(count)]
    loads = [0] * count
    for p in sorted(projectors, key=lambda p: -weight[p.name]):
        lightest = loads.index(min(loads))
        groups[lightest].append(p)
        loads[lightest] += weight[p.name]
    plan = []
    for i, group in enumerate(g for g in groups if g):
        wanted = tuple(sorted({t for t in topics for p in group if p.wants(t)}))
        everything = all(
            p.topic_prefixes is None and type(p).wants is Projector.wants for p in group
        )
        names = tuple(p.name for p in group)
        plan.append(Lane(i, url, names, None if everything else wanted, head, page))
    return plan


# -- the bulk phase -----------------------------------------------------------------------


def _run_lanes(
    plan: list[Lane], starts: dict[str, int], head: int, inline: bool, progress: bool
) -> int:
    if inline:
        return sum(run_lane(lane) for lane in plan)
    ctx = multiprocessing.get_context("spawn")
    reports: Any = ctx.Queue()
    procs = [ctx.Process(target=run_lane, args=(lane, reports), daemon=True) for lane in plan]
    for proc in procs:
        proc.start()
    positions = {lane.index: min(starts[n] for n in lane.names) for lane in plan}
    read = 0
    with _Progress(progress, min(positions.values()), head) as bar:
        while any(proc.is_alive() for proc in procs) or not reports.empty():
            try:
                index, position, rows = reports.get(timeout=0.2)
            except queue.Empty:
                continue
            positions[index], read = position, read + rows
            bar.update(min(positions.values()))
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a rebuild lane failed (exit code {proc.exitcode})")
    return read


class _Progress:
    """A Rich progress bar over log positions, with events/s and an ETA (or nothing)."""

    def __init__(self, show: bool, start: int, head: int) -> None:
        self.show, self.start, self.head = show, start, head
        self.began = time.perf_counter()

    def __enter__(self) -> _Progress:
        if self.show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("rebuild"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9,.0f} events/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("bulk", total=self.head - self.start, rate=0.0)
        return self

    def update(self, position: int) -> None:
        if self.show:
            done = position - self.start
            rate = done / max(time.perf_counter() - self.began, 1e-6)
            self.bar.update(self.task, completed=done, rate=rate)

    def __exit__(self, *exc: Any) -> None:
        if self.show:
            self.bar.__exit__(*exc)


def run_lane(lane: Lane, reports: Any = None) -> int:
    """One lane of the bulk phase (a process of its own, or inline); returns events read."""
    from infra.db import eventsourcing_env
    from ledger.application import LedgerApplication

    if reports is not None:
        gc.freeze()  # a lane's own process: keep its long-lived objects out of collections
    app: Application[UUID] = LedgerApplication(env=eventsourcing_env(lane.url, pool_size=1))
    projectors = [by_name(n) for n in lane.names]
    tracking = SQL("{}.tracking").format(Identifier(shadow.SHADOW_SCHEMA))
    read = 0
    try:
        with psycopg.connect(lane.url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute("SET maintenance_work_mem = '256MB'")
            positions: dict[str, int] = dict(
                conn.execute(
                    SQL("SELECT projection, position FROM {} WHERE projection = ANY(%s)").format(
                        tracking
                    ),
                    (list(lane.names),),
                ).fetchall()
            )
            position = min(positions[n] for n in lane.names)
            while position < lane.stop:
                last = min(position + lane.page, lane.stop)
                rows = _page(conn, position, last, lane.topics)
                read += len(rows)
                _apply(conn, app, projectors, positions, rows, last)
                position = last
                if reports is not None:
                    reports.put((lane.index, position, len(rows)))
            for p in projectors:
                shadow.add_secondary_indexes(conn, [shadow.bare(t) for t in p.tables()])
    finally:
        app.close()
    return read


_SELECT = (
    "SELECT notification_id, originator_id, originator_version, topic, state "
    "FROM public.ledger_events WHERE notification_id > %s AND notification_id <= %s"
)


def _page(
    conn: psycopg.Connection[Any], after: int, upto: int, topics: tuple[str, ...] | None
) -> list[tuple[Any, ...]]:
    """The wanted events at positions (after, upto]: a window of positions rather than a
    LIMIT, so that the plan is a short index range scan whatever the table's statistics.
    A plain binary SELECT: 2.5 times the rows per second of the recorder's
    select_notifications (which builds a dict and a Notification per row) on this box."""
    with conn.cursor(binary=True) as cur:
        if topics is None:
            cur.execute(_SELECT + " ORDER BY notification_id", (after, upto))
        else:
            cur.execute(
                _SELECT + " AND topic = ANY(%s) ORDER BY notification_id",
                (after, upto, list(topics)),
            )
        return cur.fetchall()


def _apply(
    conn: psycopg.Connection[Any],
    app: Application[UUID],
    projectors: list[Projector],
    positions: dict[str, int],
    rows: list[tuple[Any, ...]],
    last: int,
) -> None:
    """Decode each row once, give each projector the events it wants and has not applied,
    and move the tracking rows, in one transaction."""
    pages: dict[str, list[Envelope]] = {p.name: [] for p in projectors}
    mapper = app.mapper
    for nid, originator_id, version, topic, state in rows:
        takers = [p for p in projectors if positions[p.name] < nid and p.wants(topic)]
        if takers:
            event = mapper.to_domain_event(StoredEvent(originator_id, version, topic, state))
            envelope = Envelope(nid, event)
            for p in takers:
                pages[p.name].append(envelope)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            SQL("SET LOCAL search_path TO {}, public").format(Identifier(shadow.SHADOW_SCHEMA))
        )
        for p in projectors:
            if pages[p.name]:
                p.apply_bulk(cur, pages[p.name])
        moved = [p.name for p in projectors if positions[p.name] < last]
        cur.execute(
            SQL(
                "UPDATE {}.tracking SET position = %s, updated_at = now() "
                "WHERE projection = ANY(%s)"
            ).format(Identifier(shadow.SHADOW_SCHEMA)),
            (last, moved),
        )
    for name in moved:
        positions[name] = last


# -- the swap -------------------------------------------------------------------------------


def _swap(conn: psycopg.Connection[Any], runner: ProjectionRunner) -> None:
    name = runner.projector.name
    live = SQL("{}.tracking").format(Identifier(LIVE_SCHEMA))
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute(
                    SQL(
                        "INSERT INTO {} (projection, position) VALUES (%s, 0) "
                        "ON CONFLICT (projection) DO NOTHING"
                    ).format(live),
                    (name,),
                )
                conn.execute(
                    SQL("SELECT position FROM {} WHERE projection = %s FOR UPDATE").format(live),
                    (name,),
                )
                while runner.apply_page(conn):
                    pass
                conn.execute("SET LOCAL search_path TO DEFAULT")
                row = conn.execute(
                    SQL("DELETE FROM {}.tracking WHERE projection = %s RETURNING position").format(
                        Identifier(shadow.SHADOW_SCHEMA)
                    ),
                    (name,),
                ).fetchone()
                assert row is not None
                shadow.swap_tables(conn, [shadow.bare(t) for t in runner.projector.tables()])
                conn.execute(
                    SQL(
                        "UPDATE {} SET position = %s, updated_at = now() WHERE projection = %s"
                    ).format(live),
                    (row[0], name),
                )
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == SWAP_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
