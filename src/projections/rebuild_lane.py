"""One lane of a rebuild's bulk phase (a process of its own, or inline in tests).

A lane owns some projectors and reads the log up to the head it was given, one window of
positions at a time, leaving out topics none of them wants, each state decoded once with
orjson (projections.raw). Each projector's fold (projections.bulk) is fed the window's
events it wants and has not applied. Every few windows, a checkpoint: the folds write what
they hold and the projectors' shadow tracking rows move, in the transaction the windows
were read in, so a killed lane goes on from its last checkpoint; sums and rows that change
often are written once per checkpoint, not per window. At the end the lane adds the keys and
triggers it left for later (see shadow.create_shadow) and the secondary indexes of its
tables, and gathers their statistics.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import psycopg
from eventsourcing.application import Application
from psycopg.sql import SQL, Identifier

from projections import shadow
from projections.bulk import Fold, appends_only, fold_for
from projections.framework import Projector
from projections.lane_clock import LaneClock, server_cpu
from projections.raw import RawEvent
from projections.registry import by_name

WINDOW = 50_000  # positions read (and decoded: about 150 MB) at a time
# Windows per checkpoint, where the folds write and the tracking rows move: what changed since
# the last one stays in memory (a lane peaked at about 520 MB on bench/rebuild.py's 1M log).
WINDOWS = 10
INDEX_BUILDS = 2  # secondary indexes built at once at the end of a lane
_TRACKING = SQL("{}.tracking").format(Identifier(shadow.SHADOW_SCHEMA))
_SEARCH_PATH = SQL("SET LOCAL search_path TO {}, public").format(Identifier(shadow.SHADOW_SCHEMA))
_SELECT = (
    "SELECT notification_id, uuid_send(originator_id), originator_version, topic, state "
    "FROM public.ledger_events WHERE notification_id > %s AND notification_id <= %s"
)
_SELECT_SKIPPING = _SELECT + " AND topic <> ALL(%s) ORDER BY notification_id"
_SELECT += " ORDER BY notification_id"


@dataclass(frozen=True)
class Lane:
    index: int
    url: str
    names: tuple[str, ...]
    skip: tuple[str, ...]  # topics none of its projectors wants (a topic not named is read)
    stop: int
    page: int = WINDOW  # positions read at a time
    windows: int = WINDOWS  # windows per checkpoint


def run_lane(lane: Lane, reports: Any = None) -> dict[str, Any]:
    """Returns how many events the lane read (`events`) and where its time went (seconds:
    reading the log, each projector's fold, committing, indexing; `cpu` of the process)."""
    from infra.db import eventsourcing_env
    from ledger.application import LedgerApplication

    if reports is not None:
        # A lane's own process makes millions of short-lived dicts and no reference cycles
        # (a collection at each checkpoint found none on bench/rebuild.py's 1M log, and took
        # 0.2-0.3 s): the collector would only walk the folds' state again and again.
        gc.disable()
    app: Application[UUID] = LedgerApplication(env=eventsourcing_env(lane.url, pool_size=1))
    try:
        with psycopg.connect(lane.url, autocommit=True) as conn:
            return _run(conn, lane, app, reports)
    finally:
        app.close()


def _run(
    conn: psycopg.Connection[Any], lane: Lane, app: Application[UUID], reports: Any
) -> dict[str, Any]:
    clock = LaneClock()
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '256MB'")
    projectors = [by_name(n) for n in lane.names]
    positions: dict[str, int] = dict(
        conn.execute(
            SQL("SELECT projection, position FROM {} WHERE projection = ANY(%s)").format(_TRACKING),
            (list(lane.names),),
        ).fetchall()
    )
    folds = {p.name: fold_for(p, app, complete=positions[p.name] == 0) for p in projectors}
    takers = _Takers(projectors)
    read = 0
    position = min(positions.values())
    with _Reader(lane, position) as reader:
        while position < lane.stop:
            last = min(position + lane.page * lane.windows, lane.stop)
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_SEARCH_PATH)
                while reader.upto < last:
                    with clock("read"):
                        events = reader.next()
                    read += len(events)
                    _feed(cur, folds, takers, positions, events, clock)
                    if reports is not None:
                        reports.put((lane.index, reader.upto, len(events)))
                _checkpoint(cur, folds, positions, last, clock)
            clock.stop()  # the commit
            for name in folds:
                positions[name] = max(positions[name], last)
            position = last
    _finish_tables(conn, lane.url, projectors, clock)
    seconds = clock.report()
    server = [server_cpu(conn.info.backend_pid), reader.server_cpu]
    if None not in server:  # a server on this machine: what the lane's backends spent
        seconds["server"] = [0.0, sum(server)]  # type: ignore[arg-type]
    return {"lane": lane.index, "events": read, "seconds": seconds}


def _finish_tables(
    conn: psycopg.Connection[Any], url: str, projectors: list[Projector], clock: LaneClock
) -> None:
    """The keys and triggers left for later, then the secondary indexes, then statistics.

    Statistics travel with the tables: the live API plans well from the swap on instead of
    waiting for autovacuum (journal pages took 300-500 ms till then); the few rows the
    catch-up adds later do not change the plans. They come after the indexes, which ANALYZE
    reads for its expression ones."""
    for p in projectors:
        for table in appends_only(p):
            shadow.add_keys_and_triggers(conn, table)
    tables = [shadow.bare(t) for p in projectors for t in p.tables()]
    statements = shadow.missing_indexes(conn, tables)
    schema = Identifier(shadow.SHADOW_SCHEMA)
    with _StatementPool(url) as run:
        with clock("indexes"):
            run(statements)
        with clock("analyze"):
            run([SQL("ANALYZE {}.{}").format(schema, Identifier(t)) for t in tables])


