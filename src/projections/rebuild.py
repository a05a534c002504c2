"""`ledger rebuild [NAME...]`: rebuild read models into a shadow schema and swap them in
(blue/green) while the API keeps serving the live tables.

1. Shadow: for each projector, its tables are copied empty into `read_shadow` (see
   `projections.shadow`) with a tracking row of its own at 0. A projector whose shadow
   tracking row already exists is resumed from it: a killed rebuild goes on where it was.
2. Bulk: lanes (one process each, as many as cores, at most 4) share the projectors out
   (`projections.rebuild_plan`: by what they cost, keeping projectors that read the same
   topics together); a lane reads the log up to the head it was given, window by window,
   leaving out the topics none of its projectors wants, and feeds each projector's fold
   (`projections.bulk`: raw events, no domain objects, COPY), moving their shadow tracking
   rows at each checkpoint (`projections.rebuild_lane`). Then it adds its tables' indexes.
3. Catch-up: the ordinary runner, on the shadow schema, to the live head.
4. Swap, in one short transaction per projector: lock its live tracking row (the live runner
   waits), apply what arrived since, drop its live tables, move the shadow ones in, and set
   the live tracking row to the shadow's position. The live runner then goes on from there.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

from infra.db import log_head
from projections import shadow
from projections.bulk import appends_only
from projections.framework import LIVE_SCHEMA, ProjectionRunner, Projector
from projections.lane_process import LaneProcess
from projections.rebuild_lane import WINDOW, Lane, run_lane
from projections.rebuild_plan import plan, topic_counts
from projections.registry import all_projectors, by_name

PAGE = 10_000  # the catch-up runner's page
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
    lanes: list[dict[str, Any]] = field(default_factory=list)  # see rebuild_lane.run_lane


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
    page: int | None = None,
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
            head = log_head(conn)
            behind = min(starts.values())
            counts = topic_counts(conn, behind, head) if behind < head else {}
            phases["prepare"] = time.perf_counter() - began
            planned = plan(url, projectors, counts, head, lanes, page or WINDOW)
            reports = _run_lanes(planned, starts, head, lanes == 0, progress)
            phases["bulk"] = time.perf_counter() - began - sum(phases.values())
            if on_bulk_done is not None:
                on_bulk_done()
            with ConnectionPool(url, min_size=1, max_size=2, open=True) as pool:
                runners = [
                    ProjectionRunner(
                        core.app,
                        pool,
                        p,
                        page_size=page or PAGE,
                        schema=shadow.SHADOW_SCHEMA,
                        bulk=True,
                    )
                    for p in projectors
                ]
                caught_up_to = log_head(conn)
                for runner in runners:
                    runner.run_until_caught_up(until=caught_up_to)
                phases["catch_up"] = time.perf_counter() - began - sum(phases.values())
                for runner in runners if swap else ():
                    _swap(conn, runner)
            phases["swap"] = time.perf_counter() - began - sum(phases.values())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return RebuildResult(
        [p.name for p in projectors],
        head,
        time.perf_counter() - began,
        sum(r["events"] for r in reports),
        phases,
        [{**r, "names": planned[r["lane"]].names} for r in reports],
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
            later = appends_only(p)
            for table in map(shadow.bare, p.tables()):
                shadow.create_shadow(conn, table, keyed=table not in later)
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


# -- the bulk phase -----------------------------------------------------------------------


def _run_lanes(
    plan: list[Lane], starts: dict[str, int], head: int, inline: bool, progress: bool
) -> list[dict[str, Any]]:
    """Each lane's report (see rebuild_lane.run_lane), in plan order."""
    if inline:
        return [run_lane(lane) for lane in plan]
    lines: queue.Queue[Any] = queue.Queue()
    procs = [LaneProcess(lane, lines.put) for lane in plan]
    positions = {lane.index: min(starts[n] for n in lane.names) for lane in plan}
    done: dict[int, dict[str, Any]] = {}
    try:
        with _Progress(progress, min(positions.values()), head) as bar:
            while any(proc.alive() for proc in procs) or not lines.empty():
                try:
                    index, position, report = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                if position is None:
                    done[index] = report
                    continue
                positions[index] = position
                bar.update(min(positions.values()))
    finally:  # normally every lane has ended; after an error or an interrupt here, too
        for proc in procs:
            proc.kill()
    codes = [proc.finish() for proc in procs]
    for code in codes:
        if code != 0:
            raise RuntimeError(f"a rebuild lane failed (exit code {code})")
    return [done[lane.index] for lane in plan]


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
                # Only up to the head as the swap began: the live runner, blocked on its
                # tracking row meanwhile, applies what comes after. Chasing the head instead
                # never ended while writes came faster than one page a round trip.
                until = log_head(conn)
                while runner.apply_page(conn, until=until):
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
