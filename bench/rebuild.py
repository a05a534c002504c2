"""Rebuild (issue 5): every read model from BENCH_REBUILD_EVENTS events (default 1,000,000)
through `projections.rebuild`, beside the naive runner (one transaction per event, the
library's ProjectionRunner style) on a sample of the same log, in the same run.

The log is generated fast: the project's own services run the commands (a realistic mix of
members signing in, top-ups, card and WeChat/Alipay fuel orders, refunds, expiries) against
aggregates held in memory, and a buffering committer writes their stored events with the
project's recorder (`ledger_append`) in batches of 20,000, not one transaction per command.

`python -m bench.rebuild [URL]` runs it alone (on URL, the log is generated once and reused);
`make bench` calls `run(report, url)`.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from bench.report import Report
from infra.bootstrap import Core, build_core
from infra.recorder import LedgerRecorder
from infra.settings import Settings
from ledger.commands import CommandRunner, UnitOfWork
from ledger.services.fuel_orders import FuelOrderService
from ledger.services.members import MemberService
from ledger.services.station_catalog import StationCatalogService
from ledger.services.top_ups import TopUpService, parse_tiers
from projections.framework import ProjectionRunner
from projections.rebuild import rebuildable

EVENTS = int(os.environ.get("BENCH_REBUILD_EVENTS", "1000000"))
NAIVE_EVENTS = int(os.environ.get("BENCH_REBUILD_NAIVE_EVENTS", "3000"))
STATIONS = 200
MEMBERS_PER_100K = 2_000
GRADES = ("92#", "95#", "0#")
A = TypeVar("A", bound=Aggregate)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class MemoryUnitOfWork(UnitOfWork):
    """Aggregates straight from the generator's dict: no copy, no lock, no SELECT (one
    thread, and no command of the generator fails, so nothing needs undoing)."""

    store: dict[UUID, Aggregate] = field(default_factory=dict)

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        found = self.loaded.get(aggregate_id) or self.store.get(aggregate_id)
        if found is None:
            raise AggregateNotFoundError(aggregate_id)
        if not isinstance(found, cls):
            raise TypeError(f"{aggregate_id} is a {type(found).__name__}")
        self.loaded[aggregate_id] = found
        return found

    def add(self, aggregate: A) -> A:
        self.loaded[aggregate.id] = aggregate
        return aggregate

    def release(self) -> None:
        self.loaded.clear()


class BufferingRunner(CommandRunner):
    """Runs the services' commands against aggregates in memory and writes their stored
    events with the recorder (`ledger_append`) in batches, not a transaction per command."""

    def __init__(self, core: Core, batch: int = 20_000) -> None:
        super().__init__(core.app, core.committer)
        self.recorder: LedgerRecorder = core.app.recorder  # type: ignore[assignment]
        self.store: dict[UUID, Aggregate] = {}
        self.batch = batch
        self.stored: list[Any] = []
        self.written = 0

    def run(self, command_id: UUID, payload: Any, decide: Callable[[UnitOfWork], Any]) -> Any:
        uow = MemoryUnitOfWork(self.app, self.locks, store=self.store)
        result = decide(uow)
        events, changed = uow.collect()
        for aggregate in changed:
            self.store[aggregate.id] = aggregate
        self.stored.extend(self.app.mapper.to_stored_event(e) for e in events)
        if len(self.stored) >= self.batch:
            self.flush()
        return result

    @property
    def count(self) -> int:
        return self.written + len(self.stored)

    def flush(self) -> None:
        if self.stored:
            self.recorder.insert_events(self.stored)
            self.written += len(self.stored)
            self.stored = []


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(days=30)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=250)
        return self.now


def generate_part(url: str, events: int, part: int) -> int:
    """One process's share: its own stations, members and keys; returns events written."""
    core = build_core(Settings(), url, migrate=False, group_commit=False, pool_size=2)
    try:
        return generate(core, events, part)
    finally:
        core.close()