class _StatementPool:
    """Runs statements INDEX_BUILDS at a time, each thread on a connection of its own (a
    CREATE INDEX locks its table only against writes): the journal's indexes take seconds
    each on a large log, and the lane that ends last has the other core to itself."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()
        self.opened: list[psycopg.Connection[Any]] = []
        self.pool = ThreadPoolExecutor(INDEX_BUILDS)

    def __enter__(self) -> _StatementPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown()
        for conn in self.opened:
            conn.close()

    def __call__(self, statements: Sequence[Any]) -> None:
        list(self.pool.map(self._execute, statements))

    def _execute(self, statement: Any) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = psycopg.connect(self.url, autocommit=True)
            conn.execute("SET maintenance_work_mem = '256MB'")
            # Both cores are busy with the lanes already: workers would only add overhead.
            conn.execute("SET max_parallel_maintenance_workers = 0")
            self.opened.append(conn)
        conn.execute(statement)


def fetch(
    conn: psycopg.Connection[Any], after: int, upto: int, skip: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """The stored events at positions (after, upto] but those of the topics to skip. A
    window of positions rather than a LIMIT keeps the plan a short index range scan. A
    binary SELECT of the bare columns (the uuid as its 16 bytes) costs half the CPU of a
    binary COPY, which psycopg hands over a row at a time."""
    query = _SELECT_SKIPPING if skip else _SELECT
    params: tuple[Any, ...] = (after, upto, list(skip)) if skip else (after, upto)
    with conn.cursor(binary=True) as cur:
        return cur.execute(query, params).fetchall()


def decode(rows: list[tuple[Any, ...]]) -> list[RawEvent]:
    loads = orjson.loads
    return [
        RawEvent(position, originator.hex(), version, topic, state, loads(state))
        for position, originator, version, topic, state in rows
    ]


class _Reader:
    """Reads the lane's windows one ahead, on a connection and a thread of its own, so the
    server reads the next window while this process folds the last one (waiting on the
    socket and in libpq, the thread does not hold the GIL). `next()` decodes here."""

    def __init__(self, lane: Lane, start: int) -> None:
        self.lane, self.start, self.upto = lane, start, start
        self.ready: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.stopping = threading.Event()
        self.conn = psycopg.connect(lane.url, autocommit=True)
        self.server_cpu: float | None = None  # what its backend spent, once done
        self.thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> _Reader:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        while self.thread.is_alive():
            with suppress(queue.Empty):
                self.ready.get_nowait()  # let a blocked put go through
            self.thread.join(0.05)
        self.server_cpu = server_cpu(self.conn.info.backend_pid)
        self.conn.close()

    def next(self) -> list[RawEvent]:
        upto, rows = self.ready.get()
        if isinstance(rows, BaseException):
            raise rows
        self.upto = upto
        return decode(rows)

    def _read(self) -> None:
        lane = self.lane
        try:
            for after in range(self.start, lane.stop, lane.page):
                upto = min(after + lane.page, lane.stop)
                window = (upto, fetch(self.conn, after, upto, lane.skip))
                if not self._put(window):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the lane, which raises it
            self._put((self.upto, e))

    def _put(self, item: Any) -> bool:
        while not self.stopping.is_set():
            with suppress(queue.Full):
                self.ready.put(item, timeout=0.1)
                return True
        return False


class _Takers:
    """Which of a lane's projectors want a topic (asked once per topic)."""

    def __init__(self, projectors: list[Projector]) -> None:
        self.projectors = projectors
        self.known: dict[str, list[str]] = {}

    def __call__(self, topic: str) -> list[str]:
        names = self.known.get(topic)
        if names is None:
            names = self.known[topic] = [p.name for p in self.projectors if p.wants(topic)]
        return names


def _feed(
    cur: psycopg.Cursor[Any],
    folds: dict[str, Fold],
    takers: _Takers,
    positions: dict[str, int],
    events: list[RawEvent],
    clock: LaneClock,
) -> None:
    """Give each projector the window's events it wants and has not applied."""
    pages: dict[str, list[RawEvent]] = {name: [] for name in folds}
    for event in events:
        for name in takers(event.topic):
            if positions[name] < event.position:
                pages[name].append(event)
    for name, fold in folds.items():
        if pages[name]:
            with clock(name):
                fold.feed(cur, pages[name])


def _checkpoint(
    cur: psycopg.Cursor[Any],
    folds: dict[str, Fold],
    positions: dict[str, int],
    last: int,
    clock: LaneClock,
) -> None:
    """Write what the folds hold and move the tracking rows; the caller commits."""
    for name, fold in folds.items():
        with clock(name):
            fold.flush(cur)
    moved = [name for name in folds if positions[name] < last]
    cur.execute(
        SQL("UPDATE {} SET position = %s, updated_at = now() WHERE projection = ANY(%s)").format(
            _TRACKING
        ),
        (last, moved),
    )
    clock.start("commit")
