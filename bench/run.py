"""`make bench`: the naive baseline, the project's write path and raw PostgreSQL, one server.

The server is TEST_DATABASE_URL (or DATABASE_URL), in a scratch database made and dropped
here, or else an embedded PostgreSQL in a temporary directory. BENCH_SCALE (default 1)
multiplies every duration and row count, for a quick smoke run.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import threading
import time
from importlib.metadata import version
from uuid import UUID, uuid4

from bench import http_payments, naive, nearby, ours, raw
from bench import rebuild as rebuild_bench
from bench.cpu import backend_cpu_probe
from bench.database import Target, scratch_database, server_facts
from bench.load import LoadResult, run_load
from bench.report import Report
from infra.bootstrap import Core, build_core
from infra.settings import Settings

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
MEMBERS = 1000
FUNDS = 10_000_000  # fen per member; a payment takes at most 100
BASELINE = "naive.8_threads"
GOAL = 5.0


def seconds(base: float) -> float:
    return max(1.0, base * SCALE)


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


def main() -> int:
    began = time.perf_counter()
    report = Report()
    settings = Settings()
    with scratch_database() as target:
        log(f"database: {target.kind}")
        report.machine = machine(target, settings)
        core = build_core(settings, target.url)
        try:
            bench_naive(report, target.url)
            bench_ours(report, core)
            state_bytes = ours.average_state_bytes(core)
        finally:
            core.close()
        bench_raw(report, target.url, state_bytes)
        nearby.run(report, target.url)
        http_payments.run(report, target.url)
        rebuild_bench.run(report, target.url)  # BENCH_REBUILD_EVENTS, default 1,000,000
    for threads in ("1_thread", "8_threads", "32_threads"):
        report.ratio(f"ours.{threads}/{BASELINE}", f"ours.{threads}", BASELINE)
    report.ratio(f"naive.1_thread/{BASELINE}", "naive.1_thread", BASELINE)
    report.ratio("raw.commit_per_row/naive.1_thread", "raw.commit_per_row", "naive.1_thread")
    report.ratio("ours.8_threads/raw.copy", "ours.8_threads", "raw.copy")
    report.machine["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    path = report.write()
    goal = report.ratios[f"ours.8_threads/{BASELINE}"]["value"]
    m = report.machine
    print(
        f"\n## Write path: {m['nproc']} cores, PostgreSQL {m['pg_version']} ({m['server']}),"
        f" load average {m['loadavg_1m_at_start']} -> {m['loadavg_1m_at_end']}\n"
    )
    print(report.markdown(BASELINE))
    print(
        f"\nours 8 threads / naive 8 threads = {goal:.2f}x "
        f"(goal >= {GOAL:.0f}x: {'met' if goal >= GOAL else 'NOT met'})"
    )
    print(f"results: {path}; whole bench {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