def generate_parallel(url: str, events: int, parts: int) -> int:
    if parts <= 1:
        return generate_part(url, events, 0)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(parts) as pool:
        shares = [(url, events // parts, part) for part in range(parts)]
        return sum(pool.starmap(generate_part, shares))


def generate(core: Core, events: int, part: int = 0) -> int:
    """Append about `events` events; returns how many were written."""
    rng = random.Random(1000 + part)
    runner = BufferingRunner(core)
    clock = Clock()
    orders = FuelOrderService(runner, clock=clock)
    top_ups = TopUpService(runner, tiers=parse_tiers("50000:2000,100000:5000"), clock=clock)
    members_service = MemberService(runner)
    catalog = StationCatalogService(runner)
    stations: list[UUID] = []
    for i in range(STATIONS):
        view = catalog.register(
            code=f"B{part}-{i:05d}",
            name=f"Station {i}",
            address=f"{i} Bench Road",
            phone="+862800000",
            lat_e6=30_600_000 + i * 1_000,
            lng_e6=104_000_000 + i * 1_000,
            settlement_rate_bps=rng.choice((50, 80, 100)),
        )
        station_id = UUID(view["station_id"])
        for n, grade in enumerate(GRADES):
            catalog.configure_grade(
                station_id, grade, [n * 2 + 1, n * 2 + 2], key=f"g{part}-{i}-{grade}"
            )
            catalog.change_price(
                station_id, grade, 700 + 50 * n, "bench", key=f"b{part}-{i}-{grade}"
            )
        stations.append(station_id)
    members: list[UUID] = []
    for i in range(max(50, events * MEMBERS_PER_100K // 100_000)):
        members.append(UUID(members_service.sign_in(f"bench-{part}-{i}", None)["member_id"]))
    funded: set[UUID] = set()
    paid: list[tuple[UUID, int]] = []  # (order, amount) for refunds
    unpaid: list[tuple[UUID, datetime]] = []
    n = 0

    def top_up(member: UUID, amount: int, method: str, key: str) -> None:
        created = top_ups.create(member_id=member, key=key, amount_fen=amount, method=method)
        orders.confirm_provider_payment(
            provider=method,
            transaction_id=f"b{part}-{key}",
            out_trade_no=created["out_trade_no"],
            amount_fen=amount,
        )

    while runner.count < events:
        n += 1
        member = rng.choice(members)
        if member not in funded:
            top_up(member, 2_000_000, "wechat", f"f{n}")
            funded.add(member)
        roll = rng.random()
        station = rng.choice(stations)
        grade = rng.choice(GRADES)
        amount = rng.randint(50, 500) * 100
        if roll < 0.12:
            top_up(
                member,
                rng.choice((10_000, 50_000, 100_000)),
                rng.choice(("wechat", "alipay")),
                f"t{n}",
            )
        elif roll < 0.15 and paid:
            order_id, total = paid.pop(rng.randrange(len(paid)))
            refund = total if rng.random() < 0.5 else total // 2
            orders.refund(
                order_id=order_id,
                out_refund_no=f"br{part}-{n}",
                amount_fen=refund,
                reason="bench",
                requested_by="station",
            )
        elif roll < 0.17:
            created = orders.create(
                member_id=member,
                key=f"o{n}",
                station_id=station,
                grade=grade,
                nozzle=GRADES.index(grade) * 2 + 1,
                amount_fen=amount,
            )
            unpaid.append((UUID(created["order_id"]), clock.now + timedelta(minutes=16)))
        else:
            points = rng.choice((0, 0, 0, 100))
            created = orders.create(
                member_id=member,
                key=f"o{n}",
                station_id=station,
                grade=grade,
                nozzle=GRADES.index(grade) * 2 + 1,
                amount_fen=amount,
                points=points,
            )
            order_id = UUID(created["order_id"])
            if roll < 0.72:
                orders.pay_with_card(order_id=order_id, member_id=member)
            else:
                method = rng.choice(("wechat", "alipay"))
                started = orders.start_provider_payment(
                    order_id=order_id, member_id=member, method=method
                )
                orders.confirm_provider_payment(
                    provider=method,
                    transaction_id=f"bp{part}-{n}",
                    out_trade_no=started["out_trade_no"],
                    amount_fen=started["provider_fen"],
                )
            if rng.random() < 0.1:
                paid.append((order_id, amount))
        while unpaid and unpaid[0][1] < clock.now:
            orders.expire(order_id=unpaid.pop(0)[0])
    runner.flush()
    return runner.written


def head(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM ledger_events")
        return int(row.fetchone()[0])  # type: ignore[index]


def naive_rate(core: Core, sample: int) -> float:
    """One transaction per event, every projector: the library runner's way."""
    runners = [
        ProjectionRunner(core.app, core.read_pool, p, page_size=1, schema="read")
        for p in rebuildable()
    ]
    with core.read_pool.connection() as conn:
        for runner in runners:
            for table in runner.projector.tables():
                conn.execute(f"TRUNCATE {table}")
            conn.execute(
                "DELETE FROM read.tracking WHERE projection = %s", (runner.projector.name,)
            )
    began = time.perf_counter()
    for runner in runners:
        for _ in range(sample):
            if not runner.run_once():
                break
    elapsed = time.perf_counter() - began
    return sample / elapsed


def run(report: Report, url: str, events: int = EVENTS) -> None:
    from projections.rebuild import rebuild

    settings = Settings()
    core = build_core(settings, url, group_commit=False)
    try:
        if head(url) >= events:  # a log generated before (`python -m bench.rebuild URL`)
            log(f"rebuild: reusing the {head(url):,} events already there")
        else:
            began = time.perf_counter()
            written = generate_parallel(url, events, parts=min(2, len(os.sched_getaffinity(0))))
            took = time.perf_counter() - began
            log(f"rebuild: generated {written:,} events in {took:.1f} s ({written / took:,.0f}/s)")
            report.add("rebuild.generate", round(written / took, 1), "events/s", events=written)
        total = head(url)
        result = rebuild(core, url, fresh=True, progress=False)
        rate = total / result.seconds
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
        log(f"  rebuild.all: {total:,} events in {result.seconds:.1f} s = {rate:,.0f} events/s")
        log(f"    phases: {phases}")
        lanes = [lane_figures(lane) for lane in result.lanes]
        for lane in lanes:
            log(f"    lane {lane}")
        report.add(
            "rebuild.all_read_models",
            round(rate, 1),
            "events/s",
            events=total,
            seconds=round(result.seconds, 2),
            phases={k: round(v, 2) for k, v in result.phases.items()},
            lanes=lanes,
            loadavg_1m=round(os.getloadavg()[0], 2),
        )
        sample = min(NAIVE_EVENTS, total)
        naive = naive_rate(core, sample)
        log(f"  rebuild.naive_one_tx_per_event: {naive:,.0f} events/s on {sample:,} events")
        report.add("rebuild.naive_one_tx_per_event", round(naive, 1), "events/s", events=sample)
        report.ratio(
            "rebuild.all_read_models/naive",
            "rebuild.all_read_models",
            "rebuild.naive_one_tx_per_event",
        )
    finally:
        core.close()


def lane_figures(lane: dict[str, Any]) -> dict[str, Any]:
    """A bulk lane's projectors and where its time went: wall and CPU seconds by activity,
    `server` the CPU of its database backend (when the server runs on this machine)."""
    seconds = {k: [round(w, 2), round(c, 2)] for k, (w, c) in lane["seconds"].items()}
    return {"projectors": list(lane["names"]), "events": lane["events"], "seconds": seconds}


def main() -> int:
    """`python -m bench.rebuild [URL]`: in a scratch database, or in the database at URL
    (the owner's), generating the log only when it holds fewer events than asked for; run
    it again on the same URL to measure the rebuild alone."""
    from bench.database import scratch_database

    report = Report()
    if len(sys.argv) > 1:
        run(report, sys.argv[1])
    else:
        with scratch_database() as target:
            run(report, target.url)
    path = report.write()
    print(report.markdown("rebuild.naive_one_tx_per_event"))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
