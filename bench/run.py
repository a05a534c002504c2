"""`make bench`: every performance goal of the issues, each beside its baseline measured in
the same run, into bench/results.json and bench/RESULTS.md (figure, goal, measured, met).

Sections, in order (BENCH_ONLY=name,name runs some of them):
  naive, ours, raw, nearby   the write path against a naive baseline and raw PostgreSQL
  http                       uvicorn + wrk: card payments vs an empty POST (1 and 2
                             workers), read endpoints at 200/s, the API's memory
  export                     CSV export rows/s and memory
  lag                        projection lag under steady payments, the daemon running
  rebuild, audit             1,000,000 events: rebuild every read model, verify the chain

The server is TEST_DATABASE_URL (or DATABASE_URL), in scratch databases made and dropped
here, or else an embedded PostgreSQL in a temporary directory. BENCH_SCALE (default 1)
multiplies every duration and row count; BENCH_SCALE=quick (`make bench-quick`) is a
fifth, with 100,000 events for rebuild and audit.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from importlib.metadata import version
from uuid import UUID, uuid4

from bench import (
    export_csv,
    goals,
    http_payments,
    naive,
    nearby,
    ours,
    procs,
    projection_lag,
    raw,
    scale,
)
from bench import rebuild as rebuild_bench
from bench.cpu import backend_cpu_probe
from bench.database import Target, scratch_database, server_facts
from bench.load import LoadResult, run_load
from bench.report import Report
from infra.bootstrap import Core, build_core
from infra.settings import Settings

SCALE = scale.SCALE
SECTIONS = ("naive", "ours", "raw", "nearby", "http", "export", "lag", "rebuild", "audit")
ONLY = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
MEMBERS = 1000
FUNDS = 10_000_000  # fen per member; a payment takes at most 100
BASELINE = "naive.8_threads"
GOAL = 5.0


def seconds(base: float) -> float:
    return scale.seconds(base)


def wanted(section: str) -> bool:
    return not ONLY or section in ONLY


def row(path: str, threads: int) -> str:
    return f"{path}.{threads}_thread" + ("s" if threads > 1 else "")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_load(report: Report, name: str, result: LoadResult, **extra: object) -> None:
    report.add(name, round(result.rate, 1), "commands/s", **result.summary(), **extra)
    log(
        f"  {name}: {result.rate:,.0f}/s p50 {result.quantile_ms(0.5):.2f} ms"
        f" p99 {result.quantile_ms(0.99):.2f} ms errors {dict(result.errors)}"
    )


def bench_naive(report: Report, url: str) -> None:
    log("naive: tutorial-style application, one transaction per command")
    bank = naive.naive_bank(url)
    try:
        ids = bank.open_wallets([f"member-{i}" for i in range(MEMBERS)], FUNDS)
        guard = threading.Lock()
        tally = {"spent": 0, "conflicts": 0}

        def spend(rng: random.Random) -> None:
            amount = rng.randint(1, 100)
            conflicts = naive.spend_retrying(bank, rng.choice(ids), amount)
            with guard:
                tally["spent"] += amount
                tally["conflicts"] += conflicts

        for threads, base in ((1, 10.0), (8, 15.0)):
            before = tally["conflicts"]
            probe = backend_cpu_probe(url)
            result = run_load(spend, threads=threads, seconds=seconds(base), server_cpu=probe)
            add_load(report, row("naive", threads), result, conflicts=tally["conflicts"] - before)
        left = sum(bank.balance(i) for i in ids)
        if left != MEMBERS * FUNDS - tally["spent"]:
            raise AssertionError(f"naive balances: {left} left, {tally['spent']} spent")
    finally:
        bank.close()


def bench_ours(report: Report, core: Core) -> None:
    log("ours: WalletService.pay_with_card through the group committer")
    members: list[UUID] = [uuid4() for _ in range(MEMBERS)]
    began = time.perf_counter()
    ours.fund(core, members, FUNDS)
    log(f"  funded {MEMBERS} wallets in {time.perf_counter() - began:.1f} s")
    pay = ours.CardPayments(core, members)
    paid = 0
    for threads, base in ((1, 8.0), (8, 20.0), (32, 20.0)):
        before = ours.Counts.of(core)
        probe = backend_cpu_probe(core.owner_url)
        result = run_load(pay, threads=threads, seconds=seconds(base), warmup=2.0, server_cpu=probe)
        paid += result.ops_total
        avg_batch = ours.Counts.of(core).avg_batch_since(before)
        add_load(report, row("ours", threads), result, avg_batch=round(avg_batch, 2))
    events, receipts = ours.stored_counts(core)
    if (events, receipts) != (2 * MEMBERS + paid, MEMBERS + paid):
        raise AssertionError(f"ledger has {events} events, {receipts} receipts; {paid} paid")


def bench_raw(report: Report, url: str, state_bytes: int) -> None:
    log(f"raw: PostgreSQL alone, rows of {state_bytes} state bytes")
    rows = max(10_000, int(200_000 * SCALE))
    rate = raw.copy_rate(url, rows=rows, state_bytes=state_bytes)
    report.add("raw.copy", round(rate, 1), "rows/s", rows=rows, state_bytes=state_bytes)
    log(f"  raw.copy: {rate:,.0f} rows/s")
    rate = raw.commit_per_row_rate(url, seconds=seconds(5.0), state_bytes=state_bytes)
    report.add("raw.commit_per_row", round(rate, 1), "rows/s", state_bytes=state_bytes)
    log(f"  raw.commit_per_row: {rate:,.0f} rows/s")


def machine(target: Target, settings: Settings) -> dict[str, object]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "psycopg": version("psycopg"),
        "server": target.kind,
        "group_commit_max_wait_ms": settings.group_commit_max_wait_ms,
        "group_commit_max_batch": settings.group_commit_max_batch,
        "bench_scale": SCALE,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        **server_facts(target.url),
    }


def bench_million(report: Report) -> None:
    """Rebuild and audit verify share one log of a million events (fewer when quick), in a
    database of its own: the goals are stated for a log of just those events."""
    if not (wanted("rebuild") or wanted("audit")):
        return
    events = int(os.environ.get("BENCH_REBUILD_EVENTS", scale.million_events()))
    with scratch_database("million") as target:
        section(report, "rebuild", lambda: rebuild_bench.run(report, target.url, events=events))
        section(report, "audit", lambda: bench_audit(report, target.url, events))


def bench_audit(report: Report, url: str, events: int) -> None:
    try:
        from bench import audit_verify
    except ImportError:
        report.skip("audit", "bench/audit_verify.py is not there")
        return
    figures = audit_verify.run(url, events=events)
    verify = figures["verify"]
    report.add(
        "audit.verify",
        verify["events_per_s"],
        "events/s",
        **{k: v for k, v in verify.items() if k != "events_per_s"},
        loadavg_1m=procs.loadavg(),
    )
    if "replay" in figures:
        replay = figures["replay"]
        report.add("audit.replay", replay["events_per_s"], "events/s", **replay)


def section(report: Report, name: str, work: Callable[[], object]) -> None:
    """Run one section if wanted; a failure is reported and the next section goes on (a
    twenty-minute run should not lose every figure to one)."""
    if not wanted(name):
        return
    began = time.perf_counter()
    try:
        work()
    except Exception as failed:  # noqa: BLE001 - logged with its traceback, and reported
        traceback.print_exc()
        report.skip(name, f"failed: {type(failed).__name__}: {failed}")
    log(f"[{name}: {time.perf_counter() - began:.0f} s, load average {procs.loadavg()}]")


def write_path(report: Report, settings: Settings, target: Target) -> None:
    core = build_core(settings, target.url)
    try:
        section(report, "naive", lambda: bench_naive(report, target.url))
        section(report, "ours", lambda: bench_ours(report, core))
        state_bytes = ours.average_state_bytes(core)
    finally:
        core.close()
    section(report, "raw", lambda: bench_raw(report, target.url, state_bytes or 300))
    section(report, "nearby", lambda: nearby.run(report, target.url))


def on_http_database(report: Report, settings: Settings) -> None:
    with scratch_database("http") as target:
        build_core(settings, target.url).close()  # migrated
        section(report, "http", lambda: http_payments.run(report, target.url))
        section(report, "export", lambda: export_csv.run(report, target.url))


def on_lag_database(report: Report) -> None:
    with scratch_database("lag") as target:
        section(report, "lag", lambda: projection_lag.run(report, target.url))


def main() -> int:
    began = time.perf_counter()
    report = Report()
    settings = Settings()
    with scratch_database() as target:
        log(f"database: {target.kind}; load average {procs.loadavg()}")
        report.machine = machine(target, settings)
        write_path(report, settings, target)
        if wanted("http") or wanted("export"):
            on_http_database(report, settings)
        if wanted("lag"):
            on_lag_database(report)
    bench_million(report)
    for threads in ("1_thread", "8_threads", "32_threads"):
        report.ratio(f"ours.{threads}/{BASELINE}", f"ours.{threads}", BASELINE)
    report.ratio(f"naive.1_thread/{BASELINE}", "naive.1_thread", BASELINE)
    report.ratio("raw.commit_per_row/naive.1_thread", "raw.commit_per_row", "naive.1_thread")
    report.ratio("ours.8_threads/raw.copy", "ours.8_threads", "raw.copy")
    report.machine["loadavg_1m_at_end"] = procs.loadavg()
    took = time.perf_counter() - began
    report.machine["bench_seconds"] = round(took)
    path = report.write()
    summary = goals.write(report, BASELINE, took)
    m = report.machine
    print(
        f"\n## {m['nproc']} cores, PostgreSQL {m['pg_version']} ({m['server']}),"
        f" load average {m['loadavg_1m_at_start']} -> {m['loadavg_1m_at_end']}\n"
    )
    print(goals.table(report))
    print(f"\nresults: {path}, {summary}; whole bench {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
